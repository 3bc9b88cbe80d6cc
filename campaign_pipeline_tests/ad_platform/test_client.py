"""The client against a real simulator over HTTP; clock and sleep are injected where time matters."""

from __future__ import annotations

import base64
import logging
import random
import re
import threading
import time
from datetime import date
from typing import Any

import pytest

from campaign_pipeline.accounts import AccountCredentials
from campaign_pipeline.ad_platform import (
    AdPlatformClient,
    AuthenticationError,
    ClientConfig,
    DeadlineExceeded,
    InvalidResponseError,
    PaginationError,
    RetryBudget,
    RetryBudgetExhausted,
    SlidingWindowLimiter,
)
from campaign_pipeline_tests.ad_platform.conftest import SEED, credentials
from campaign_pipeline_tests.ad_platform.fakes import FakeClock
from mock_api.dataset import expected_campaigns
from mock_api.testing import MockApiServer

DAY = date(2026, 11, 27)
ACCOUNT = "acme-retail"
FAST = {
    "read_timeout_seconds": 0.5,
    "connect_timeout_seconds": 1.0,
    "backoff_base_seconds": 0.01,
    "backoff_cap_seconds": 0.05,
    "limiter_safety_margin_seconds": 0.0,
    "rate_limit": 1_000_000,
    "rate_window_seconds": 1.0,
}


def make_client(
    api: MockApiServer, account_id: str = ACCOUNT, *, login: AccountCredentials | None = None, **settings: Any
) -> AdPlatformClient:
    options = {
        key: settings.pop(key)
        for key in ("clock", "sleep", "limiter", "logger", "log_context", "rng")
        if key in settings
    }
    return AdPlatformClient(
        api.url, account_id, login or credentials(account_id), config=ClientConfig(**{**FAST, **settings}), **options
    )


def server_requests(api: MockApiServer, endpoint: str, account: str = ACCOUNT) -> dict[str, int]:
    return api.counters()["requests"].get(account, {}).get(endpoint, {})


def refused_requests(api: MockApiServer, endpoint: str) -> dict[str, int]:
    """Requests the simulator refused before knowing their account (bad login, expired token)."""
    return server_requests(api, endpoint, account="(unauthenticated)")


