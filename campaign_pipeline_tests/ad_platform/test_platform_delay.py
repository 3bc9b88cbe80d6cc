"""A platform that counts a request late (it queues it) must not cost a 429 either.

A TCP proxy between the client and the simulator holds page 1's request for
0.4 s before passing it on, as a platform busy with a burst would: the
simulator counts it 0.4 s after the client sent it. With one request per
1 s window and a 0.1 s safety margin, a slot dated at sending would let
page 2 arrive 0.7 s after page 1 (a 429, the control test); dated once the
answer came, it arrives a full window after.

The first window of a run is sent into a platform that is still catching up:
when the first syncs are all held, the quickest sync answer seen so far is
late too, and the slots it dates are dated too early. The first quicker answer
dates those slots again (arrival.py), before the next window opens.
"""

from __future__ import annotations

import itertools
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from campaign_pipeline.ad_platform import AdPlatformClient, PostgresSlidingWindowLimiter, RateLimiter, SlidingWindowLimiter
from campaign_pipeline.ad_platform.limiter import Admission
from campaign_pipeline_tests.ad_platform.conftest import credentials
from campaign_pipeline_tests.ad_platform.test_integration import ACCOUNT, DAY, shortened_config
from mock_api.testing import MockApiServer

WINDOW = 1.0
MARGIN = 0.1
HOLD_SECONDS = 0.4


@contextmanager
def holding_proxy(upstream_port: int, hold: Callable[[bytes], float]) -> Iterator[str]:
    """Forward TCP to ``upstream_port``, holding each client chunk ``hold(chunk)`` seconds first."""
    listener = socket.create_server(("127.0.0.1", 0))
    stopped = threading.Event()

    def pump(source: socket.socket, target: socket.socket, delay: Callable[[bytes], float] | None) -> None:
        try:
            while chunk := source.recv(65536):
                if delay is not None:
                    time.sleep(delay(chunk))
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def accept() -> None:
        while not stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", upstream_port))
            threading.Thread(target=pump, args=(client, upstream, hold), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client, None), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stopped.set()
        listener.close()


def hold_page_one(chunk: bytes) -> float:
    return HOLD_SECONDS if chunk.startswith(b"GET /api/campaigns?page=1&") else 0.0


class UndatedLimiter:
    """A real limiter whose slots keep the time they were taken (the control case)."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    def admit(self, account_id: str, **options: Any) -> Admission:
        admission = self._limiter.admit(account_id, **options)
        return Admission(
            admission.waited_seconds, admission.taken_at, lambda age: True, restamp_after_seconds=math.inf,
            clock=time.monotonic,
        )

    def defer(self, account_id: str, seconds: float) -> None:
        self._limiter.defer(account_id, seconds)

    def close(self) -> None:
        self._limiter.close()


def list_through_a_busy_platform(limiter: RateLimiter) -> tuple[dict[str, Any], dict[str, Any], list[float]]:
    config = shortened_config(
        rate_limit=1, rate_window_seconds=WINDOW, limiter_safety_margin_seconds=MARGIN, page_size=50, page_workers=1,
    )
    with MockApiServer(profile="fast", seed=0, rate_limit=1, rate_window_seconds=WINDOW) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with (
            holding_proxy(port, hold_page_one) as url,
            AdPlatformClient(url, ACCOUNT, credentials(ACCOUNT), config=config, limiter=limiter) as client,
        ):
            assert len(client.fetch_campaigns(DAY)) == 100
            arrivals = [r["arrived_at"] for r in server.requests() if r["endpoint"] == "list" and r["status"] != 429]
            return server.counters(), client.stats.as_metadata(), arrivals


@pytest.mark.parametrize("shared", [False, True], ids=["in_process", "postgres"])
def test_a_request_counted_late_dates_its_slot_so_the_next_one_gets_no_429(
    shared: bool, make_database: Callable[[str], str]
) -> None:
    limiter: RateLimiter = (
        PostgresSlidingWindowLimiter(make_database("limiter"), limit=1, window_seconds=WINDOW, safety_margin_seconds=MARGIN)
        if shared
        else SlidingWindowLimiter(1, WINDOW, safety_margin_seconds=MARGIN)
    )
    try:
        counters, stats, arrivals = list_through_a_busy_platform(limiter)
    finally:
        limiter.close()
    assert counters["rate_limited"] == 0
    assert stats["limiter_redates"] >= 1
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= WINDOW


def test_without_dating_the_late_counted_request_costs_a_429() -> None:
    counters, stats, _ = list_through_a_busy_platform(UndatedLimiter(SlidingWindowLimiter(1, WINDOW, safety_margin_seconds=MARGIN)))
    assert counters["rate_limited"] == 1
    assert stats["limiter_redates"] == 0


SYNC_WINDOW = 1.5
SYNC_LIMIT = 6
SYNC_LATENCY = 0.1
HELD_SYNCS = 2


def hold_the_first_syncs(count: int) -> Callable[[bytes], float]:
    held = itertools.count()

    def hold(chunk: bytes) -> float:
        if chunk.startswith(b"POST /api/campaigns/") and next(held) < count:
            return HOLD_SECONDS
        return 0.0

    return hold


@pytest.mark.parametrize("shared", [False, True], ids=["in_process", "postgres"])
def test_slots_dated_by_a_late_burst_are_dated_again_by_the_first_quicker_answer(
    shared: bool, make_database: Callable[[str], str]
) -> None:
    # One sync at a time. The first two are held 0.4 s, then the platform keeps up (0.1 s a sync).
    # The first sync answer is dated at its answer; the second, dated by the first one's 0.5 s, would be
    # dated 0.4 s early and let the eighth request arrive 1.3 s after it (a 429, the window being 1.5 s),
    # but the third answer's 0.1 s dates it again at its real arrival.
    config = shortened_config(
        rate_limit=SYNC_LIMIT, rate_window_seconds=SYNC_WINDOW, limiter_safety_margin_seconds=MARGIN,
        page_size=50, page_workers=1, sync_workers=1,
    )
    limiter: RateLimiter = (
        PostgresSlidingWindowLimiter(
            make_database("limiter"), limit=SYNC_LIMIT, window_seconds=SYNC_WINDOW, safety_margin_seconds=MARGIN
        )
        if shared
        else SlidingWindowLimiter(SYNC_LIMIT, SYNC_WINDOW, safety_margin_seconds=MARGIN)
    )
    try:
        with MockApiServer(
            profile="fast", seed=0, campaign_count=10, rate_limit=SYNC_LIMIT, rate_window_seconds=SYNC_WINDOW,
            sync_latency_seconds=SYNC_LATENCY,
        ) as server:
            port = int(server.url.rsplit(":", 1)[1])
            with (
                holding_proxy(port, hold_the_first_syncs(HELD_SYNCS)) as url,
                AdPlatformClient(url, ACCOUNT, credentials(ACCOUNT), config=config, limiter=limiter) as client,
            ):
                campaigns = client.fetch_campaigns(DAY)
                report = client.sync_campaigns([campaign["id"] for campaign in campaigns])
                counted = [r["arrived_monotonic"] for r in server.requests() if r["endpoint"] in ("list", "sync")]
                counters = server.counters()
    finally:
        limiter.close()
    assert (len(campaigns), len(report.synced), report.failed) == (10, 10, {})
    assert counters["rate_limited"] == 0
    assert len(counted) == 11
    assert min(later - earlier for earlier, later in zip(counted, counted[SYNC_LIMIT:])) >= SYNC_WINDOW
