from __future__ import annotations

import base64
from datetime import datetime

import httpx
import pytest

from mock_api.accounts import account_by_id
from mock_api.testing import MockApiServer
from mock_api.tests.helpers import bearer, sleep_until
from mock_api.tokens import TokenStore


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(100.0)


def test_a_token_expires_exactly_after_its_lifetime(clock: FakeClock) -> None:
    store = TokenStore(clock, lambda: clock.now + 1_700_000_000)
    token = store.issue("acme-retail", 10.0)

    clock.now = 109.999
    assert store.check(token.value).expired_at_wall is None
    clock.now = 110.0
    check = store.check(token.value)
    assert (check.account_id, check.expired_at_wall) == ("acme-retail", 1_700_000_110.0)


def test_tokens_expire_one_by_one(clock: FakeClock) -> None:
    store = TokenStore(clock, clock)
    first = store.issue("acme-retail", 10.0)
    clock.now = 105.0
    second = store.issue("acme-retail", 10.0)

    clock.now = 112.0

    assert store.check(first.value).expired_at_wall == 110.0
    assert store.check(second.value).expired_at_wall is None


def test_shared_issue_time_quirk_renews_every_token(clock: FakeClock) -> None:
    store = TokenStore(clock, clock, shared_issue_time=True)
    first = store.issue("acme-retail", 10.0)
    clock.now = 105.0
    store.issue("globex", 10.0)

    clock.now = 112.0
    assert store.check(first.value).expired_at_wall is None
    clock.now = 115.0
    assert store.check(first.value).expired_at_wall == 115.0


def test_tokens_are_random_and_forgotten_on_reset(clock: FakeClock) -> None:
    store = TokenStore(clock, clock)
    values = [store.issue("acme-retail", 10.0).value for _ in range(3)]

    assert len(set(values)) == 3 and all(len(value) >= 40 for value in values)
    assert store.issued_values() == values
    store.reset()
    assert store.check(values[0]).account_id is None
    assert store.issued_values() == []


def test_token_body_follows_the_contract(api: MockApiServer, http: httpx.Client) -> None:
    account = account_by_id("initech")

    response = http.post("/auth/token", auth=(account.email, account.password))

    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"access_token", "token_type", "expires_in", "issued_at"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
    assert body["access_token"] == api.tokens()[-1]
    assert abs(body["issued_at"] - api.requests()[-1]["arrived_at"]) < 2


def test_a_token_expires_on_time_over_http(api: MockApiServer, http: httpx.Client) -> None:
    api.set_faults({"token_lifetime_seconds": 0.4})
    token = api.token()
    issued = api.requests()[-1]

    sleep_until(issued["arrived_monotonic"] + 0.3)
    assert http.get("/api/campaigns", headers=bearer(token)).status_code == 200
    sleep_until(issued["arrived_monotonic"] + 0.45)
    expired = http.get("/api/campaigns", headers=bearer(token))

    assert expired.status_code == 401
    body = expired.json()
    assert (body["error"], body["message"]) == (
        "Token expired",
        "The access token has expired; request a new one from POST /auth/token.",
    )
    expired_at = datetime.fromisoformat(body["expired_at"]).timestamp()
    assert issued["arrived_at"] + 0.4 - 0.001 <= expired_at <= issued["finished_at"] + 0.4


def test_tokens_expire_one_by_one_over_http(api: MockApiServer, http: httpx.Client) -> None:
    api.set_faults({"token_lifetime_seconds": 0.5})
    first = api.token()
    first_issued = api.requests()[-1]["arrived_monotonic"]
    sleep_until(first_issued + 0.25)
    second = api.token()

    sleep_until(first_issued + 0.55)

    assert http.get("/api/campaigns", headers=bearer(first)).json()["error"] == "Token expired"
    assert http.get("/api/campaigns", headers=bearer(second)).status_code == 200


def test_a_token_opens_only_its_own_account(api: MockApiServer, http: httpx.Client) -> None:
    token = api.token("acme-retail")

    own = http.get("/api/campaigns", headers=bearer(token, client_id="acme-retail"))
    other = http.get("/api/campaigns", headers=bearer(token, client_id="globex"))

    assert own.status_code == 200
    assert other.status_code == 401
    assert other.json() == {
        "error": "Unauthorized",
        "message": "X-Client-ID 'globex' names another account than the token's ('acme-retail').",
    }


def test_one_accounts_password_does_not_open_another(api: MockApiServer, http: httpx.Client) -> None:
    response = http.post(
        "/auth/token", auth=(account_by_id("globex").email, account_by_id("acme-retail").password)
    )

    assert response.status_code == 401
    assert response.json() == {"error": "Invalid credentials", "message": "The email or password is wrong."}


def test_password_with_a_colon_logs_in(api: MockApiServer, http: httpx.Client) -> None:
    account = account_by_id("hostile-names")
    basic = base64.b64encode(f"{account.email}:{account.password}".encode()).decode()

    response = http.post("/auth/token", headers={"Authorization": f"Basic {basic}"})

    assert ":" in account.password
    assert response.status_code == 200


def test_unknown_and_forgotten_tokens_are_refused(api: MockApiServer, http: httpx.Client) -> None:
    token = api.token()
    api.reset()

    for value in (token, "not-a-token"):
        response = http.get("/api/campaigns", headers=bearer(value))
        assert response.status_code == 401
        assert response.json()["error"] == "Unauthorized"
