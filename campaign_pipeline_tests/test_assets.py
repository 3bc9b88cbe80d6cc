"""The two assets materialized for real: simulator over HTTP, PostgreSQL, Dagster's materialize()."""

from __future__ import annotations

import json
import logging
import re
from datetime import date
from decimal import Decimal

import dagster as dg
import pandas as pd
import pytest

from campaign_pipeline.assets import build_campaign_assets
from campaign_pipeline.cli import run_summary
from campaign_pipeline.io_managers import ParquetIOManager
from campaign_pipeline.partitions import AccountDay, build_campaign_partitions
from campaign_pipeline.resources import AdPlatformResource, WarehouseResource
from campaign_pipeline.warehouse.writer import Warehouse
from mock_api.accounts import demo_credentials
from mock_api.dataset import expected_campaigns
from mock_api.testing import MockApiServer

SEED = 11
DAY = date(2026, 11, 27)
PARTITIONS = build_campaign_partitions(date(2026, 1, 1))
ASSETS = build_campaign_assets(PARTITIONS, step_retries=0)
# For tests that a failure skips the step retries: with none configured, that would prove nothing.
RETRYING = build_campaign_assets(PARTITIONS, step_retries=2, step_retry_delay_seconds=0.1)


@pytest.fixture(scope="module")
def simulator(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("simulator") / "mock_api.log"
    with MockApiServer(profile="fast", seed=SEED, log_path=log_path) as server:
        yield server


@pytest.fixture
def api(simulator):
    simulator.reset()
    simulator.set_faults({"sync": {"error_rate": 0.0}, "list": {"error_rate": 0.0}})
    return simulator


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("account", ["acme-retail", "hostile-names", "globex"])
        yield instance


def _resources(api_url: str, warehouse_url: str, tmp_path, **client_fields) -> dict:
    fields = {"rate_limit": 1000, "rate_window_seconds": 1.0, "read_timeout_seconds": 5.0, **client_fields}
    return {
        "ad_platform": AdPlatformResource(
            base_url=api_url, credentials=json.dumps(demo_credentials()), limiter_url=warehouse_url, **fields
        ),
        "warehouse": WarehouseResource(url=warehouse_url),
        "frame_io_manager": ParquetIOManager(base_dir=str(tmp_path / "frames")),
    }


def _materialize(
    instance, resources, account_id: str = "acme-retail", assets=ASSETS, **kwargs
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets,
        instance=instance,
        resources=resources,
        partition_key=str(AccountDay(account_id, DAY).partition_key),
        **kwargs,
    )


def _expected_frame(account_id: str) -> pd.DataFrame:
    rows = expected_campaigns(account_id, DAY, seed=SEED)
    return pd.DataFrame(
        {
            "campaign_id": [r["id"] for r in rows],
            "name": [r["name"] for r in rows],
            "status": [r["status"] for r in rows],
            "budget": [Decimal(str(r["budget"])) for r in rows],
            "impressions": [r["impressions"] for r in rows],
            "clicks": [r["clicks"] for r in rows],
            "conversions": [r["conversions"] for r in rows],
            "created_at": [pd.Timestamp(r["created_at"]) for r in rows],
        }
    )


def _stored(warehouse_url: str, account_id: str) -> pd.DataFrame:
    with Warehouse(warehouse_url) as warehouse:
        stored = warehouse.read_partition(account_id, DAY)
    return pd.DataFrame(
        {
            "campaign_id": stored["campaign_id"].astype(str).tolist(),
            "name": stored["name"].astype(str).tolist(),
            "status": stored["status"].astype(str).tolist(),
            "budget": [Decimal(str(value)) for value in stored["budget"]],
            "impressions": stored["impressions"].astype("int64").tolist(),
            "clicks": stored["clicks"].astype("int64").tolist(),
            "conversions": stored["conversions"].astype("int64").tolist(),
            "created_at": [pd.Timestamp(value) for value in stored["created_at"]],
        }
    )


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("campaign_id").reset_index(drop=True)


def _metadata(result: dg.ExecuteInProcessResult, node: str) -> dict:
    (materialization,) = result.asset_materializations_for_node(node)
    return {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}


def test_account_day_lands_exactly_as_the_platform_reported(api, instance, warehouse_url, tmp_path):
    result = _materialize(instance, _resources(api.url, warehouse_url, tmp_path))

    assert result.success
    pd.testing.assert_frame_equal(_sorted(_stored(warehouse_url, "acme-retail")), _sorted(_expected_frame("acme-retail")))
    snapshot = _metadata(result, "campaign_snapshots")
    load = _metadata(result, "campaign_daily_metrics")
    assert (snapshot["rows"], snapshot["pages"]) == (100, 1)
    assert snapshot["campaigns_synced_by_earlier_attempts"] == 0
    assert (load["rows"], load["inserted"], load["updated"], load["deleted"], load["unchanged"]) == (100, 100, 0, 0, 0)
    checks = {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}
    assert checks == {
        "row_count_matches_platform_total": True,
        "campaign_ids_unique": True,
        "metrics_non_negative": True,
        "clicks_within_impressions": True,
        "campaigns_have_attributes": True,
    }
    counters = api.counters()["requests"]["acme-retail"]
    assert sum(counters["sync"].values()) == 100


def test_rerun_rewrites_nothing_and_resyncs_every_campaign(api, instance, warehouse_url, tmp_path):
    resources = _resources(api.url, warehouse_url, tmp_path)
    assert _materialize(instance, resources).success
    api.reset()

    second = _materialize(instance, resources)

    load = _metadata(second, "campaign_daily_metrics")
    assert (load["inserted"], load["updated"], load["deleted"], load["unchanged"]) == (0, 0, 0, 100)
    assert sum(api.counters()["requests"]["acme-retail"]["sync"].values()) == 100
    pd.testing.assert_frame_equal(_sorted(_stored(warehouse_url, "acme-retail")), _sorted(_expected_frame("acme-retail")))


def test_hostile_names_are_stored_verbatim(api, instance, warehouse_url, tmp_path):
    assert _materialize(instance, _resources(api.url, warehouse_url, tmp_path), account_id="hostile-names").success

    stored = _sorted(_stored(warehouse_url, "hostile-names"))
    expected = _sorted(_expected_frame("hostile-names"))
    assert stored["name"].tolist() == expected["name"].tolist()
    assert any("DROP TABLE" in name for name in stored["name"])


def test_failed_campaigns_go_to_the_ledger_and_the_retry_syncs_only_those(api, instance, warehouse_url, tmp_path):
    resources = _resources(
        api.url, warehouse_url, tmp_path, sync_workers=4, transient_retries=1, backoff_base_seconds=0.01
    )
    api.set_faults({"sync": {"error_rate": 0.5}})

    first = _materialize(instance, resources, raise_on_error=False)

    assert not first.success
    with Warehouse(warehouse_url) as warehouse:
        ledger = warehouse.campaign_failures("acme-retail", DAY)
        synced_first = warehouse.synced_campaign_ids("acme-retail", DAY)
    assert ledger, "a 50 % sync error rate must exhaust some campaign's two attempts"
    assert set(ledger).isdisjoint(synced_first)
    assert len(ledger) + len(synced_first) == 100
    assert all("503" in failure.reason for failure in ledger.values())
    assert instance.get_status_by_partition(
        dg.AssetKey("campaign_snapshots"), ["acme-retail|2026-11-27"], PARTITIONS
    ) == {"acme-retail|2026-11-27": dg.AssetPartitionStatus.FAILED}

    api.set_faults({"sync": {"error_rate": 0.0}})
    api.reset()
    second = _materialize(instance, resources)

    assert second.success
    synced_paths = [r["path"] for r in api.requests() if r.get("endpoint") == "sync" and r["status"] == 200]
    assert sorted(path.split("/")[3] for path in synced_paths) == sorted(ledger)
    assert _metadata(second, "campaign_snapshots")["campaigns_synced_by_earlier_attempts"] == len(synced_first)
    with Warehouse(warehouse_url) as warehouse:
        assert warehouse.campaign_failures("acme-retail", DAY) == {}
        assert warehouse.synced_campaign_ids("acme-retail", DAY) == set()
    pd.testing.assert_frame_equal(_sorted(_stored(warehouse_url, "acme-retail")), _sorted(_expected_frame("acme-retail")))


def test_wrong_credentials_fail_without_retry_and_without_the_secret(api, instance, warehouse_url, tmp_path):
    resources = _resources(api.url, warehouse_url, tmp_path)
    bad = {**demo_credentials(), "acme-retail": {"email": "acme-retail@demo.invalid", "password": "wrong-Pa55word"}}
    resources["ad_platform"] = AdPlatformResource(
        base_url=api.url, credentials=json.dumps(bad), rate_limit=1000, rate_window_seconds=1.0
    )

    result = _materialize(instance, resources, assets=RETRYING, raise_on_error=False)

    assert not result.success
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    message = failure.event_specific_data.error.message
    assert "acme-retail" in message
    assert "wrong-Pa55word" not in message
    assert [event for event in result.all_events if event.event_type_value == "STEP_UP_FOR_RETRY"] == []
    with Warehouse(warehouse_url) as warehouse:
        assert warehouse.partition_row_count("acme-retail", DAY) == 0


def test_a_partition_key_of_no_account_fails_once_without_step_retries(api, instance, warehouse_url, tmp_path):
    # The UI lets anyone add a dynamic partition by hand.
    instance.add_dynamic_partitions("account", ["Acme Retail"])

    result = dg.materialize(
        RETRYING,
        instance=instance,
        resources=_resources(api.url, warehouse_url, tmp_path),
        partition_key="Acme Retail|2026-11-27",
        raise_on_error=False,
    )

    (failure,) = [event for event in result.all_events if event.is_step_failure]
    assert failure.event_specific_data.error.message.startswith(
        "dagster._core.definitions.events.Failure: Partition 'Acme Retail|2026-11-27': Account id 'Acme Retail' is invalid"
    )
    assert [event for event in result.all_events if event.event_type_value == "STEP_UP_FOR_RETRY"] == []
    assert api.requests() == []


def test_unknown_account_fails_with_one_sentence(api, instance, warehouse_url, tmp_path):
    instance.add_dynamic_partitions("account", ["not-registered"])
    result = _materialize(instance, _resources(api.url, warehouse_url, tmp_path), account_id="not-registered",
                          raise_on_error=False)

    (failure,) = [event for event in result.all_events if event.is_step_failure]
    assert "CAMPAIGN_PIPELINE_CREDENTIALS has no entry for account 'not-registered'." in (
        failure.event_specific_data.error.message
    )


def test_a_step_retry_within_the_run_resumes_and_the_ledger_keeps_only_current_failures(
    api, instance, warehouse_url, tmp_path
):
    retrying = build_campaign_assets(PARTITIONS, step_retries=3, step_retry_delay_seconds=0.1)
    resources = _resources(
        api.url, warehouse_url, tmp_path, sync_workers=4, transient_retries=1, backoff_base_seconds=0.01
    )
    api.set_faults({"sync": {"error_rate": 0.3}})

    result = _materialize(instance, resources, assets=retrying, raise_on_error=False)

    retries = [event for event in result.all_events if event.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retries, "a 30 % sync error rate with two attempts per call must fail some first attempt"
    sync_200 = [r for r in api.requests() if r.get("endpoint") == "sync" and r["status"] == 200]
    assert len(sync_200) == len({r["path"] for r in sync_200}), "no campaign was synced twice"
    with Warehouse(warehouse_url) as warehouse:
        ledger = set(warehouse.campaign_failures("acme-retail", DAY))
    assert result.success
    assert len(sync_200) == 100
    assert ledger == set()
    # Each failed attempt logged what it cost; the summary counts the attempts.
    costs = [
        event.message for event in instance.all_logs(result.run_id)
        if event.level == logging.WARNING and "this attempt failed after" in event.message
    ]
    assert len(costs) == len(retries)
    pattern = r"acme-retail\|2026-11-27: this attempt failed after [1-9]\d* requests \([1-9]\d* retries, 0 answered 429, "
    assert all(re.search(pattern, cost) for cost in costs), costs
    assert run_summary(result)["attempts"] == len(retries) + 1


@pytest.mark.parametrize(("page_size", "pages_recorded"), [(10, list(range(1, 11))), (1, [1, *range(10, 101, 10)])])
def test_listing_progress_is_logged_on_every_page_of_a_small_account_and_every_tenth_of_a_large_one(
    api, instance, warehouse_url, tmp_path, page_size, pages_recorded
):
    result = _materialize(instance, _resources(api.url, warehouse_url, tmp_path, page_size=page_size))

    assert result.success
    logged = [
        int(message.split(": page ")[1].split(" ")[0])
        for entry in instance.all_logs(result.run_id)
        if ": page " in (message := entry.user_message) and " fetched (" in message
    ]
    assert logged == pages_recorded
    assert _metadata(result, "campaign_snapshots")["pages"] == 100 // page_size
