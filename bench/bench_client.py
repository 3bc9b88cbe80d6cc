"""How close the ad platform client comes to the platform's sliding-window bound.

Run with ``python -m bench.bench_client [--time-scale 0.1]``. One account-day
(1 list request for 100 campaigns, then 100 slow syncs) against the real
simulator at 60 requests per window, three times:

1. fault-free, in-process limiter;
2. fault-free, PostgreSQL limiter (the one Dagster runs share);
3. 20 % 503s and 10 % hangs on every endpoint (token, list, sync).

R requests at L per window W cannot finish before ``floor((R - 1) / L) * W``
plus one request's latency; the ratio is the wall time over that bound, with R
the requests the platform counted (failed ones included, 429s excluded).
``--time-scale`` shrinks the window, the sync latency, the timeouts and the
backoff by the same factor, so ratios stay comparable and a run takes seconds.

A third figure is the cost of one PostgreSQL limiter admission (a short
transaction under an advisory lock) when no wait is needed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from campaign_pipeline import database
from campaign_pipeline.accounts import AccountCredentials
from campaign_pipeline.ad_platform import AdPlatformClient, ClientConfig, PostgresSlidingWindowLimiter, RateLimiter
from mock_api.accounts import demo_credentials
from mock_api.testing import MockApiServer

ACCOUNT = "acme-retail"
DAY = date(2026, 11, 27)
RATE_LIMIT = 60
WINDOW_SECONDS = 60.0
SYNC_LATENCY_SECONDS = 2.0
# Every platform-side figure and every client wait below is multiplied by the time scale.
READ_TIMEOUT_SECONDS = 5.0
SAFETY_MARGIN_SECONDS = 0.25
# The gap between taking a slot and the platform seeing the request is set by the
# machine (threads, connections), not by the time scale: up to ~0.1 s was seen here.
MIN_SAFETY_MARGIN_SECONDS = 0.1
FAULTS = {"error_rate": 0.2, "hang_rate": 0.1}
DEFAULTS = ClientConfig()
PG_DATA_DIR = Path(__file__).resolve().parents[1] / ".campaign_pipeline" / "bench-client-pgdata"


@dataclass(frozen=True)
class Scenario:
    """One benchmark run: its name, whether it injects faults, and which limiter it uses."""

    name: str
    faults: bool
    postgres_limiter: bool


SCENARIOS = (
    Scenario("fault-free, in-process limiter", faults=False, postgres_limiter=False),
    Scenario("fault-free, PostgreSQL limiter", faults=False, postgres_limiter=True),
    Scenario("20% 503 + 10% hangs everywhere", faults=True, postgres_limiter=False),
)


def window_bound(requests: int, *, limit: int, window_seconds: float, latency_seconds: float) -> float:
    """Return the least time ``requests`` can take at ``limit`` per sliding window, plus one latency."""
    return (requests - 1) // limit * window_seconds + latency_seconds


def client_config(time_scale: float) -> ClientConfig:
    """The client settings of the benchmark: the platform's window, and one worker per slot of it.

    A window's worth of syncs leaves together when the window opens, so
    ``sync_workers = rate_limit`` lets the last window finish one latency
    after it opens; fewer workers stretch that last window.
    """
    return ClientConfig(
        rate_limit=RATE_LIMIT,
        rate_window_seconds=WINDOW_SECONDS * time_scale,
        limiter_safety_margin_seconds=max(MIN_SAFETY_MARGIN_SECONDS, SAFETY_MARGIN_SECONDS * time_scale),
        sync_workers=RATE_LIMIT,
        read_timeout_seconds=READ_TIMEOUT_SECONDS * time_scale,
        connect_timeout_seconds=5.0,
        backoff_base_seconds=DEFAULTS.backoff_base_seconds * time_scale,
        backoff_cap_seconds=DEFAULTS.backoff_cap_seconds * time_scale,
        token_refresh_margin_seconds=60.0,
    )


def run_scenario(scenario: Scenario, *, time_scale: float, seed: int, limiter_url: str | None) -> dict[str, Any]:
    """Sync one account-day under ``scenario``; return the figures."""
    config = client_config(time_scale)
    latency = SYNC_LATENCY_SECONDS * time_scale
    faults = FAULTS if scenario.faults else {"error_rate": 0.0, "hang_rate": 0.0}
    login = AccountCredentials(**demo_credentials([ACCOUNT])[ACCOUNT])
    with MockApiServer(
        profile="fast",
        seed=seed,
        rate_limit=RATE_LIMIT,
        rate_window_seconds=WINDOW_SECONDS * time_scale,
        sync_latency_seconds=latency,
        hang_seconds=600,
        **{f"{endpoint}_{name}": value for endpoint in ("token", "list", "sync") for name, value in faults.items()},
    ) as server:
        limiter: RateLimiter | None = None
        if scenario.postgres_limiter:
            assert limiter_url is not None
            limiter = PostgresSlidingWindowLimiter(
                limiter_url,
                limit=config.rate_limit,
                window_seconds=config.rate_window_seconds,
                safety_margin_seconds=config.limiter_safety_margin_seconds,
            )
        started = time.monotonic()
        with AdPlatformClient(server.url, ACCOUNT, login, config=config, limiter=limiter) as client:
            campaigns = client.fetch_campaigns(DAY)
            report = client.sync_campaigns([campaign["id"] for campaign in campaigns])
            stats = client.stats.as_metadata()
        wall = time.monotonic() - started
        if limiter is not None:
            limiter.close()
        counters = server.counters()
    counted = _requests_counted_by_the_window(counters["requests"][ACCOUNT])
    bound = window_bound(counted, limit=RATE_LIMIT, window_seconds=WINDOW_SECONDS * time_scale, latency_seconds=latency)
    return {
        "scenario": scenario.name,
        "campaigns": len(campaigns),
        "synced": len(report.synced),
        "failed": len(report.failed),
        "requests_counted": counted,
        "rate_limited": counters["rate_limited"],
        "hangs": counters["hangs"],
        "retries": stats["retries_by_class"],
        "token_fetches": stats["token_fetches"],
        "wall_seconds": round(wall, 2),
        "bound_seconds": round(bound, 2),
        "ratio": round(wall / bound, 3),
    }


def _requests_counted_by_the_window(by_endpoint: dict[str, dict[str, int]]) -> int:
    return sum(
        count
        for endpoint in ("list", "sync")
        for status, count in by_endpoint.get(endpoint, {}).items()
        if status != "429"
    )


def measure_postgres_acquire(limiter_url: str, admissions: int = 500) -> dict[str, float]:
    """Time ``admissions`` PostgreSQL limiter admissions that need no wait."""
    limiter = PostgresSlidingWindowLimiter(limiter_url, limit=1_000_000, window_seconds=60.0)
    try:
        limiter.acquire("warm-up")
        durations = []
        for _ in range(admissions):
            started = time.perf_counter()
            limiter.acquire(ACCOUNT)
            durations.append(time.perf_counter() - started)
    finally:
        limiter.close()
    durations.sort()
    return {
        "admissions": admissions,
        "mean_ms": round(statistics.fmean(durations) * 1000, 3),
        "p95_ms": round(durations[int(0.95 * len(durations))] * 1000, 3),
    }


def run(time_scale: float = 1.0, seed: int = 0, limiter_url: str | None = None) -> dict[str, Any]:
    """Run every scenario and the limiter micro-benchmark; return the figures.

    Args:
        time_scale: Factor applied to the window, the sync latency, the read
            timeout and the backoff (1.0: the contract's 60 s window and 2 s sync).
        seed: Seed of the simulator's faults.
        limiter_url: PostgreSQL database for the shared limiter; by default a
            fresh database on an embedded server in ``.campaign_pipeline/bench-client-pgdata``,
            stopped at the end unless it was already running.
    """
    created: tuple[str, str] | None = None
    stop_server = False
    if limiter_url is None:
        stop_server = not database.is_embedded_server_running(PG_DATA_DIR)
        admin_url = database.start_embedded_server(PG_DATA_DIR)
        name = f"bench_limiter_{uuid.uuid4().hex[:8]}"
        database.ensure_database(admin_url, name)
        limiter_url = database.with_database(admin_url, name)
        created = (admin_url, name)
    try:
        config = client_config(time_scale)
        return {
            "configuration": {
                "rate_limit": RATE_LIMIT,
                "rate_window_seconds": config.rate_window_seconds,
                "sync_latency_seconds": SYNC_LATENCY_SECONDS * time_scale,
                "sync_workers": config.sync_workers,
                "read_timeout_seconds": config.read_timeout_seconds,
                "limiter_safety_margin_seconds": config.limiter_safety_margin_seconds,
                "time_scale": time_scale,
                "seed": seed,
            },
            "scenarios": [
                run_scenario(scenario, time_scale=time_scale, seed=seed, limiter_url=limiter_url)
                for scenario in SCENARIOS
            ],
            "postgres_limiter_acquire": measure_postgres_acquire(limiter_url),
        }
    finally:
        if created is not None:
            database.drop_database(*created)
        if stop_server:
            database.stop_embedded_server(PG_DATA_DIR)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_client", description=__doc__.splitlines()[0])
    parser.add_argument("--time-scale", type=float, default=1.0, help="Shrink every duration by this factor.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the simulator's faults.")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = parser.parse_args()
    figures = run(time_scale=args.time_scale, seed=args.seed)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print("configuration: " + ", ".join(f"{key}={value}" for key, value in figures["configuration"].items()))
    print(f"{'scenario':<34} {'R':>4} {'bound s':>8} {'wall s':>8} {'ratio':>6} {'429s':>5} {'hangs':>5}  retries")
    for row in figures["scenarios"]:
        print(
            f"{row['scenario']:<34} {row['requests_counted']:>4} {row['bound_seconds']:>8.2f} "
            f"{row['wall_seconds']:>8.2f} {row['ratio']:>6.3f} {row['rate_limited']:>5} {row['hangs']:>5}  "
            f"{row['retries']}"
            + (f"  ({row['failed']} campaigns failed)" if row["failed"] else "")
        )
    acquire = figures["postgres_limiter_acquire"]
    print(
        f"PostgreSQL limiter admission without wait: mean {acquire['mean_ms']} ms, "
        f"p95 {acquire['p95_ms']} ms over {acquire['admissions']}"
    )


if __name__ == "__main__":
    main()