class MaxRandom(random.Random):
    """Jitter that always draws the ceiling, so that backoffs are exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


class TestListing:
    def test_fetch_campaigns_returns_exactly_the_platforms_campaigns_of_the_day(self, api: MockApiServer) -> None:
        with make_client(api) as client:
            campaigns = client.fetch_campaigns(DAY)
        assert campaigns == expected_campaigns(ACCOUNT, DAY, seed=SEED)
        assert [record["path"] for record in api.requests() if record["endpoint"] == "list"] == [
            "/api/campaigns?page=1&limit=100&date=2026-11-27"
        ]

    def test_smaller_pages_are_followed_to_the_end(self, api: MockApiServer) -> None:
        pages: list[tuple[int, int]] = []
        with make_client(api, page_size=30) as client:
            campaigns = client.fetch_campaigns(
                DAY, on_page=lambda page: pages.append((page.number, len(page.campaigns)))
            )
        assert pages == [(1, 30), (2, 30), (3, 30), (4, 10)]
        assert campaigns == expected_campaigns(ACCOUNT, DAY, seed=SEED)

    def test_a_page_limit_the_platform_refuses_is_a_fatal_error(self, api: MockApiServer) -> None:
        with make_client(api, page_size=500) as client, pytest.raises(Exception) as raised:
            client.fetch_campaigns(DAY)
        assert str(raised.value).startswith(
            "Account 'acme-retail': GET /api/campaigns failed (HTTP 400): HTTP 400 Bad request"
        )
        assert server_requests(api, "list") == {"400": 1}

    @pytest.mark.parametrize("page_workers", [1, 4])
    def test_pages_fetched_ahead_are_accepted_in_order_and_each_requested_once(
        self, api: MockApiServer, page_workers: int
    ) -> None:
        pages: list[int] = []
        with make_client(api, page_size=10, page_workers=page_workers) as client:
            campaigns = client.fetch_campaigns(DAY, on_page=lambda page: pages.append(page.number))
        assert pages == list(range(1, 11))
        assert campaigns == expected_campaigns(ACCOUNT, DAY, seed=SEED)
        requested = sorted(
            int(re.search(r"page=(\d+)", record["path"]).group(1))
            for record in api.requests()
            if record["endpoint"] == "list"
        )
        assert requested == list(range(1, 11))

    def test_has_more_that_lies_at_total_stops_the_listing_without_a_page_beyond(self) -> None:
        with (
            MockApiServer(profile="fast", seed=SEED, upstream_quirks=True) as quirky,
            make_client(quirky, page_size=25, page_workers=4) as client,
        ):
            campaigns = client.fetch_campaigns(DAY)
            paths = [record["path"] for record in quirky.requests() if record["endpoint"] == "list"]
        assert [campaign["id"] for campaign in campaigns] == [f"campaign_{n}" for n in range(1, 101)]
        assert sorted(paths) == [f"/api/campaigns?page={n}&limit=25&date=2026-11-27" for n in range(1, 5)]

    def test_a_bad_page_fetched_ahead_fails_the_listing_at_its_turn_and_nothing_further_is_asked(
        self, api: MockApiServer
    ) -> None:
        api.set_responses([{"kind": "wrong_type", "page": 3}])
        pages: list[int] = []
        try:
            with make_client(api, page_size=10, page_workers=4) as client, pytest.raises(InvalidResponseError) as raised:
                client.fetch_campaigns(DAY, on_page=lambda page: pages.append(page.number))
            requested = {
                int(re.search(r"page=(\d+)", record["path"]).group(1))
                for record in api.requests()
                if record["endpoint"] == "list"
            }
        finally:
            api.set_responses([])
        assert "page 3, campaign #1 (id 'campaign_21'): field 'impressions' is a string" in str(raised.value)
        assert pages == [1, 2]
        # Page 3 is awaited with pages 4..6 in flight, never more than page_workers ahead.
        assert {1, 2, 3} <= requested <= set(range(1, 7))

    def test_pages_beyond_total_fail_loudly(self) -> None:
        with (
            MockApiServer(profile="fast", seed=SEED, upstream_quirks=True) as quirky,
            make_client(quirky, page_size=30) as client,
            pytest.raises(PaginationError) as raised,
        ):
            client.fetch_campaigns(DAY)
        assert str(raised.value) == (
            "Account 'acme-retail': the campaign list of 2026-11-27: page 4 brings the listing to 120 distinct "
            "campaigns, more than the stated total of 100."
        )


class TestSync:
    def test_every_campaign_is_synced_once_and_reported(self, api: MockApiServer) -> None:
        ids = [f"campaign_{n}" for n in range(1, 21)]
        reported: list[str] = []
        lock = threading.Lock()

        def on_synced(campaign_id: str) -> None:
            with lock:
                reported.append(campaign_id)

        with make_client(api, sync_workers=4) as client:
            report = client.sync_campaigns(ids, on_synced=on_synced)
        assert sorted(report.synced) == sorted(ids) == sorted(reported)
        assert report.failed == {}
        assert report.attempts == {campaign_id: 1 for campaign_id in ids}
        assert server_requests(api, "sync") == {"200": 20}

    def test_unknown_campaign_is_reported_by_id_and_the_others_still_sync(self, api: MockApiServer) -> None:
        with make_client(api) as client:
            report = client.sync_campaigns(["campaign_1", "campaign_999", "campaign_2"])
        assert sorted(report.synced) == ["campaign_1", "campaign_2"]
        assert report.failed == {
            "campaign_999": "POST /api/campaigns/{id}/sync failed (HTTP 404): HTTP 404 Not found: "
            "Campaign 'campaign_999' does not exist in account 'acme-retail'"
        }
        assert report.attempts["campaign_999"] == 1

    def test_a_campaign_that_keeps_failing_is_retried_within_its_budget_then_reported(self, api: MockApiServer) -> None:
        api.set_faults({"sync": {"error_rate": 1.0}})
        clock = FakeClock()
        with make_client(
            api, clock=clock, sleep=clock.sleep, transient_retry=RetryBudget(retries=2, seconds=60)
        ) as client:
            report = client.sync_campaigns(["campaign_1", "campaign_2"])
        assert report.synced == []
        assert report.attempts == {"campaign_1": 3, "campaign_2": 3}
        assert report.failed["campaign_1"] == (
            "POST /api/campaigns/campaign_1/sync gave up after 3 attempts: HTTP 503 Service temporarily "
            "unavailable: The platform is temporarily unavailable; retry later; "
            "the transient budget of 2 retries is spent"
        )
        assert server_requests(api, "sync") == {"503": 6}

    def test_a_failing_progress_callback_stops_the_sync_and_is_raised(self, api: MockApiServer) -> None:
        api.set_faults({"rate_limit": 3, "rate_window_seconds": 0.5, "sync_latency_seconds": 0.05})

        def on_synced(campaign_id: str) -> None:
            raise RuntimeError(f"cannot record {campaign_id}")

        started = time.monotonic()
        with (
            make_client(api, rate_limit=3, rate_window_seconds=0.5, limiter_safety_margin_seconds=0.05) as client,
            pytest.raises(RuntimeError, match="cannot record campaign_"),
        ):
            client.sync_campaigns([f"campaign_{n}" for n in range(1, 31)], on_synced=on_synced)
        # Workers already holding a slot finish their request; nobody takes a new one.
        assert server_requests(api, "sync") == {"200": 3}
        assert time.monotonic() - started < 1.0

    def test_repeated_ids_are_refused(self, api: MockApiServer) -> None:
        with make_client(api) as client, pytest.raises(ValueError, match="campaign_ids repeats 'campaign_1'"):
            client.sync_campaigns(["campaign_1", "campaign_2", "campaign_1"])

    def test_no_campaigns_means_no_request(self, api: MockApiServer) -> None:
        with make_client(api) as client:
            assert client.sync_campaigns([]).synced == []
        assert api.counters()["total_requests"] == 0


class TestHangDetection:
    """Sequential syncs (one worker), so that the order of attempts, and so every figure, is exact."""

    LEARNING = {"read_timeout_seconds": 5.0, "hang_detection_floor_seconds": 0.1, "sync_workers": 1}

    def test_a_hung_sync_is_given_up_after_the_learned_timeout_not_the_configured_one(self, api: MockApiServer) -> None:
        api.set_faults({"sync_latency_seconds": 0.02})
        with make_client(api, **self.LEARNING) as client:
            assert client.sync_campaigns([f"campaign_{n}" for n in range(1, 11)]).failed == {}
            api.set_faults({"sync": {"hang_rate": 0.2}})
            ids = [f"campaign_{n}" for n in range(11, 51)]
            started = time.monotonic()
            report = client.sync_campaigns(ids)
            seconds = time.monotonic() - started
            stats = client.stats.as_metadata()
        hangs = api.counters()["hangs"]
        assert sorted(report.synced) == sorted(ids) and report.failed == {}
        assert hangs > 0
        assert stats["hangs_detected_early"] == hangs
        assert stats["requests_by_endpoint"]["POST /api/campaigns/{id}/sync"] == {"200": 50, "read_timeout": hangs}
        # Each hang cost the learned 0.1 s, where one configured timeout alone is 5 s.
        assert seconds < 5.0

    def test_a_call_that_timed_out_early_three_times_in_a_row_waits_the_configured_timeout(
        self, api: MockApiServer
    ) -> None:
        api.set_faults({"sync_latency_seconds": 0.02})
        with make_client(api, **self.LEARNING) as client:
            client.sync_campaigns([f"campaign_{n}" for n in range(1, 11)])
            api.set_faults({"sync_latency_seconds": 0.2})
            ids = [f"campaign_{n}" for n in range(11, 21)]
            report = client.sync_campaigns(ids)
            stats = client.stats.as_metadata()
        # The platform slowed down: campaign_11 timed out at the learned 0.1 s three times, then waited the
        # configured timeout, which taught the endpoint the 0.2 s answers; nothing else timed out.
        assert sorted(report.synced) == sorted(ids) and report.failed == {}
        assert report.attempts == {"campaign_11": 4} | {campaign_id: 1 for campaign_id in ids[1:]}
        assert stats["hangs_detected_early"] == 3
        # The platform still answered the three it was slow on, after the client had stopped waiting.
        assert server_requests(api, "sync") == {"200": 23}
        assert api.counters()["hangs"] == 0

    def test_hang_detection_can_be_turned_off(self, api: MockApiServer) -> None:
        api.set_faults({"sync_latency_seconds": 0.02})
        with make_client(api, **self.LEARNING, hang_detection_multiplier=None) as client:
            client.sync_campaigns([f"campaign_{n}" for n in range(1, 11)])
            api.set_faults({"sync_latency_seconds": 0.3})
            report = client.sync_campaigns(["campaign_11"])
            stats = client.stats.as_metadata()
        assert report.attempts == {"campaign_11": 1}
        assert stats["hangs_detected_early"] == 0


class TestRetries:
    def test_503s_are_retried_with_capped_backoff_until_the_budget_ends(self, api: MockApiServer) -> None:
        api.set_faults({"list": {"error_rate": 1.0}})
        clock = FakeClock()
        budget = RetryBudget(retries=4, seconds=60)
        with (
            make_client(
                api,
                clock=clock,
                sleep=clock.sleep,
                transient_retry=budget,
                backoff_base_seconds=1.0,
                backoff_cap_seconds=2.0,
            ) as client,
            pytest.raises(RetryBudgetExhausted) as raised,
        ):
            client.fetch_campaigns(DAY)
        assert raised.value.attempts == 5
        assert "the transient budget of 4 retries is spent" in str(raised.value)
        assert server_requests(api, "list") == {"503": 5}
        backoffs = [wait for wait in clock.sleeps if wait > 0]
        assert len(backoffs) == 4 and all(0 < wait <= 2.0 for wait in backoffs)
        assert client.stats.as_metadata()["retries_by_class"] == {"transient": 4}

    def test_hung_requests_time_out_and_are_retried(self, api: MockApiServer) -> None:
        api.set_faults({"list": {"hang_rate": 1.0}})
        started = time.monotonic()
        with make_client(api, read_timeout_seconds=0.2, transient_retry=RetryBudget(retries=2, seconds=60)) as client:
            with pytest.raises(RetryBudgetExhausted, match=r"no answer within the read timeout \(the request hung\)"):
                client.fetch_campaigns(DAY)
            stats = client.stats.as_metadata()
        assert 0.6 <= time.monotonic() - started < 2.0
        assert stats["requests_by_endpoint"] == {
            "GET /api/campaigns": {"read_timeout": 3},
            "POST /auth/token": {"200": 1},
        }
        assert api.counters()["hangs"] == 3

    def test_seeded_faults_are_survived_and_counted_like_the_server_counts_them(self, api: MockApiServer) -> None:
        api.set_faults({"list": {"error_rate": 0.5}, "sync": {"error_rate": 0.3}, "token": {"error_rate": 0.5}})
        with make_client(api, page_size=10, sync_workers=4) as client:
            campaigns = client.fetch_campaigns(DAY)
            report = client.sync_campaigns([campaign["id"] for campaign in campaigns])
            stats = client.stats.as_metadata()
        assert campaigns == expected_campaigns(ACCOUNT, DAY, seed=SEED)
        assert len(report.synced) == 100 and report.failed == {}
        server = api.counters()["requests"][ACCOUNT]
        assert stats["requests_by_endpoint"] == {
            "GET /api/campaigns": server["list"],
            "POST /api/campaigns/{id}/sync": server["sync"],
            "POST /auth/token": server["token"],
        }
        assert stats["retries_by_class"] == {"transient": stats["requests_total"] - stats["calls_succeeded"]}

    def test_429_with_retry_after_makes_every_caller_of_the_account_wait(self, api: MockApiServer) -> None:
        api.set_faults({"rate_limit": 3, "rate_window_seconds": 0.5})
        limiter = SlidingWindowLimiter(1_000_000, 1.0)
        with make_client(api, limiter=limiter, sync_workers=3) as client:
            started = time.monotonic()
            report = client.sync_campaigns([f"campaign_{n}" for n in range(1, 6)])
            elapsed = time.monotonic() - started
            stats = client.stats.as_metadata()
        assert sorted(report.synced) == [f"campaign_{n}" for n in range(1, 6)]
        assert stats["rate_limited_total"] >= 1
        assert stats["retries_by_class"]["rate_limited"] == stats["rate_limited_total"]
        # The simulator asks for 1 s (Retry-After: 1): after the first 429, only requests
        # already in flight arrive before that second has passed.
        assert elapsed >= 1.0
        rate_limited_at = min(r["arrived_at"] for r in api.requests() if r["status"] == 429)
        later = [r["arrived_at"] - rate_limited_at for r in api.requests() if r["arrived_at"] > rate_limited_at]
        assert later and all(delay < 0.05 or delay >= 1.0 for delay in later)
        assert max(later) >= 1.0

    def test_429_body_retry_after_is_read_without_a_header(self) -> None:
        with MockApiServer(
            profile="fast", seed=SEED, upstream_quirks=True, rate_limit=1, rate_window_seconds=60
        ) as quirky:
            limiter = SlidingWindowLimiter(1_000_000, 1.0)
            budget = RetryBudget(retries=3, seconds=10)
            with make_client(quirky, limiter=limiter, rate_limited_retry=budget, sync_workers=1) as client:
                report = client.sync_campaigns(["campaign_1", "campaign_2"])
        assert report.synced == ["campaign_1"]
        assert report.failed["campaign_2"].endswith(
            "HTTP 429 Rate limit exceeded: Too many requests, please try again later; "
            "waiting 60.0 s more would exceed the rate-limited budget of 10 s"
        )

    def test_each_account_has_its_own_upstream_window_because_every_request_names_it(self) -> None:
        # Upstream counts the window per X-Client-ID; without the header every account would share one.
        with MockApiServer(
            profile="fast", seed=SEED, upstream_quirks=True, rate_limit=4, rate_window_seconds=60
        ) as quirky:
            reports = []
            for account_id in ("acme-retail", "globex"):
                no_waiting = RetryBudget(retries=0, seconds=0)
                with make_client(quirky, account_id, rate_limited_retry=no_waiting) as client:
                    reports.append(client.sync_campaigns([f"campaign_{n}" for n in range(1, 5)]))
            counters = quirky.counters()
        assert [(len(report.synced), report.failed) for report in reports] == [(4, {}), (4, {})]
        assert counters["rate_limited"] == 0

    def test_the_proactive_limiter_prevents_every_429(self, api: MockApiServer) -> None:
        api.set_faults({"rate_limit": 5, "rate_window_seconds": 0.25})
        started = time.monotonic()
        with make_client(api, rate_limit=5, rate_window_seconds=0.25, limiter_safety_margin_seconds=0.05) as client:
            report = client.sync_campaigns([f"campaign_{n}" for n in range(1, 21)])
        elapsed = time.monotonic() - started
        assert len(report.synced) == 20
        assert api.counters()["rate_limited"] == 0
        assert elapsed >= 3 * 0.25


class TestTokens:
    def test_expired_token_is_refreshed_once_for_16_workers(self, api: MockApiServer) -> None:
        api.set_faults({"token_lifetime_seconds": 0.3, "sync_latency_seconds": 0.05})
        frozen = FakeClock()
        with make_client(api, clock=frozen, sleep=frozen.sleep, sync_workers=16) as client:
            client.fetch_campaigns(DAY)
            time.sleep(0.35)
            report = client.sync_campaigns([f"campaign_{n}" for n in range(1, 17)])
            stats = client.stats.as_metadata()
        assert len(report.synced) == 16
        assert api.counters()["tokens_issued"] == 2
        assert stats["token_fetches"] == 2
        assert refused_requests(api, "sync")["401"] == stats["retries_by_class"]["token"] >= 1

    def test_token_is_refreshed_before_it_expires(self, api: MockApiServer) -> None:
        api.set_faults({"token_lifetime_seconds": 100})
        clock = FakeClock()
        with make_client(api, clock=clock, sleep=clock.sleep, token_refresh_margin_seconds=10) as client:
            client.sync_campaigns(["campaign_1"])
            clock.advance(89)
            client.sync_campaigns(["campaign_2"])
            assert api.counters()["tokens_issued"] == 1
            clock.advance(2)
            client.sync_campaigns(["campaign_3"])
        assert api.counters()["tokens_issued"] == 2
        assert refused_requests(api, "sync") == {}

    # One worker goes straight from the failed fetch to the next campaign; eight also wait on the fetch.
    @pytest.mark.parametrize("workers", [1, 8])
    def test_a_token_endpoint_that_stays_down_ends_the_sync_instead_of_failing_each_campaign(
        self, api: MockApiServer, workers: int
    ) -> None:
        api.set_faults({"token_lifetime_seconds": 0.3, "sync_latency_seconds": 0.05})
        with make_client(api, sync_workers=workers, transient_retry=RetryBudget(retries=1, seconds=10)) as client:
            client.sync_campaigns(["campaign_1"])
            api.set_faults({"token": {"error_rate": 1.0}})
            time.sleep(0.35)
            with pytest.raises(RetryBudgetExhausted) as raised:
                client.sync_campaigns([f"campaign_{n}" for n in range(2, 18)])

        assert raised.value.endpoint == "POST /auth/token"
        # One fetch and its retry; the workers that waited for it took its failure, and no campaign
        # started after it asked again.
        assert server_requests(api, "token") == {"200": 1, "503": 2}
        assert server_requests(api, "sync") == {"200": 1}

    def test_the_token_failure_surfaces_whichever_worker_ends_first(self, api: MockApiServer) -> None:
        # Workers waiting for the failed fetch end with the client's internal cancellation, and may end
        # before the worker that fetched; the sync must still raise the fetch's own error. Which worker
        # ends first is up to the scheduler (each round ordered it the wrong way about a third of the
        # time when this was written), so the test tries it twenty times.
        api.set_faults({"token": {"error_rate": 1.0}})
        endpoints = []
        for _ in range(20):
            with make_client(api, sync_workers=8, transient_retry=RetryBudget(retries=0, seconds=10)) as client:
                with pytest.raises(RetryBudgetExhausted) as raised:
                    client.sync_campaigns([f"campaign_{n}" for n in range(1, 17)])
            endpoints.append(raised.value.endpoint)
        assert endpoints == ["POST /auth/token"] * 20
        assert server_requests(api, "token") == {"503": 20}

    def test_the_client_lists_and_syncs_again_once_the_token_endpoint_is_back(self, api: MockApiServer) -> None:
        api.set_faults({"token": {"error_rate": 1.0}})
        with make_client(api, sync_workers=4, transient_retry=RetryBudget(retries=1, seconds=10)) as client:
            with pytest.raises(RetryBudgetExhausted):
                client.sync_campaigns([f"campaign_{n}" for n in range(1, 9)])
            api.set_faults({"token": {"error_rate": 0.0}})

            campaigns = client.fetch_campaigns(DAY)
            report = client.sync_campaigns(["campaign_1", "campaign_2"])

        assert campaigns == expected_campaigns(ACCOUNT, DAY, seed=SEED)
        assert sorted(report.synced) == ["campaign_1", "campaign_2"] and report.failed == {}
        assert server_requests(api, "token") == {"503": 2, "200": 1}

    def test_wrong_credentials_end_the_sync_naming_the_account_never_the_secret(self, api: MockApiServer) -> None:
        wrong = AccountCredentials(email="acme-retail@demo.invalid", password="not-the-password-42")
        with make_client(api, login=wrong, sync_workers=8) as client, pytest.raises(AuthenticationError) as raised:
            client.sync_campaigns([f"campaign_{n}" for n in range(1, 9)])
        message = str(raised.value)
        assert message == (
            "Account 'acme-retail': the platform refused the account's credentials "
            "(HTTP 401 Invalid credentials: The email or password is wrong)."
        )
        assert "not-the-password-42" not in message
        assert refused_requests(api, "token") == {"401": 1}
        assert api.counters()["total_requests"] == 1

    def test_a_token_of_another_account_is_refused_after_one_fresh_try(self, api: MockApiServer) -> None:
        with (
            make_client(api, account_id="globex", login=credentials(ACCOUNT)) as client,
            pytest.raises(AuthenticationError) as raised,
        ):
            client.fetch_campaigns(DAY)
        assert str(raised.value).startswith(
            "Account 'globex': GET /api/campaigns page 1 of 2026-11-27: the platform refused a freshly issued token "
            "(HTTP 401 Unauthorized: X-Client-ID 'globex' names another account"
        )
        assert api.counters()["tokens_issued"] == 3


class TestDeadlines:
    def test_partition_deadline_during_retries_says_what_was_retried(self, api: MockApiServer) -> None:
        api.set_faults({"list": {"error_rate": 1.0}})
        clock = FakeClock()
        with (
            make_client(
                api,
                clock=clock,
                sleep=clock.sleep,
                rng=MaxRandom(),
                partition_deadline_seconds=5.0,
                read_timeout_seconds=0.5,
                backoff_base_seconds=2.0,
                backoff_cap_seconds=2.0,
            ) as client,
            pytest.raises(DeadlineExceeded) as raised,
        ):
            client.fetch_campaigns(DAY)
        # At 4 s, a third backoff of 2 s would outlast the 5 s: the client stops instead of sleeping into it.
        assert str(raised.value).startswith(
            "Account 'acme-retail': retrying GET /api/campaigns page 1 of 2026-11-27 after HTTP 503"
        )
        assert str(raised.value).endswith("would pass the partition deadline of 5 s.")
        assert [wait for wait in clock.sleeps if wait > 0] == [2.0, 2.0]
        assert server_requests(api, "list") == {"503": 3}

    def test_partition_deadline_while_waiting_for_a_slot_says_so(self, api: MockApiServer) -> None:
        clock = FakeClock()
        with make_client(
            api, clock=clock, sleep=clock.sleep, rate_limit=1, rate_window_seconds=60.0, partition_deadline_seconds=30.0
        ) as client:
            client.sync_campaigns(["campaign_1"])
            with pytest.raises(DeadlineExceeded) as raised:
                client.sync_campaigns(["campaign_2"])
        assert str(raised.value) == (
            "Account 'acme-retail': waiting for a rate-limit slot for POST /api/campaigns/campaign_2/sync "
            "(the next rate-limit slot opens in 60.0 s) would pass the partition deadline of 30 s."
        )

    def test_partition_clock_starts_explicitly(self, api: MockApiServer) -> None:
        clock = FakeClock()
        with make_client(api, clock=clock, sleep=clock.sleep, partition_deadline_seconds=10.0) as client:
            client.start_partition_clock()
            clock.advance(11)
            with pytest.raises(DeadlineExceeded, match="passed while about to send POST /auth/token"):
                client.fetch_campaigns(DAY)


class TestSecrets:
    def test_no_credential_or_token_reaches_logs_errors_or_repr(
        self, api: MockApiServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        api.set_faults({"token_lifetime_seconds": 0.2, "list": {"error_rate": 0.5}})
        login = credentials(ACCOUNT)
        logger = logging.getLogger("test.ad_platform")
        caplog.set_level(logging.DEBUG)
        with make_client(
            api, logger=logger, log_context={"partition": "acme-retail|2026-11-27", "run": "r1"}
        ) as client:
            campaigns = client.fetch_campaigns(DAY)
            time.sleep(0.25)
            client.sync_campaigns([c["id"] for c in campaigns[:5]])
            shown = repr(client) + str(client.stats.as_metadata())
        basic = base64.b64encode(f"{login.email}:{login.password}".encode()).decode()
        secrets = [login.password, basic, *api.tokens()]
        assert len(secrets) >= 4
        assert "[account=acme-retail partition=acme-retail|2026-11-27 run=r1] listed 100 campaigns" in caplog.text
        for secret in secrets:
            assert secret not in caplog.text
            assert secret not in shown
        assert repr(client) == f"AdPlatformClient(account_id='acme-retail', base_url='{api.url}')"

    @pytest.mark.parametrize("url", ["ftp://ads.example.com", "https://user:pw@ads.example.com", "ads.example.com"])
    def test_base_url_must_be_http_without_credentials(self, url: str) -> None:
        with pytest.raises(
            ValueError, match="base_url must be an http:// or https:// URL without credentials"
        ) as raised:
            AdPlatformClient(url, ACCOUNT, credentials(ACCOUNT))
        assert "pw@" not in str(raised.value)

    def test_account_id_is_validated(self) -> None:
        with pytest.raises(ValueError, match=re.escape("Account id 'acme|2026' is invalid")):
            AdPlatformClient("http://127.0.0.1:9", "acme|2026", credentials(ACCOUNT))


class TestEnvironment:
    def test_the_environments_proxy_is_read_once_and_no_proxy_is_honoured(self, monkeypatch) -> None:
        monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with AdPlatformClient("http://ads.example", ACCOUNT, credentials(ACCOUNT)) as proxied:
            assert proxied._session.proxies == {"http": "http://proxy.example:3128"}
        monkeypatch.setenv("NO_PROXY", "ads.example")
        with AdPlatformClient("http://ads.example", ACCOUNT, credentials(ACCOUNT)) as direct:
            assert direct._session.proxies == {}
