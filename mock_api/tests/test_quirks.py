"""With ``--upstream-quirks`` the simulator behaves like the upstream team's simulator."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from mock_api.testing import MockApiServer
from mock_api.tests.helpers import bearer, list_statuses, sleep_until


@pytest.fixture(scope="module")
def quirky_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockApiServer]:
    log_path = tmp_path_factory.mktemp("mock_api_quirks") / "server.log"
    with MockApiServer(profile="original", seed=3, upstream_quirks=True, log_path=log_path) as server:
        yield server


@pytest.fixture
def quirky(quirky_server: MockApiServer) -> MockApiServer:
    quirky_server.set_faults({"rate_limit": 1000, "rate_window_seconds": 60, "token_lifetime_seconds": 3600})
    quirky_server.reset()
    return quirky_server


@pytest.fixture
def http(quirky: MockApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=quirky.url, timeout=5.0, trust_env=False) as client:
        yield client


def test_429_carries_retry_after_60_in_the_body_only(quirky: MockApiServer, http: httpx.Client) -> None:
    quirky.set_faults({"rate_limit": 2})
    token = quirky.token()
    list_statuses(http, token, 2)

    refused = http.get("/api/campaigns", headers=bearer(token))

    assert refused.status_code == 429
    assert "Retry-After" not in refused.headers
    assert refused.json()["retry_after"] == 60


def test_every_fifth_list_call_is_a_503_and_nothing_hangs(quirky: MockApiServer, http: httpx.Client) -> None:
    statuses = list_statuses(http, quirky.token(), 15)

    assert statuses == [200, 200, 200, 200, 503] * 3
    assert quirky.counters()["hangs"] == 0


def test_has_more_ignores_total_and_pages_run_past_it(quirky: MockApiServer, http: httpx.Client) -> None:
    token = quirky.token()
    first = http.get("/api/campaigns", params={"page": 1, "limit": 100}, headers=bearer(token)).json()
    second = http.get("/api/campaigns", params={"page": 2, "limit": 100}, headers=bearer(token)).json()

    assert first["pagination"] == {"page": 1, "limit": 100, "total": 100, "has_more": True}
    assert second["pagination"] == {"page": 2, "limit": 100, "total": 100, "has_more": True}
    assert [campaign["id"] for campaign in second["data"]] == [f"campaign_{n}" for n in range(101, 201)]


def test_metrics_are_random_on_every_call(quirky: MockApiServer, http: httpx.Client) -> None:
    token = quirky.token()
    params: dict[str, str | int] = {"page": 1, "limit": 20, "date": "2024-01-01"}

    first, second = (http.get("/api/campaigns", params=params, headers=bearer(token)).json() for _ in range(2))

    assert [c["name"] for c in first["data"]] == [c["name"] for c in second["data"]]
    assert [c["impressions"] for c in first["data"]] != [c["impressions"] for c in second["data"]]
    assert all(0 <= c["conversions"] <= c["clicks"] <= c["impressions"] for c in first["data"])


def test_a_new_token_renews_every_token(quirky: MockApiServer, http: httpx.Client) -> None:
    quirky.set_faults({"token_lifetime_seconds": 0.5})
    first = quirky.token("acme-retail")
    first_issued = quirky.requests()[-1]["arrived_monotonic"]
    sleep_until(first_issued + 0.3)
    quirky.token("globex")
    second_issued = quirky.requests()[-1]["arrived_monotonic"]

    sleep_until(first_issued + 0.55)
    assert http.get("/api/campaigns", headers=bearer(first)).status_code == 200
    sleep_until(second_issued + 0.55)
    assert http.get("/api/campaigns", headers=bearer(first)).json()["error"] == "Token expired"


def test_the_window_is_counted_per_x_client_id_and_shared_without_one(quirky: MockApiServer, http: httpx.Client) -> None:
    quirky.set_faults({"rate_limit": 2})
    acme, globex = quirky.token("acme-retail"), quirky.token("globex")

    def statuses(token: str, client_id: str | None) -> list[int]:
        return [http.get("/api/campaigns", headers=bearer(token, client_id)).status_code for _ in range(2)]

    assert statuses(acme, "acme-retail") == [200, 200]
    assert statuses(globex, "globex") == [200, 200]
    # Without the header, both accounts fall into one window named "default".
    assert statuses(acme, None) + statuses(globex, None) == [200, 200, 429, 429]
