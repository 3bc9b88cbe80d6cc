from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from mock_api.accounts import DEMO_ACCOUNT_IDS
from mock_api.dataset import (
    HOSTILE_NAMES,
    campaign_json,
    campaign_number,
    campaign_record,
    expected_campaigns,
    parse_day,
)
from mock_api.testing import MockApiServer
from mock_api.tests.conftest import SEED
from mock_api.tests.helpers import bearer

CONTRACT_FIELDS = ["id", "name", "status", "budget", "impressions", "clicks", "conversions", "created_at"]
CREATED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
DAYS = [date(2024, 1, 1), date(2024, 2, 29), date(2025, 12, 31)]


@pytest.mark.parametrize("account_id", [*DEMO_ACCOUNT_IDS, "acct-0007"])
def test_every_campaign_respects_the_contract(account_id: str) -> None:
    for day in DAYS:
        campaigns = expected_campaigns(account_id, day, seed=SEED)

        assert [campaign["id"] for campaign in campaigns] == [f"campaign_{n}" for n in range(1, 101)]
        for campaign in campaigns:
            assert list(campaign) == CONTRACT_FIELDS
            assert campaign["status"] in {"active", "paused", "completed"}
            assert 0 <= campaign["conversions"] <= campaign["clicks"] <= campaign["impressions"]
            assert isinstance(campaign["budget"], int | float) and campaign["budget"] > 0
            assert Decimal(repr(campaign["budget"])).as_tuple().exponent >= -2  # type: ignore[operator]
            assert CREATED_AT.fullmatch(campaign["created_at"])
            datetime.fromisoformat(campaign["created_at"])


def test_data_is_a_pure_function_of_seed_account_campaign_and_day() -> None:
    same = expected_campaigns("globex", "2024-03-01", seed=5)

    assert same == expected_campaigns("globex", date(2024, 3, 1), seed=5)
    assert same != expected_campaigns("globex", date(2024, 3, 1), seed=6)
    assert same != expected_campaigns("initech", date(2024, 3, 1), seed=5)
    assert expected_campaigns("globex", "2024-03-01", seed=5, campaign_count=7) == same[:7]


def test_descriptive_fields_hold_across_days_while_metrics_change() -> None:
    first = expected_campaigns("acme-retail", date(2024, 5, 1), seed=SEED)
    second = expected_campaigns("acme-retail", date(2024, 5, 2), seed=SEED)

    for before, after in zip(first, second, strict=True):
        assert (before["name"], before["budget"], before["created_at"]) == (
            after["name"],
            after["budget"],
            after["created_at"],
        )
    changed = sum(
        (before["impressions"], before["clicks"]) != (after["impressions"], after["clicks"])
        for before, after in zip(first, second, strict=True)
    )
    assert changed >= 80


def test_status_changes_on_some_days_but_completed_campaigns_stay_completed() -> None:
    month = [expected_campaigns("umbrella-health", date(2024, 6, 1) + timedelta(days=n), seed=SEED) for n in range(30)]
    statuses = [{day[index]["status"] for day in month} for index in range(100)]

    assert any(len(seen) > 1 for seen in statuses)
    assert all(seen == {"completed"} for seen in statuses if "completed" in seen)
    assert any(seen == {"completed"} for seen in statuses)


def test_completed_campaigns_deliver_nothing() -> None:
    campaigns = expected_campaigns("initech", date(2024, 7, 1), seed=SEED)
    completed = [campaign for campaign in campaigns if campaign["status"] == "completed"]

    assert completed
    assert all(campaign["impressions"] == campaign["clicks"] == campaign["conversions"] == 0 for campaign in completed)


def test_hostile_account_carries_every_kind_of_hostile_name() -> None:
    names = [campaign["name"] for campaign in expected_campaigns("hostile-names", DAYS[0], seed=SEED)]

    assert "'; DROP TABLE campaigns; --" in names
    assert set(HOSTILE_NAMES) <= set(names)
    assert any("\t" in name for name in names) and any("\n" in name for name in names)
    assert any('"' in name for name in names) and any("\\" in name for name in names)
    assert any(ord(character) > 0xFFFF for name in names for character in name)
    assert any("\u202e" in name for name in names) and any("\u0600" <= c <= "\u06ff" for c in "".join(names))
    assert max(len(name) for name in names) >= 5000
    assert all("\x00" not in name and json.loads(json.dumps(name)) == name for name in names)


def test_other_accounts_have_plain_names() -> None:
    names = [campaign["name"] for campaign in expected_campaigns("globex", DAYS[0])]

    assert names == [f"Campaign {n}" for n in range(1, 101)]


@pytest.mark.parametrize("account_id", ["hostile-names", "acme-retail"])
def test_server_json_fast_path_equals_the_record(account_id: str) -> None:
    for number in range(1, 2 * len(HOSTILE_NAMES) + 1):
        rendered = json.loads(campaign_json(SEED, account_id, number, DAYS[1]))
        record = campaign_record(SEED, account_id, number, DAYS[1])

        assert rendered == record
        assert list(rendered) == CONTRACT_FIELDS


@pytest.mark.parametrize("text", ["2024-1-1", "20240101", "2024-02-30", "yesterday"])
def test_parse_day_accepts_only_real_iso_days(text: str) -> None:
    with pytest.raises(ValueError):
        parse_day(text)


def test_parse_day_refuses_a_datetime() -> None:
    with pytest.raises(TypeError):
        parse_day(datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("identifier", "number"),
    [("campaign_7", 7), ("campaign_100", 100), ("campaign_0", None), ("campaign_07", None), ("7", None)],
)
def test_campaign_number(identifier: str, number: int | None) -> None:
    assert campaign_number(identifier) == number


@pytest.mark.parametrize("account_id", ["acme-retail", "hostile-names"])
def test_pages_over_http_hold_exactly_the_expected_campaigns(
    api: MockApiServer, http: httpx.Client, account_id: str
) -> None:
    token = api.token(account_id)
    pages = [
        http.get("/api/campaigns", params={"page": page, "limit": 30, "date": "2024-02-29"}, headers=bearer(token))
        for page in range(1, 6)
    ]

    assert [page.status_code for page in pages] == [200] * 5
    bodies = [page.json() for page in pages]
    assert [body["pagination"]["has_more"] for body in bodies] == [True, True, True, False, False]
    assert [body["pagination"]["total"] for body in bodies] == [100] * 5
    assert bodies[4]["data"] == []
    listed = [campaign for body in bodies for campaign in body["data"]]
    assert listed == expected_campaigns(account_id, "2024-02-29", seed=SEED)


def test_list_without_date_shows_todays_utc_metrics(api: MockApiServer, http: httpx.Client) -> None:
    token = api.token("initech")
    day_before = datetime.now(UTC).date()
    body = http.get("/api/campaigns", params={"limit": 100}, headers=bearer(token)).json()
    day_after = datetime.now(UTC).date()

    assert body["data"] in [expected_campaigns("initech", day, seed=SEED) for day in {day_before, day_after}]
