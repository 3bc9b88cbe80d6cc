"""Sensors: the account dimension follows the registry; final failures raise an alert."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dagster as dg
import requests

from campaign_pipeline.accounts import load_registry
from campaign_pipeline.partitions import ACCOUNT_DIMENSION

WILL_RETRY_TAG = "dagster/will_retry"
WEBHOOK_TIMEOUT_SECONDS = 10

log = logging.getLogger(__name__)


def build_account_registry_sensor(accounts_file: Path) -> dg.SensorDefinition:
    """Return ``account_registry_sensor``: adds registry accounts to the account dimension, removes deleted ones.

    A disabled account keeps its partitions (its history stays visible); only
    an account deleted from the registry leaves the dimension.
    """

    @dg.sensor(
        name="account_registry_sensor",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def account_registry_sensor(context: dg.SensorEvaluationContext):
        wanted = {account.id for account in load_registry(accounts_file)}
        known = set(context.instance.get_dynamic_partitions(ACCOUNT_DIMENSION))
        added, removed = sorted(wanted - known), sorted(known - wanted)
        if not added and not removed:
            return dg.SkipReason(f"The account dimension matches the registry ({len(wanted)} accounts).")
        requests_: list = []
        if added:
            requests_.append(dg.AddDynamicPartitionsRequest(ACCOUNT_DIMENSION, added))
        if removed:
            requests_.append(dg.DeleteDynamicPartitionsRequest(ACCOUNT_DIMENSION, removed))
        context.log.info(f"Accounts added: {added or 'none'}; removed: {removed or 'none'}")
        return dg.SensorResult(dynamic_partitions_requests=requests_)

    return account_registry_sensor


def build_final_failure_sensor(webhook_url: str | None) -> dg.SensorDefinition:
    """Return ``final_failure_alert_sensor``: one alert per run that failed for good.

    A failed run that Dagster will retry (tag ``dagster/will_retry``) raises no
    alert; its last retry does. The alert is a JSON log line and, when
    ``CAMPAIGN_PIPELINE_ALERT_WEBHOOK_URL`` is set, an HTTP POST of the same JSON.
    """

    @dg.run_failure_sensor(name="final_failure_alert_sensor", default_status=dg.DefaultSensorStatus.RUNNING)
    def final_failure_alert_sensor(context: dg.RunFailureSensorContext):
        run = context.dagster_run
        if run.tags.get(WILL_RETRY_TAG) == "true":
            return dg.SkipReason(f"Run {run.run_id} failed but will be retried.")
        alert = failure_alert(run, context.failure_event.message)
        context.log.error(json.dumps(alert, sort_keys=True))
        if webhook_url:
            response = requests.post(webhook_url, json=alert, timeout=WEBHOOK_TIMEOUT_SECONDS)
            response.raise_for_status()
        return None

    return final_failure_alert_sensor


def failure_alert(run: dg.DagsterRun, message: str | None) -> dict:
    """The JSON body of an alert about ``run``."""
    return {
        "event": "campaign_pipeline.run_failed",
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition"),
        "account": run.tags.get("dagster/partition/account"),
        "date": run.tags.get("dagster/partition/date"),
        "attempt": int(run.tags.get("dagster/retry_number", "0")) + 1,
        "message": message,
    }
