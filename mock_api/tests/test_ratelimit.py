from __future__ import annotations

import time

import httpx

from mock_api.ratelimit import SlidingWindowLimiter
from mock_api.testing import MockApiServer
from mock_api.tests.helpers import bearer, list_arrivals, list_statuses, sleep_until


def test_admits_exactly_limit_requests_per_window() -> None:
    limiter = SlidingWindowLimiter()

    decisions = [limiter.admit("acme", 10.0 + 0.01 * n, limit=3, window=1.0) for n in range(5)]

    assert decisions == [None, None, None, 1, 1]


def test_a_slot_frees_exactly_when_the_oldest_admitted_request_leaves() -> None:
    limiter = SlidingWindowLimiter()
    for arrival in (0.0, 0.25, 0.5):
        assert limiter.admit("acme", arrival, limit=3, window=1.0) is None

    assert limiter.admit("acme", 0.875, limit=3, window=1.0) == 1
    assert limiter.admit("acme", 1.0, limit=3, window=1.0) is None
    assert limiter.admit("acme", 1.125, limit=3, window=1.0) == 1
    assert limiter.admit("acme", 1.25, limit=3, window=1.0) is None


def test_refused_requests_do_not_count() -> None:
    limiter = SlidingWindowLimiter()
    limiter.admit("acme", 0.0, limit=2, window=1.0)
    limiter.admit("acme", 0.5, limit=2, window=1.0)

    refusals = [limiter.admit("acme", 0.6 + 0.01 * n, limit=2, window=1.0) for n in range(30)]

    assert all(refusal is not None for refusal in refusals)
    assert limiter.admit("acme", 1.0, limit=2, window=1.0) is None


def test_retry_after_is_the_whole_seconds_until_a_slot_frees() -> None:
    limiter = SlidingWindowLimiter()
    limiter.admit("acme", 0.0, limit=1, window=60.0)

    assert limiter.admit("acme", 0.5, limit=1, window=60.0) == 60
    assert limiter.admit("acme", 30.0, limit=1, window=60.0) == 30
    assert limiter.admit("acme", 59.9, limit=1, window=60.0) == 1


def test_lowering_the_limit_waits_for_enough_departures() -> None:
    limiter = SlidingWindowLimiter()
    for arrival in (0.0, 1.0, 2.0):
        limiter.admit("acme", arrival, limit=3, window=10.0)

    assert limiter.admit("acme", 3.0, limit=1, window=10.0) == 9


def test_each_key_has_its_own_window() -> None:
    limiter = SlidingWindowLimiter()
    limiter.admit("acme", 0.0, limit=1, window=1.0)

    assert limiter.admit("acme", 0.1, limit=1, window=1.0) == 1
    assert limiter.admit("globex", 0.1, limit=1, window=1.0) is None


def test_window_over_http_admits_limit_then_429_with_retry_after(api: MockApiServer, http: httpx.Client) -> None:
    api.set_faults({"rate_limit": 3, "rate_window_seconds": 0.5})
    token = api.token()

    responses = [http.get("/api/campaigns", headers=bearer(token)) for _ in range(5)]

    assert [response.status_code for response in responses] == [200, 200, 200, 429, 429]
    refused = responses[3]
    assert refused.headers["Retry-After"] == "1"
    assert refused.json() == {
        "error": "Rate limit exceeded",
        "message": "Account 'acme-retail' may make 3 requests per 0.5 s; retry in 1 s.",
        "retry_after": 1,
    }
    first_arrival = list_arrivals(api)[0]
    sleep_until(first_arrival + 0.5)
    assert list_statuses(http, token, 1) == [200]


def test_window_over_http_holds_at_every_instant_of_a_burst(api: MockApiServer, http: httpx.Client) -> None:
    limit, window = 4, 0.25
    api.set_faults({"rate_limit": limit, "rate_window_seconds": window})
    token = api.token()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        http.get("/api/campaigns", headers=bearer(token))

    log = [record for record in api.requests() if record["endpoint"] == "list"]
    admitted: list[float] = []
    for record in log:
        arrival = record["arrived_monotonic"]
        in_window = sum(1 for earlier in admitted if earlier > arrival - window)
        assert record["status"] == (200 if in_window < limit else 429)
        if record["status"] == 200:
            admitted.append(arrival)
    assert len(admitted) >= 4 * limit
    assert len(log) > len(admitted)


def test_503s_count_against_the_window(api: MockApiServer, http: httpx.Client) -> None:
    api.set_faults({"rate_limit": 3, "rate_window_seconds": 60, "list": {"error_rate": 1.0}})

    assert list_statuses(http, api.token(), 4) == [503, 503, 503, 429]


def test_hanging_requests_count_against_the_window(api: MockApiServer, http: httpx.Client) -> None:
    api.set_faults({"rate_limit": 2, "rate_window_seconds": 60, "list": {"hang_rate": 1.0}, "hang_seconds": 0.05})

    assert list_statuses(http, api.token(), 3) == [503, 503, 429]
    assert api.counters()["hangs"] == 2


def test_429s_do_not_extend_the_window(api: MockApiServer, http: httpx.Client) -> None:
    api.set_faults({"rate_limit": 2, "rate_window_seconds": 0.3})
    token = api.token()
    assert list_statuses(http, token, 2) == [200, 200]
    first_arrival = list_arrivals(api)[0]

    refused = 0
    while time.monotonic() < first_arrival + 0.28:
        refused += list_statuses(http, token, 1) == [429]
    sleep_until(first_arrival + 0.3)

    assert refused > 0
    assert list_statuses(http, token, 1) == [200]
    assert api.counters()["rate_limited"] == refused


def test_accounts_have_separate_windows(api: MockApiServer, http: httpx.Client) -> None:
    api.set_faults({"rate_limit": 2, "rate_window_seconds": 60})

    assert list_statuses(http, api.token("acme-retail"), 3) == [200, 200, 429]
    assert list_statuses(http, api.token("globex"), 3) == [200, 200, 429]


def test_token_requests_are_not_rate_limited(api: MockApiServer) -> None:
    api.set_faults({"rate_limit": 1, "rate_window_seconds": 60})

    tokens = [api.token() for _ in range(3)]

    assert len(set(tokens)) == 3


def test_sync_shares_the_accounts_window(api: MockApiServer, http: httpx.Client) -> None:
    api.set_faults({"rate_limit": 2, "rate_window_seconds": 60})
    token = api.token()
    http.get("/api/campaigns", headers=bearer(token))

    synced = [
        http.post("/api/campaigns/campaign_1/sync", json={"campaign_id": "campaign_1"}, headers=bearer(token))
        for _ in range(2)
    ]

    assert [response.status_code for response in synced] == [200, 429]
