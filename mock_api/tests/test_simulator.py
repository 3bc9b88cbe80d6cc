"""The original profile's long figures (60 s window, 1 h tokens, 2 s sync), proven on a fake clock."""

from __future__ import annotations

import asyncio
import base64

import pytest

from mock_api.accounts import account_by_id
from mock_api.config import PROFILES, SimulatorConfig
from mock_api.simulator import ApiError, Simulator
from mock_api.stats import RequestRecord


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def wall_clock(self) -> float:
        return 1_700_000_000.0 + self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


async def _never_gone() -> None:
    await asyncio.Event().wait()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def simulator(fake_time: FakeTime) -> Simulator:
    faults = PROFILES["original"].model_copy(update={"list": PROFILES["fast"].list})
    return Simulator(
        SimulatorConfig(faults=faults), clock=fake_time.clock, wall_clock=fake_time.wall_clock, sleep=fake_time.sleep
    )


def _record(simulator: Simulator, endpoint: str) -> RequestRecord:
    return simulator.start_record("GET", "/", endpoint)


def _token(simulator: Simulator, account_id: str = "acme-retail") -> str:
    account = account_by_id(account_id)
    basic = "Basic " + base64.b64encode(f"{account.email}:{account.password}".encode()).decode()
    body = asyncio.run(simulator.issue_token(basic, _record(simulator, "token"), _never_gone))
    token: str = body["access_token"]
    return token


def _list(simulator: Simulator, token: str) -> str:
    return asyncio.run(
        simulator.admit_api_request(
            "list",
            authorization=f"Bearer {token}",
            client_id=None,
            request_key="page=1",
            record=_record(simulator, "list"),
            client_gone=_never_gone,
        )
    )


def test_window_admits_ten_per_sixty_seconds(simulator: Simulator, fake_time: FakeTime) -> None:
    token = _token(simulator)
    for _ in range(10):
        assert _list(simulator, token) == "acme-retail"
        fake_time.now += 1.0

    with pytest.raises(ApiError) as refused:
        _list(simulator, token)

    assert (refused.value.status, refused.value.body["retry_after"]) == (429, 50)
    assert refused.value.headers == {"Retry-After": "50"}
    fake_time.now = 1_060.0
    assert _list(simulator, token) == "acme-retail"


def test_token_lives_one_hour(simulator: Simulator, fake_time: FakeTime) -> None:
    token = _token(simulator)

    fake_time.now += 3_599.0
    assert _list(simulator, token) == "acme-retail"
    fake_time.now += 1.0
    with pytest.raises(ApiError) as expired:
        _list(simulator, token)

    assert expired.value.body["error"] == "Token expired"
    assert expired.value.body["expired_at"] == "2023-11-14T23:30:00.000Z"


def test_sync_takes_two_seconds_without_waiting_for_them(simulator: Simulator, fake_time: FakeTime) -> None:
    body = asyncio.run(simulator.sync_campaign("acme-retail", "campaign_3", "campaign_3"))

    assert fake_time.sleeps == [2.0]
    assert body["synced_at"] == "2023-11-14T22:30:00.000Z"
