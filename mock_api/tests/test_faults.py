from __future__ import annotations

import time

import httpx
import pytest

from mock_api.config import PROFILES, EndpointFaults
from mock_api.faults import Outcome, decide, fault_draw
from mock_api.testing import MockApiServer
from mock_api.tests.conftest import SEED
from mock_api.tests.helpers import bearer, list_statuses


def test_one_draw_splits_into_error_hang_and_proceed() -> None:
    faults = EndpointFaults(error_rate=0.25, hang_rate=0.125)

    outcomes = [decide(draw, faults) for draw in (0.0, 0.2499, 0.25, 0.3749, 0.375, 0.999)]

    assert outcomes == [Outcome.ERROR, Outcome.ERROR, Outcome.HANG, Outcome.HANG, Outcome.PROCEED, Outcome.PROCEED]


def test_a_draw_is_reproducible_and_depends_on_every_input() -> None:
    draw = fault_draw(SEED, "list", "acme-retail", "page=1", 1)

    assert draw == fault_draw(SEED, "list", "acme-retail", "page=1", 1)
    variants = [
        fault_draw(SEED + 1, "list", "acme-retail", "page=1", 1),
        fault_draw(SEED, "sync", "acme-retail", "page=1", 1),
        fault_draw(SEED, "list", "globex", "page=1", 1),
        fault_draw(SEED, "list", "acme-retail", "page=2", 1),
        fault_draw(SEED, "list", "acme-retail", "page=1", 2),
    ]
    assert draw not in variants and 0.0 <= draw < 1.0


def test_fault_shares_match_the_configured_rates() -> None:
    faults = EndpointFaults(error_rate=0.2, hang_rate=0.1)
    outcomes = [decide(fault_draw(SEED, "list", "globex", f"page={n}", 1), faults) for n in range(20_000)]

    assert outcomes.count(Outcome.ERROR) / len(outcomes) == pytest.approx(0.2, abs=0.01)
    assert outcomes.count(Outcome.HANG) / len(outcomes) == pytest.approx(0.1, abs=0.01)


def test_same_seed_replays_the_predicted_faults(api: MockApiServer, http: httpx.Client) -> None:
    api.set_faults({"list": {"error_rate": 0.5}})
    pages = [1, 1, 1, 2, 2, 3, 1, 2, 3, 3]

    def run() -> list[int]:
        token = api.token()
        return [
            http.get("/api/campaigns", params={"page": page}, headers=bearer(token)).status_code for page in pages
        ]

    first = run()
    api.reset()
    second = run()

    attempts: dict[int, int] = {}
    predicted = []
    for page in pages:
        attempts[page] = attempts.get(page, 0) + 1
        draw = fault_draw(SEED, "list", "acme-retail", f"page={page}&limit=10&date=", attempts[page])
        predicted.append(503 if draw < 0.5 else 200)
    assert first == second == predicted
    assert {200, 503} <= set(first)


def test_faults_do_not_depend_on_how_accounts_interleave(api: MockApiServer, http: httpx.Client) -> None:
    api.set_faults({"list": {"error_rate": 0.5}})

    def statuses(order: list[str]) -> dict[str, list[int]]:
        tokens = {account: api.token(account) for account in ("acme-retail", "globex")}
        seen: dict[str, list[int]] = {"acme-retail": [], "globex": []}
        for account in order:
            seen[account] += list_statuses(http, tokens[account], 1)
        return seen

    grouped = statuses(["acme-retail"] * 8 + ["globex"] * 8)
    api.reset()
    alternating = statuses(["acme-retail", "globex"] * 8)

    assert grouped == alternating


def test_a_hanging_request_gets_no_answer_until_the_client_gives_up(
    api: MockApiServer, http: httpx.Client
) -> None:
    api.set_faults({"list": {"hang_rate": 1.0}, "hang_seconds": 30})
    token = api.token()

    with pytest.raises(httpx.ReadTimeout):
        http.get("/api/campaigns", headers=bearer(token), timeout=0.2)

    deadline = time.monotonic() + 2.0
    while not (log := [r for r in api.requests() if r["endpoint"] == "list"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [(record["status"], record["hung"]) for record in log] == [(499, True)]
    assert api.counters()["hangs"] == 1


def test_a_hang_ends_server_side_with_a_503(api: MockApiServer, http: httpx.Client) -> None:
    api.set_faults({"list": {"hang_rate": 1.0}, "hang_seconds": 0.2})
    token = api.token()

    started = time.monotonic()
    response = http.get("/api/campaigns", headers=bearer(token))

    assert time.monotonic() - started >= 0.2
    assert response.status_code == 503
    assert response.json() == {"error": "Service temporarily unavailable", "message": "The request hung for 0.2 s."}


def test_extra_latency_delays_every_answer(api: MockApiServer, http: httpx.Client) -> None:
    api.set_faults({"list": {"latency_seconds": 0.2}})
    token = api.token()

    started = time.monotonic()
    response = http.get("/api/campaigns", headers=bearer(token))

    assert response.status_code == 200
    assert 0.2 <= time.monotonic() - started < 1.0


def test_sync_takes_its_configured_latency(api: MockApiServer, http: httpx.Client) -> None:
    api.set_faults({"sync_latency_seconds": 0.2})
    token = api.token()

    started = time.monotonic()
    response = http.post("/api/campaigns/campaign_5/sync", json={"campaign_id": "campaign_5"}, headers=bearer(token))

    assert 0.2 <= time.monotonic() - started < 1.0
    body = response.json()
    assert response.status_code == 200
    assert (body["success"], body["campaign_id"]) == (True, "campaign_5")
    assert body["message"] == "Campaign campaign_5 synced successfully"


def test_an_outage_switches_on_and_off_at_run_time(api: MockApiServer, http: httpx.Client) -> None:
    token = api.token()
    assert list_statuses(http, token, 1) == [200]

    api.set_faults({"list": {"error_rate": 1.0}})
    assert list_statuses(http, token, 2) == [503, 503]
    api.set_faults({"list": {"error_rate": 0.0}})
    assert list_statuses(http, token, 1) == [200]


def test_token_and_sync_endpoints_fault_too(api: MockApiServer, http: httpx.Client) -> None:
    token = api.token()
    api.set_faults({"token": {"error_rate": 1.0}, "sync": {"error_rate": 1.0}})

    sync = http.post("/api/campaigns/campaign_1/sync", json={"campaign_id": "campaign_1"}, headers=bearer(token))
    login = http.post("/auth/token", auth=("globex@demo.invalid", "demo-password-globex"))

    assert (sync.status_code, login.status_code) == (503, 503)
    assert login.json()["error"] == "Service temporarily unavailable"


def test_original_profile_has_the_contracts_figures() -> None:
    original = PROFILES["original"]

    assert (original.rate_limit, original.rate_window_seconds) == (10, 60.0)
    assert (original.list.error_rate, original.list.hang_rate) == (0.2, 0.1)
    assert original.token == original.sync == EndpointFaults()
    assert (original.sync_latency_seconds, original.token_lifetime_seconds) == (2.0, 3600.0)


def test_fast_profile_has_no_faults_and_chaos_has_faults_everywhere() -> None:
    fast, chaos = PROFILES["fast"], PROFILES["chaos"]

    assert fast.token == fast.list == fast.sync == EndpointFaults()
    assert fast.sync_latency_seconds == 0.0 and fast.rate_limit >= 100_000
    for faults in (chaos.token, chaos.list, chaos.sync):
        assert faults.error_rate > 0 and faults.hang_rate > 0
    assert chaos.token_lifetime_seconds <= 10 and chaos.rate_window_seconds <= 5
