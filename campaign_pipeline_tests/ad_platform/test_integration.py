"""The client against the simulator's profiles, windows shortened for test time, and two processes at once."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from campaign_pipeline.ad_platform import (
    AdPlatformClient,
    ClientConfig,
    PostgresSlidingWindowLimiter,
    RateLimiter,
    SlidingWindowLimiter,
)
from campaign_pipeline.ad_platform.limiter import Admission
from campaign_pipeline_tests.ad_platform.conftest import credentials
from campaign_pipeline_tests.conftest import REPO_ROOT
from mock_api.dataset import expected_campaigns
from mock_api.testing import MockApiServer

DAY = date(2026, 11, 27)
ACCOUNT = "acme-retail"
RATE_LIMIT = 50
WINDOW = 0.5
MARGIN = 0.1
STATIC_FIELDS = ("id", "name", "budget", "created_at")
PAIR_RATE_LIMIT = 10
PAIR_WINDOW = 2.0
PAIR_MARGIN = 0.5


def shortened_config(**settings: Any) -> ClientConfig:
    return ClientConfig(
        **{
            "rate_limit": RATE_LIMIT,
            "rate_window_seconds": WINDOW,
            "limiter_safety_margin_seconds": MARGIN,
            "read_timeout_seconds": 0.6,
            "backoff_base_seconds": 0.05,
            "backoff_cap_seconds": 0.5,
            "token_refresh_margin_seconds": 0.5,
            "sync_workers": RATE_LIMIT,
            **settings,
        }
    )


def sync_account_day(server: MockApiServer, config: ClientConfig) -> tuple[list[dict[str, Any]], Any, dict[str, Any]]:
    with AdPlatformClient(server.url, ACCOUNT, credentials(ACCOUNT), config=config) as client:
        campaigns = client.fetch_campaigns(DAY)
        report = client.sync_campaigns([campaign["id"] for campaign in campaigns])
        return campaigns, report, client.stats.as_metadata()


def shortened_server(profile: str, seed: int, **options: Any) -> MockApiServer:
    return MockApiServer(
        profile=profile,
        seed=seed,
        rate_limit=RATE_LIMIT,
        rate_window_seconds=WINDOW,
        sync_latency_seconds=0.05,
        hang_seconds=5,
        **options,
    )


def test_original_profile_yields_exactly_the_days_campaigns_without_a_429() -> None:
    with shortened_server("original", seed=11) as server:
        campaigns, report, stats = sync_account_day(server, shortened_config(page_size=10))
        counters = server.counters()
    assert campaigns == expected_campaigns(ACCOUNT, DAY, seed=11)
    assert sorted(report.synced) == sorted(campaign["id"] for campaign in campaigns)
    assert report.failed == {}
    assert counters["rate_limited"] == 0
    assert (
        stats["retries_by_class"].get("transient", 0)
        == counters["requests"][ACCOUNT]["list"].get("503", 0) + counters["hangs"]
    )


def test_chaos_profile_yields_exactly_the_days_campaigns() -> None:
    with shortened_server("chaos", seed=5, token_lifetime_seconds=1.0) as server:
        campaigns, report, stats = sync_account_day(server, shortened_config())
        counters = server.counters()
    assert campaigns == expected_campaigns(ACCOUNT, DAY, seed=5)
    assert len(report.synced) == 100 and report.failed == {}
    assert counters["hangs"] > 0
    assert stats["retries_by_class"]["transient"] > 0
    assert stats["token_fetches"] == counters["tokens_issued"] >= 2


@pytest.mark.parametrize("page_size", [10, 100])
def test_upstream_quirks_still_give_exactly_100_campaigns(page_size: int) -> None:
    with shortened_server("original", seed=3, upstream_quirks=True) as server:
        campaigns, report, _ = sync_account_day(server, shortened_config(page_size=page_size))
        counters = server.counters()
    expected = expected_campaigns(ACCOUNT, DAY, seed=3)
    assert [{key: c[key] for key in STATIC_FIELDS} for c in campaigns] == [
        {key: c[key] for key in STATIC_FIELDS} for c in expected
    ]
    assert len(report.synced) == 100
    assert counters["rate_limited"] == 0
    assert counters["requests"][ACCOUNT]["list"].get("503", 0) == (2 if page_size == 10 else 0)


def pair_server() -> MockApiServer:
    return MockApiServer(
        profile="fast", seed=0, rate_limit=PAIR_RATE_LIMIT, rate_window_seconds=PAIR_WINDOW, sync_latency_seconds=0.05
    )


def run_two_syncs(server: MockApiServer, campaigns: int, limiter_url: str | None) -> list[dict[str, Any]]:
    # Two cold processes on a loaded 2-core machine delayed some requests by up to
    # ~0.3 s between slot and arrival; the margin covers that (the real window is 60 s).
    command = [
        sys.executable,
        "-m",
        "campaign_pipeline_tests.ad_platform.sync_process",
        server.url,
        ACCOUNT,
        DAY.isoformat(),
        str(campaigns),
        "--rate-limit",
        str(PAIR_RATE_LIMIT),
        "--rate-window-seconds",
        str(PAIR_WINDOW),
        "--safety-margin-seconds",
        str(PAIR_MARGIN),
        *(["--limiter-url", limiter_url] if limiter_url else []),
    ]
    processes = [subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE) for _ in range(2)]
    outputs = [process.communicate(timeout=60)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0]
    return [json.loads(output) for output in outputs]


def overlap_seconds(server: MockApiServer) -> float:
    """How long the two processes' API requests interleaved, judged by the server's arrival times."""
    records = [r for r in server.requests() if r["endpoint"] in ("list", "sync")]
    lists = sorted(r["arrived_at"] for r in records if r["endpoint"] == "list")
    return max(r["arrived_at"] for r in records) - lists[-1]


def test_two_processes_of_one_account_share_the_window_and_see_no_429(make_database: Callable[[str], str]) -> None:
    with pair_server() as server:
        results = run_two_syncs(server, campaigns=15, limiter_url=make_database("limiter"))
        counters = server.counters()
        overlap = overlap_seconds(server)
    assert [len(result["synced"]) for result in results] == [15, 15]
    assert [result["stats"]["rate_limited_total"] for result in results] == [0, 0]
    assert counters["rate_limited"] == 0
    assert counters["requests"][ACCOUNT]["sync"] == {"200": 30}
    assert overlap > 2 * PAIR_WINDOW


def test_without_the_shared_limiter_two_processes_do_hit_429s() -> None:
    with pair_server() as server:
        results = run_two_syncs(server, campaigns=15, limiter_url=None)
        counters = server.counters()
    assert [len(result["synced"]) for result in results] == [15, 15]
    assert counters["rate_limited"] > 0


STARVED_WINDOW = 0.5
STARVED_MARGIN = 0.1
STARVED_DELAY = 0.35


class StarvedLimiter:
    """A real limiter whose first admitted request is sent ``delay`` seconds late, as by a CPU-starved thread.

    With ``stamp_at_admission`` the slots keep the time they were taken, as
    before slots were stamped again at sending (the control case).
    """

    def __init__(self, limiter: RateLimiter, delay: float, *, stamp_at_admission: bool = False) -> None:
        self._limiter = limiter
        self._delay = delay
        self._stamp_at_admission = stamp_at_admission
        self._starved = False

    def admit(self, account_id: str, **options: Any) -> Admission:
        admission = self._limiter.admit(account_id, **options)
        if self._stamp_at_admission:
            admission = Admission(
                admission.waited_seconds, admission.taken_at, lambda age: True, restamp_after_seconds=math.inf,
                clock=time.monotonic,
            )
        if not self._starved:
            self._starved = True
            time.sleep(self._delay)
        return admission

    def defer(self, account_id: str, seconds: float) -> None:
        self._limiter.defer(account_id, seconds)

    def close(self) -> None:
        self._limiter.close()


def starved_listing(limiter: RateLimiter) -> tuple[dict[str, Any], dict[str, Any], list[float]]:
    """List 100 campaigns in two pages, one request per window, the first request sent late."""
    config = shortened_config(
        rate_limit=1, rate_window_seconds=STARVED_WINDOW, limiter_safety_margin_seconds=STARVED_MARGIN,
        page_size=50, page_workers=1,
    )
    with (
        MockApiServer(profile="fast", seed=0, rate_limit=1, rate_window_seconds=STARVED_WINDOW) as server,
        AdPlatformClient(server.url, ACCOUNT, credentials(ACCOUNT), config=config, limiter=limiter) as client,
    ):
        assert len(client.fetch_campaigns(DAY)) == 100
        arrivals = [r["arrived_at"] for r in server.requests() if r["endpoint"] == "list" and r["status"] != 429]
        return server.counters(), client.stats.as_metadata(), arrivals


@pytest.mark.parametrize("shared", [False, True], ids=["in_process", "postgres"])
def test_a_request_sent_late_is_stamped_at_sending_so_the_next_one_gets_no_429(
    shared: bool, make_database: Callable[[str], str]
) -> None:
    # Page 1's slot is taken at t=0 and sent at t=0.35. Stamped at 0.35, it holds page 2
    # until 0.35 + 0.6; stamped at 0 it would free page 2 at 0.6, 0.25 s after page 1
    # arrived, and the platform's 0.5 s window would refuse it (the control test below).
    limiter: RateLimiter = (
        PostgresSlidingWindowLimiter(
            make_database("limiter"), limit=1, window_seconds=STARVED_WINDOW, safety_margin_seconds=STARVED_MARGIN
        )
        if shared
        else SlidingWindowLimiter(1, STARVED_WINDOW, safety_margin_seconds=STARVED_MARGIN)
    )
    try:
        counters, stats, arrivals = starved_listing(StarvedLimiter(limiter, STARVED_DELAY))
    finally:
        limiter.close()
    assert counters["rate_limited"] == 0
    assert (stats["limiter_restamps"], stats["limiter_lapses"]) == (1, 0)
    assert arrivals[1] - arrivals[0] >= STARVED_WINDOW


def test_without_stamping_at_sending_the_late_request_costs_a_429() -> None:
    limiter = SlidingWindowLimiter(1, STARVED_WINDOW, safety_margin_seconds=STARVED_MARGIN)
    counters, stats, arrivals = starved_listing(StarvedLimiter(limiter, STARVED_DELAY, stamp_at_admission=True))
    assert counters["rate_limited"] == 1
    assert stats["limiter_restamps"] == 0
