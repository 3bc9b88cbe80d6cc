"""The published OpenAPI schema is accurate: fuzzing finds no undocumented answer and no 5xx."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from mock_api.accounts import account_by_id
from mock_api.app import create_app
from mock_api.config import PROFILES, SimulatorConfig
from mock_api.simulator import Simulator
from mock_api.testing import MockApiServer
from mock_api.tests.helpers import bearer

PUBLISHED = create_app(Simulator(SimulatorConfig(faults=PROFILES["fast"], admin=True))).openapi()
contract = schemathesis.openapi.from_dict(PUBLISHED)
contract.config.generation.update(allow_extra_parameters=False, with_security_parameters=False)
LISTING = "/api/campaigns"
SYNC = "/api/campaigns/{campaign_id}/sync"


def _login_header(account_id: str) -> dict[str, str]:
    account = account_by_id(account_id)
    return {"Authorization": "Basic " + base64.b64encode(f"{account.email}:{account.password}".encode()).decode()}


def test_the_server_publishes_the_schema_under_test(http: httpx.Client) -> None:
    assert http.get("/openapi.json").json() == PUBLISHED


@contract.exclude(path_regex="^/__admin").parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_get_only_documented_answers(case: Any, api: MockApiServer) -> None:
    headers = _login_header("globex") if case.path == "/auth/token" else bearer(api.token("globex"))

    case.call_and_validate(base_url=api.url, headers=headers)


def _status(api: MockApiServer, method: str, path: str, *, server_error: bool = False, **parts: Any) -> int:
    case = contract[path][method].Case(**parts)
    response = case.call_and_validate(base_url=api.url, excluded_checks=[not_a_server_error] if server_error else [])
    status: int = response.status_code
    return status


def test_every_refusal_matches_its_documented_schema(api: MockApiServer) -> None:
    token = api.token("acme-retail")
    api.set_faults({"rate_limit": 2, "rate_window_seconds": 60})

    assert _status(api, "POST", "/auth/token", headers={"Authorization": "Basic bm9ib2R5Ong="}) == 401
    assert _status(api, "GET", LISTING, headers=bearer(token), query={"limit": 5}) == 200
    unknown = {"campaign_id": "campaign_999"}
    assert _status(api, "POST", SYNC, headers=bearer(token), path_parameters=unknown, body=unknown) == 404
    assert _status(api, "GET", LISTING, headers=bearer(token)) == 429

    api.reset()
    api.set_faults({"rate_limit": 100, "list": {"error_rate": 1.0}, "token_lifetime_seconds": 0.05})
    token = api.token("acme-retail")
    assert _status(api, "GET", LISTING, headers=bearer(token), server_error=True) == 503
    api.set_faults({"list": {"error_rate": 0.0}})
    time.sleep(0.06)
    assert _status(api, "GET", LISTING, headers=bearer(token)) == 401


def test_schema_documents_400_instead_of_fastapis_422() -> None:
    operations = [operation for item in PUBLISHED["paths"].values() for operation in item.values()]
    parameters = {p["name"]: p for p in PUBLISHED["paths"][LISTING]["get"]["parameters"]}

    assert all("422" not in operation["responses"] for operation in operations)
    assert {"400", "401", "429", "503"} <= set(PUBLISHED["paths"][LISTING]["get"]["responses"])
    assert parameters["limit"]["schema"]["maximum"] == 100
    assert {"page", "limit", "date", "X-Client-ID"} <= set(parameters)
    assert set(PUBLISHED["components"]["securitySchemes"]) == {"BasicAuthorization", "BearerAuthorization"}
