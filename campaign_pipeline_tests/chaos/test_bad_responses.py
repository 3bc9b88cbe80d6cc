"""Bad answers of the platform, one kind per test, through a real Dagster run.

The simulator (``PUT /__admin/responses``) breaks one promise of the contract
on one page; the run must fail with an error that names what was wrong and
where, and the partition, loaded earlier from other data, must keep exactly
its earlier rows. Valid but hostile data must be stored verbatim.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from campaign_pipeline.warehouse import Warehouse
from campaign_pipeline.warehouse.frame import campaigns_to_frame
from campaign_pipeline_tests.chaos.support import (
    Figures,
    compare,
    failure_reasons,
    loaded_by,
    materialize,
    resources,
    truth_rows,
)
from mock_api.dataset import expected_campaigns
from mock_api.testing import MockApiServer

SEED = 21
EARLIER_SEED = 22
DAY = date(2026, 11, 27)
ACCOUNT = "acme-retail"
PAGE_SIZE = 50
EARLIER_RUN = "earlier-complete-load"


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockApiServer]:
    log_path = tmp_path_factory.mktemp("simulator") / "mock_api.log"
    with MockApiServer(profile="fast", seed=SEED, log_path=log_path) as server:
        yield server


@pytest.fixture
def api(simulator: MockApiServer) -> Iterator[MockApiServer]:
    simulator.reset()
    simulator.set_responses([])
    yield simulator
    simulator.set_responses([])


@pytest.fixture(scope="module")
def warehouse_url(make_database: Any) -> str:
    """A warehouse whose partition under test holds a complete earlier load (other metrics)."""
    url = make_database("badresp")
    records = expected_campaigns(ACCOUNT, DAY, seed=EARLIER_SEED)
    with Warehouse(url) as warehouse:
        warehouse.migrate()
        warehouse.replace_partition(
            ACCOUNT, DAY, campaigns_to_frame(records, account_id=ACCOUNT, day=DAY), run_id=EARLIER_RUN
        )
    return url


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("account", [ACCOUNT, "globex", "hostile-names"])
        yield instance


@pytest.fixture
def run(api: MockApiServer, warehouse_url: str, instance: dg.DagsterInstance, tmp_path: Path, figures: Figures):
    """Script ``rules`` and run the account-day through Dagster; count the bad answers served."""

    def run_with(
        rules: list[dict[str, Any]], account_id: str = ACCOUNT, **client_fields: Any
    ) -> dg.ExecuteInProcessResult:
        api.set_responses(rules)
        run_resources = resources(api.url, warehouse_url, tmp_path / "frames", page_size=PAGE_SIZE, **client_fields)
        result = materialize(instance, run_resources, account_id, DAY)
        figures.bad_inputs_tried += 1
        figures.add_faults({f"bad answer: {rule['kind']}": rule_caught for rule, rule_caught in _caught(api)})
        return result

    return run_with


def _caught(api: MockApiServer) -> list[tuple[dict[str, Any], int]]:
    return [(rule, rule["caught"]) for rule in api.responses()["list"]]


def assert_rejected(result: dg.ExecuteInProcessResult, warehouse_url: str, figures: Figures, *expected: str) -> str:
    """Assert that the run failed naming ``expected`` and the account-day, and wrote nothing."""
    assert not result.success
    reasons = failure_reasons(result)
    assert len(reasons) == 1, reasons
    (reason,) = reasons
    for text in (ACCOUNT, DAY.isoformat(), *expected):
        assert text in reason, f"{text!r} not in {reason!r}"
    assert compare(warehouse_url, ACCOUNT, DAY, seed=EARLIER_SEED).exact
    assert loaded_by(warehouse_url, ACCOUNT, DAY) == {EARLIER_RUN}
    figures.bad_inputs_named += 1
    return reason


def test_a_body_that_is_not_json(run, warehouse_url, figures):
    result = run([{"kind": "non_json", "page": 2}])

    assert_rejected(
        result, warehouse_url, figures,
        "GET /api/campaigns failed (HTTP 200): HTTP 200 with a body that is not JSON (text/plain, 50 bytes), "
        "on page 2 of 2026-11-27",
    )


def test_an_html_error_page_with_200(run, warehouse_url, figures):
    result = run([{"kind": "html", "page": 1}])

    assert_rejected(result, warehouse_url, figures, "HTTP 200 with a body that is not JSON (text/html,", "on page 1 of")


def test_an_html_502_page_that_passes_is_retried_and_the_day_lands_exactly(run, api, warehouse_url, figures):
    result = run([{"kind": "html", "status": 502, "page": 2, "times": 2}], account_id="globex")

    assert result.success
    list_statuses = [r["status"] for r in api.requests() if r["endpoint"] == "list"]
    assert list_statuses == [200, 502, 502, 200]
    comparison = compare(warehouse_url, "globex", DAY, seed=SEED)
    assert comparison.exact
    figures.add_comparison(comparison)
    figures.bad_inputs_named += 1


@pytest.mark.slow
def test_an_html_502_page_that_persists_fails_naming_the_status_and_page(run, warehouse_url, figures):
    result = run([{"kind": "html", "status": 502, "page": 2}], transient_retries=2, backoff_cap_seconds=0.1)

    assert_rejected(
        result, warehouse_url, figures, "GET /api/campaigns page 2 of 2026-11-27 gave up after 3 attempts: HTTP 502"
    )


def test_a_missing_field(run, warehouse_url, figures):
    result = run([{"kind": "missing_field", "page": 2, "index": 4}])

    assert_rejected(
        result, warehouse_url, figures,
        "GET /api/campaigns failed (HTTP 200): page 2, campaign #5 (id 'campaign_55') has no field 'clicks'",
    )


def test_a_missing_pagination_total(run, warehouse_url, figures):
    result = run([{"kind": "missing_field", "field": "pagination.total", "page": 1}])

    assert_rejected(result, warehouse_url, figures, "page 1: pagination.total is not a non-negative integer")


def test_a_field_of_the_wrong_type(run, warehouse_url, figures):
    result = run([{"kind": "wrong_type", "page": 1, "index": 9}])

    assert_rejected(
        result, warehouse_url, figures,
        "page 1, campaign #10 (id 'campaign_10'): field 'impressions' is a string, not an integer",
    )


def test_a_negative_metric(run, warehouse_url, figures):
    result = run([{"kind": "negative_metric", "field": "conversions", "page": 2, "index": 0}])

    assert_rejected(result, warehouse_url, figures, "column 'conversions' violates 'non-negative': campaign_51")


def test_a_null_id(run, warehouse_url, figures):
    result = run([{"kind": "null_id", "page": 2, "index": 2}])

    assert_rejected(result, warehouse_url, figures, "page 2, campaign #3: field 'id' is null, not a string")


def test_an_empty_id(run, warehouse_url, figures):
    result = run([{"kind": "empty_id", "page": 1, "index": 7}])

    assert_rejected(result, warehouse_url, figures, "page 1, campaign #8: field 'id' is empty")


def test_an_id_repeated_on_a_later_page(run, warehouse_url, figures):
    result = run([{"kind": "duplicate_id", "page": 2, "index": 6}])

    assert_rejected(
        result, warehouse_url, figures,
        "the campaign list of 2026-11-27: page 2 repeats campaign id 'campaign_1' (first seen on page 1)",
    )


def test_a_total_that_changes_between_pages(run, warehouse_url, figures):
    result = run([{"kind": "total_mismatch", "page": 2}])

    assert_rejected(result, warehouse_url, figures, "page 2 states a total of 101 campaigns, earlier pages 100")


def test_a_total_the_pages_never_reach(run, warehouse_url, figures):
    result = run([{"kind": "total_mismatch", "total": 150}])

    assert_rejected(
        result, warehouse_url, figures, "the listing ended on page 2 after 100 of the stated 150 campaigns"
    )


def test_has_more_that_never_ends_stops_at_total_and_the_day_lands_exactly(run, api, warehouse_url, figures):
    result = run([{"kind": "has_more_forever"}], account_id="globex")

    assert result.success
    assert [r["path"].split("&")[0] for r in api.requests() if r["endpoint"] == "list"] == [
        "/api/campaigns?page=1",
        "/api/campaigns?page=2",
    ]
    comparison = compare(warehouse_url, "globex", DAY, seed=SEED)
    assert comparison.exact
    figures.add_comparison(comparison)
    figures.bad_inputs_named += 1


def test_an_empty_page_that_says_has_more(run, warehouse_url, figures):
    result = run([{"kind": "empty_page", "page": 2}])

    assert_rejected(
        result, warehouse_url, figures, "the listing ended on page 2 after 50 of the stated 100 campaigns"
    )


def test_a_200_that_carries_an_error_body(run, warehouse_url, figures):
    result = run([{"kind": "error_body", "page": 1}])

    assert_rejected(
        result, warehouse_url, figures,
        "HTTP 200 with an error body: Internal error: The campaign store did not answer; try again later, "
        "on page 1 of 2026-11-27",
    )


def test_an_oversized_name(run, warehouse_url, figures):
    result = run([{"kind": "oversized_string", "page": 2, "index": 3, "length": 2_000_000}])

    reason = assert_rejected(
        result, warehouse_url, figures, "column 'name' violates 'at most 10,000 characters': campaign_54"
    )
    assert len(reason) < 1000


def test_an_oversized_id(run, warehouse_url, figures):
    result = run([{"kind": "oversized_string", "field": "id", "page": 1, "index": 0, "length": 5000}])

    reason = assert_rejected(
        result, warehouse_url, figures, "column 'campaign_id' violates 'at most 255 characters': 'xxxxxxxx"
    )
    assert len(reason) < 1000


def test_hostile_but_valid_names_are_stored_verbatim(run, api, warehouse_url, figures):
    result = run([], account_id="hostile-names")

    assert result.success
    comparison = compare(warehouse_url, "hostile-names", DAY, seed=SEED)
    assert comparison.exact, comparison
    figures.add_comparison(comparison)
    names = {row[0] for row in truth_rows("hostile-names", DAY, seed=SEED).values()}
    assert "'; DROP TABLE campaigns; --" in names and any(len(name) == 5000 for name in names)
