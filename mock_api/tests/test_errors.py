"""Bad requests get a specific JSON error, never a stack trace."""

from __future__ import annotations

import base64

import httpx
import pytest

from mock_api.testing import MockApiServer
from mock_api.tests.helpers import bearer


def _assert_clean_json_error(response: httpx.Response, status: int, error: str) -> dict[str, str]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert "Traceback" not in response.text
    body: dict[str, str] = response.json()
    assert body["error"] == error and body["message"]
    return body


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"page": "0"}, "'page'"),
        ({"page": "abc"}, "'page'"),
        ({"page": "1000001"}, "'page'"),
        ({"limit": "0"}, "'limit'"),
        ({"limit": "101"}, "'limit'"),
        ({"limit": "1e3"}, "'limit'"),
        ({"date": "2024-13-01"}, "'date'"),
        ({"date": "yesterday"}, "'date'"),
        ({"date": "2024-02-30"}, "'date': '2024-02-30' is not a calendar day"),
        ({"date": "1704067200"}, "'date'"),
        ({"date": "2024-01-01T00:00:00"}, "'date'"),
    ],
)
def test_invalid_or_oversized_list_parameters_get_400(
    api: MockApiServer, http: httpx.Client, params: dict[str, str], named: str
) -> None:
    response = http.get("/api/campaigns", params=params, headers=bearer(api.token()))

    body = _assert_clean_json_error(response, 400, "Bad request")
    assert named in body["message"]


def test_largest_page_size_is_accepted(api: MockApiServer, http: httpx.Client) -> None:
    response = http.get("/api/campaigns", params={"limit": 100}, headers=bearer(api.token()))

    assert response.status_code == 200
    assert len(response.json()["data"]) == 100


@pytest.mark.parametrize("campaign_id", ["campaign_101", "campaign_0", "nope"])
def test_unknown_campaign_gets_404(api: MockApiServer, http: httpx.Client, campaign_id: str) -> None:
    response = http.post(
        f"/api/campaigns/{campaign_id}/sync", json={"campaign_id": campaign_id}, headers=bearer(api.token())
    )

    body = _assert_clean_json_error(response, 404, "Not found")
    assert body["message"] == f"Campaign '{campaign_id}' does not exist in account 'acme-retail'."


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"campaign_id": "campaign_2"}', "Body campaign_id 'campaign_2' does not match the path's 'campaign_1'."),
        (b'{"campaign_id": "campaign_1"', "The body is not valid JSON: JSON decode error."),
        (b"", "The body is invalid: Field required."),
        (b'{"id": "campaign_1"}', "Body field 'campaign_id': Field required."),
    ],
)
def test_bad_sync_bodies_get_400(api: MockApiServer, http: httpx.Client, content: bytes, message: str) -> None:
    headers = {**bearer(api.token()), "Content-Type": "application/json"}

    response = http.post("/api/campaigns/campaign_1/sync", content=content, headers=headers)

    assert _assert_clean_json_error(response, 400, "Bad request")["message"] == message


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer abc",
        "Basic",
        "Basic !!!not-base64",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        b"Basic \xe9t\xe9",
    ],
)
def test_missing_or_malformed_basic_header_gets_401_unauthorized(
    api: MockApiServer, http: httpx.Client, authorization: str | bytes | None
) -> None:
    # bytes: a header that is not ASCII (the server reads it as Latin-1).
    headers = {} if authorization is None else {"Authorization": authorization}

    response = http.post("/auth/token", headers=headers)

    _assert_clean_json_error(response, 401, "Unauthorized")


@pytest.mark.parametrize(
    ("email", "password"),
    [("nobody@demo.invalid", "demo-password-nobody"), ("globex@demo.invalid", "wrong")],
)
def test_unknown_account_or_wrong_password_gets_401_invalid_credentials(
    api: MockApiServer, http: httpx.Client, email: str, password: str
) -> None:
    response = http.post("/auth/token", auth=(email, password))

    _assert_clean_json_error(response, 401, "Invalid credentials")


@pytest.mark.parametrize("authorization", [None, "Basic abc", "Bearer", "Token abc"])
def test_api_without_a_bearer_token_gets_401(
    api: MockApiServer, http: httpx.Client, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = http.get("/api/campaigns", headers=headers)

    _assert_clean_json_error(response, 401, "Unauthorized")
    assert api.counters()["rate_limited"] == 0


def test_unknown_route_and_method_get_json_errors(api: MockApiServer, http: httpx.Client) -> None:
    _assert_clean_json_error(http.get("/api/nothing-here"), 404, "Not Found")
    _assert_clean_json_error(http.delete("/health"), 405, "Method Not Allowed")


def test_health_needs_no_token(api: MockApiServer, http: httpx.Client) -> None:
    body = http.get("/health").json()

    assert body["status"] == "ok"
    assert body["uptime"] >= 0 and body["timestamp"].endswith("Z")
