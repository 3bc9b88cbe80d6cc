"""Sensors: the account dimension follows the registry; final failures and lost retries raise an alert."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import requests

from campaign_pipeline.accounts import load_registry
from campaign_pipeline.partitions import ACCOUNT_DIMENSION

WILL_RETRY_TAG = "dagster/will_retry"
# Set on a failed run by the daemon when it launches the run's retry.
AUTO_RETRY_RUN_ID_TAG = "dagster/auto_retry_run_id"
# Our record of a failed run's promised retry: "expected" once final_failure_alert_sensor passed
# over the failure, then "started" or "lost_alerted". The daemon itself turns dagster/will_retry
# to "false" when it cannot launch the retry (its code location did not load, say), so that tag
# cannot tell a lost retry from a final failure.
RETRY_TAG = "campaign_pipeline/retry"
# How long the daemon gets to launch a retry before the retry counts as lost.
LOST_RETRY_GRACE_SECONDS = 600
LOST_RETRY_RUNS_PER_TICK = 100
# A tick handles up to 5 failed runs (Dagster's run-status sensor limit) within its 60 s, so an
# alert gets at most 10.5 s: three tries of at most 3 s, 0.5 s and 1 s apart. A webhook answers in well under 1 s.
WEBHOOK_TIMEOUT_SECONDS = 3
WEBHOOK_ATTEMPTS = 3
WEBHOOK_RETRY_DELAY_SECONDS = 0.5

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
    alert; its last retry does, and ``lost_retry_alert_sensor`` does if the
    retry never starts (the run is tagged ``campaign_pipeline/retry=expected``
    for it). The alert is a JSON log line and, when
    ``CAMPAIGN_PIPELINE_ALERT_WEBHOOK_URL`` is set, an HTTP POST of the same JSON
    (see :func:`post_alert`). An alert the webhook does not take fails the tick,
    which the sensor's history in the UI shows; Dagster does not evaluate that
    run again, but the log line stays in the tick's logs.
    """

    @dg.run_failure_sensor(name="final_failure_alert_sensor", default_status=dg.DefaultSensorStatus.RUNNING)
    def final_failure_alert_sensor(context: dg.RunFailureSensorContext):
        run = context.dagster_run
        if run.tags.get(WILL_RETRY_TAG) == "true":
            context.instance.add_run_tags(run.run_id, {RETRY_TAG: "expected"})
            return dg.SkipReason(f"Run {run.run_id} failed but will be retried.")
        raise_alert(context, webhook_url, failure_alert(run, context.failure_event.message))
        return None

    return final_failure_alert_sensor


def build_lost_retry_sensor(
    webhook_url: str | None,
    *,
    grace_seconds: float = LOST_RETRY_GRACE_SECONDS,
    runs_per_tick: int = LOST_RETRY_RUNS_PER_TICK,
    clock: Callable[[], float] = time.time,
):
    """Return ``lost_retry_alert_sensor``: an alert for a failed run whose promised retry never started.

    ``final_failure_alert_sensor`` passes over a failure Dagster says it will
    retry, tagging the run ``campaign_pipeline/retry=expected``, and sees each
    failure once; when the retry is then never launched (the code location did
    not load when the daemon tried, say), this sensor raises the alert, once per
    run, ``grace_seconds`` after the run ended. An alert the webhook refuses is
    tried again at the next tick. Runs are looked at oldest first and only
    while their retry is expected, ``runs_per_tick`` at a time, so many recent
    failures cannot hide an old one. ``clock`` gives the time (tests pass their own).
    """

    @dg.sensor(
        name="lost_retry_alert_sensor",
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def lost_retry_alert_sensor(context: dg.SensorEvaluationContext):
        records = context.instance.get_run_records(
            filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], tags={RETRY_TAG: "expected"}),
            limit=runs_per_tick,
            ascending=True,
        )
        now = clock()
        lost = []
        for record in records:
            run = record.dagster_run
            if AUTO_RETRY_RUN_ID_TAG in run.tags:
                context.instance.add_run_tags(run.run_id, {RETRY_TAG: "started"})
            elif record.end_time is not None and now - record.end_time >= grace_seconds:
                lost.append(run)
        if not lost:
            return dg.SkipReason("No failed run is waiting for a retry that never started.")
        for run in lost:
            minutes = grace_seconds / 60
            raise_alert(
                context,
                webhook_url,
                failure_alert(run, f"Dagster marked the run for a retry that did not start within {minutes:g} min"),
            )
            context.instance.add_run_tags(run.run_id, {RETRY_TAG: "lost_alerted"})
        return dg.SkipReason(f"Alerted about {len(lost)} run(s) whose retry never started.")

    return lost_retry_alert_sensor


def raise_alert(context, webhook_url: str | None, alert: dict) -> None:
    """Log ``alert`` as a JSON line in the sensor tick and, with a webhook, POST it (see :func:`post_alert`)."""
    context.log.error(json.dumps(alert, sort_keys=True))
    if webhook_url:
        post_alert(webhook_url, alert)


class AlertDeliveryError(RuntimeError):
    """The webhook did not take an alert; the message names the run, never the webhook's URL."""


def post_alert(
    webhook_url: str,
    alert: dict,
    *,
    attempts: int = WEBHOOK_ATTEMPTS,
    retry_delay_seconds: float = WEBHOOK_RETRY_DELAY_SECONDS,
) -> None:
    """POST ``alert`` as JSON to ``webhook_url``, trying up to ``attempts`` times.

    A connection error, a timeout, 429 or a 5xx is tried again after
    ``retry_delay_seconds``, doubled for each next try; another 4xx is final.
    The URL is a secret (a webhook's path is often its token), so no error
    quotes it: requests' own messages do.

    Raises:
        AlertDeliveryError: The webhook did not answer with a 2xx status.
    """
    for attempt in range(1, attempts + 1):
        try:
            response = requests.post(webhook_url, json=alert, timeout=WEBHOOK_TIMEOUT_SECONDS)
        except requests.RequestException as error:
            reason, retriable = type(error).__name__, True
        else:
            if response.ok:
                return
            reason = f"HTTP {response.status_code}"
            retriable = response.status_code == 429 or response.status_code >= 500
        if not retriable or attempt == attempts:
            tries = f"{attempt} attempt" + ("s" if attempt > 1 else "")
            raise AlertDeliveryError(
                f"CAMPAIGN_PIPELINE_ALERT_WEBHOOK_URL did not take the alert about run {alert['run_id']} "
                f"({tries}, last: {reason})."
            )
        log.warning("The alert webhook answered %s; trying again (attempt %d of %d).", reason, attempt + 1, attempts)
        time.sleep(retry_delay_seconds * 2 ** (attempt - 1))


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
