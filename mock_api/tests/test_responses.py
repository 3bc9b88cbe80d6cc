"""Scripted bad answers of the list endpoint (``PUT /__admin/responses``), over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import httpx
import pytest

from mock_api.dataset import expected_campaigns
from mock_api.testing import MockApiServer, MockApiServerError
from mock_api.tests.conftest import SEED
from mock_api.tests.helpers import bearer

DAY = date(2026, 11, 27)
ACCOUNT = "globex"


@pytest.fixture
def scripted(api: MockApiServer) -> Iterator[MockApiServer]:
    api.set_responses([])
    yield api
    api.set_responses([])


def _page(http: httpx.Client, token: str, page: int = 1, limit: int = 10) -> httpx.Response:
    return http.get(
        "/api/campaigns", params={"page": page, "limit": limit, "date": DAY.isoformat()}, headers=bearer(token)
    )


def _real(page: int, limit: int = 10) -> list[dict[str, Any]]:
    return expected_campaigns(ACCOUNT, DAY, seed=SEED)[(page - 1) * limit : page * limit]


Check = Callable[[httpx.Response], None]


def _json_campaign(response: httpx.Response, index: int = 0) -> dict[str, Any]:
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    campaign: dict[str, Any] = response.json()["data"][index]
    return campaign


CASES: dict[str, tuple[dict[str, Any], Check]] = {
    "non_json": (
        {},
        lambda r: (
            r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
            and pytest.raises(json.JSONDecodeError, json.loads, r.content)
        ),
    ),
    "html_200": (
        {"kind": "html"},
        lambda r: r.status_code == 200 and r.text.startswith("<!DOCTYPE html>") and "200 Error" in r.text,
    ),
    "html_502": (
        {"kind": "html", "status": 502},
        lambda r: r.status_code == 502 and r.headers["content-type"].startswith("text/html"),
    ),
    "missing_field": ({}, lambda r: "clicks" not in _json_campaign(r) and "impressions" in _json_campaign(r)),
    "missing_pagination_total": (
        {"kind": "missing_field", "field": "pagination.total"},
        lambda r: set(r.json()["pagination"]) == {"page", "limit", "has_more"},
    ),
    "wrong_type": ({}, lambda r: _json_campaign(r)["impressions"] == str(_real(1)[0]["impressions"])),
    "negative_metric": (
        {"index": 2},
        lambda r: _json_campaign(r, 2)["clicks"] == -_real(1)[2]["clicks"] - 1,
    ),
    "null_id": ({}, lambda r: _json_campaign(r)["id"] is None),
    "empty_id": ({"index": 9}, lambda r: _json_campaign(r, 9)["id"] == ""),
    "duplicate_id": ({"index": 3}, lambda r: _json_campaign(r, 3)["id"] == "campaign_1"),
    "total_mismatch": ({}, lambda r: r.json()["pagination"]["total"] == 101),
    "total_mismatch_stated": ({"kind": "total_mismatch", "total": 7}, lambda r: r.json()["pagination"]["total"] == 7),
    "has_more_forever": (
        {"page": 10},
        lambda r: r.json()["pagination"]["has_more"] is True and len(r.json()["data"]) == 10,
    ),
    "empty_page": ({}, lambda r: r.json()["data"] == [] and r.json()["pagination"]["has_more"] is True),
    "error_body": (
        {"status": 200},
        lambda r: r.status_code == 200 and set(r.json()) == {"error", "message"},
    ),
    "oversized_string": (
        {"length": 100_000},
        lambda r: _json_campaign(r)["name"] == "x" * 100_000,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_kind_breaks_exactly_its_promise(scripted: MockApiServer, http: httpx.Client, case: str) -> None:
    overrides, check = CASES[case]
    rule = {"kind": case, **overrides}
    page = rule.pop("page", 1)
    scripted.set_responses([{**rule, "page": page}])

    response = _page(http, scripted.token(ACCOUNT), page=page)

    assert check(response) is not False
    if response.headers["content-type"] == "application/json" and "data" in response.json():
        untouched = [c for i, c in enumerate(response.json()["data"]) if i != overrides.get("index", 0)]
        expected = [c for i, c in enumerate(_real(page)) if i != overrides.get("index", 0)]
        if rule["kind"] != "empty_page":
            assert untouched == expected


def test_rules_match_account_and_page_and_run_out(scripted: MockApiServer, http: httpx.Client) -> None:
    scripted.set_responses(
        [
            {"kind": "null_id", "account": "acme-retail"},
            {"kind": "empty_page", "account": ACCOUNT, "page": 2, "times": 1},
        ]
    )
    token = scripted.token(ACCOUNT)

    first_page = _page(http, token, page=1).json()["data"]
    second_page = [_page(http, token, page=2).json()["data"] for _ in range(2)]
    other_account = _page(http, scripted.token("acme-retail"), page=2).json()["data"]

    assert first_page == _real(1)
    assert second_page == [[], _real(2)]
    assert other_account[0]["id"] is None
    assert [rule["caught"] for rule in scripted.responses()["list"]] == [1, 1]


def test_an_empty_script_restores_the_real_pages(scripted: MockApiServer, http: httpx.Client) -> None:
    scripted.set_responses([{"kind": "non_json"}])
    scripted.set_responses([])

    assert _page(http, scripted.token(ACCOUNT)).json()["data"] == _real(1)
    assert scripted.responses() == {"list": []}


def test_reset_keeps_the_script_like_the_faults(scripted: MockApiServer, http: httpx.Client) -> None:
    scripted.set_responses([{"kind": "empty_id"}])
    scripted.reset()

    assert _page(http, scripted.token(ACCOUNT)).json()["data"][0]["id"] == ""


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"kind": "sql_injection"}, "Body field 'list.0.kind'"),
        ({"kind": "null_id", "page": 0}, "Body field 'list.0.page'"),
        ({"kind": "wrong_type", "field": "colour"}, "field 'colour' does not apply to kind 'wrong_type'"),
        ({"kind": "negative_metric", "field": "name"}, "field 'name' does not apply to kind 'negative_metric'"),
        ({"kind": "html", "status": 199}, "Body field 'list.0.status'"),
    ],
)
def test_invalid_rules_get_400_and_change_nothing(
    scripted: MockApiServer, rule: dict[str, Any], message: str
) -> None:
    scripted.set_responses([{"kind": "empty_id"}])

    with pytest.raises(MockApiServerError, match="answered 400") as refused:
        scripted.set_responses([rule])

    assert message in str(refused.value)
    assert [r["kind"] for r in scripted.responses()["list"]] == ["empty_id"]


def test_a_rule_that_cannot_apply_answers_500_naming_it(scripted: MockApiServer, http: httpx.Client) -> None:
    scripted.set_responses([{"kind": "null_id", "index": 50}])

    response = _page(http, scripted.token(ACCOUNT))

    assert response.status_code == 500
    assert response.json() == {
        "error": "Script error",
        "message": "The scripted null_id answer does not fit page 1: the page has 10 campaigns, "
        "no campaign at index 50.",
    }
