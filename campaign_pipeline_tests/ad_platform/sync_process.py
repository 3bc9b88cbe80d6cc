"""One account-day sync in its own process, as a Dagster run would do it; prints its report as JSON.

Used by the integration tests to run two syncs of one account side by side::

    python -m campaign_pipeline_tests.ad_platform.sync_process URL ACCOUNT DAY CAMPAIGNS \\
        --rate-limit 10 --rate-window-seconds 0.5 [--limiter-url postgresql://...]
"""

from __future__ import annotations

import argparse
import json
from datetime import date

from campaign_pipeline.ad_platform import AdPlatformClient, ClientConfig, PostgresSlidingWindowLimiter
from campaign_pipeline_tests.ad_platform.conftest import credentials


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("account")
    parser.add_argument("day", type=date.fromisoformat)
    parser.add_argument("campaigns", type=int, help="How many of the listed campaigns to sync.")
    parser.add_argument("--rate-limit", type=int, required=True)
    parser.add_argument("--rate-window-seconds", type=float, required=True)
    parser.add_argument("--safety-margin-seconds", type=float, default=0.05)
    parser.add_argument("--limiter-url")
    args = parser.parse_args()
    config = ClientConfig(
        rate_limit=args.rate_limit,
        rate_window_seconds=args.rate_window_seconds,
        limiter_safety_margin_seconds=args.safety_margin_seconds,
        read_timeout_seconds=2.0,
        backoff_base_seconds=0.05,
        backoff_cap_seconds=0.5,
        sync_workers=args.rate_limit,
    )
    limiter = None
    if args.limiter_url:
        limiter = PostgresSlidingWindowLimiter(
            args.limiter_url,
            limit=args.rate_limit,
            window_seconds=args.rate_window_seconds,
            safety_margin_seconds=args.safety_margin_seconds,
        )
    try:
        with AdPlatformClient(
            args.url, args.account, credentials(args.account), config=config, limiter=limiter
        ) as client:
            campaigns = client.fetch_campaigns(args.day)
            report = client.sync_campaigns([campaign["id"] for campaign in campaigns[: args.campaigns]])
            stats = client.stats.as_metadata()
    finally:
        if limiter is not None:
            limiter.close()
    print(
        json.dumps({"listed": len(campaigns), "synced": sorted(report.synced), "failed": report.failed, "stats": stats})
    )


if __name__ == "__main__":
    main()
