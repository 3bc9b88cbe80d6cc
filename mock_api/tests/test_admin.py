from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

from mock_api.accounts import demo_credentials
from mock_api.app import create_app
from mock_api.config import PROFILES, SimulatorConfig
from mock_api.simulator import Simulator
from mock_api.testing import MockApiServer, MockApiServerError
from mock_api.tests.helpers import bearer, list_statuses


async def _call_in_process(method: str, path: str) -> httpx.Response:
    app = create_app(Simulator(SimulatorConfig(faults=PROFILES["fast"])))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mock") as client:
        return await client.request(method, path)


def test_operator_endpoints_are_off_unless_enabled() -> None:
    assert asyncio.run(_call_in_process("GET", "/__admin/counters")).status_code == 404
    assert asyncio.run(_call_in_process("POST", "/__admin/reset")).status_code == 404
    published = asyncio.run(_call_in_process("GET", "/openapi.json")).json()
    assert not [path for path in published["paths"] if path.startswith("/__admin")]


def test_counters_count_by_account_endpoint_and_status(api: MockApiServer, http: httpx.Client) -> None:
    api.set_faults({"rate_limit": 2, "rate_window_seconds": 60})
    token = api.token("globex")
    list_statuses(http, token, 3)
    http.get("/api/campaigns")
    http.post("/auth/token", auth=("globex@demo.invalid", "wrong"))

    assert api.counters() == {
        "requests": {
            "(unauthenticated)": {"list": {"401": 1}, "token": {"401": 1}},
            "globex": {"list": {"200": 2, "429": 1}, "token": {"200": 1}},
        },
        "total_requests": 6,
        "rate_limited": 1,
        "hangs": 0,
        "tokens_issued": 1,
    }


def test_reset_forgets_everything(api: MockApiServer, http: httpx.Client) -> None:
    api.set_faults({"rate_limit": 1, "rate_window_seconds": 60})
    token = api.token()
    list_statuses(http, token, 2)

    api.reset()

    assert api.counters()["total_requests"] == 0
    assert api.requests() == [] and api.tokens() == []
    assert list_statuses(http, api.token(), 1) == [200]


def test_request_log_describes_requests_without_secrets(api: MockApiServer, http: httpx.Client) -> None:
    tokens = [api.token("acme-retail"), api.token("hostile-names")]
    http.get("/api/campaigns", params={"page": 2, "limit": 5, "date": "2024-01-02"}, headers=bearer(tokens[1]))

    log = api.requests()

    assert [(r["method"], r["path"], r["endpoint"], r["account"], r["status"]) for r in log] == [
        ("POST", "/auth/token", "token", "acme-retail", 200),
        ("POST", "/auth/token", "token", "hostile-names", 200),
        ("GET", "/api/campaigns?page=2&limit=5&date=2024-01-02", "list", "hostile-names", 200),
    ]
    assert all(r["arrived_at"] <= r["finished_at"] for r in log)
    text = json.dumps(log)
    secrets = [*tokens, *(login["password"] for login in demo_credentials().values())]
    assert not [secret for secret in secrets if secret in text]
    assert api.tokens() == tokens


def test_request_log_lists_a_hanging_request_where_it_arrived(api: MockApiServer, http: httpx.Client) -> None:
    api.set_faults({"list": {"hang_rate": 1.0}, "hang_seconds": 0.5})
    token = api.token()
    hanging = threading.Thread(target=lambda: http.get("/api/campaigns", headers=bearer(token)))
    hanging.start()
    deadline = time.monotonic() + 5
    while api.counters()["hangs"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)

    api.token()  # arrives after the hanging list request, finishes long before it
    hanging.join()

    assert [(record["endpoint"], record["status"]) for record in api.requests()] == [
        ("token", 200),
        ("list", 503),
        ("token", 200),
    ]


def test_fault_changes_return_the_whole_settings(api: MockApiServer) -> None:
    settings = api.set_faults({"list": {"latency_seconds": 0.25}, "rate_limit": 7})

    assert settings["list"] == {"error_rate": 0.0, "hang_rate": 0.0, "extra_latency_seconds": 0.25}
    assert settings["rate_limit"] == 7
    assert api.faults() == settings


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"list": {"error_rate": 2}}, "Body field 'list.error_rate'"),
        ({"list": {"error_rate": 0.7, "hang_rate": 0.5}}, "error_rate + hang_rate must be at most 1"),
        ({"rate_limit": 0}, "Body field 'rate_limit'"),
        ({"bogus": 1}, "Body field 'bogus': Extra inputs are not permitted."),
    ],
)
def test_invalid_fault_changes_get_400_and_change_nothing(
    api: MockApiServer, patch: dict[str, object], message: str
) -> None:
    before = api.faults()

    with pytest.raises(MockApiServerError, match="answered 400") as refused:
        api.set_faults(patch)

    assert message in str(refused.value)
    assert api.faults() == before
