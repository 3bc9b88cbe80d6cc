from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from campaign_pipeline.accounts import AccountConfigError
from campaign_pipeline.sensors import (
    WEBHOOK_ATTEMPTS,
    WEBHOOK_RETRY_DELAY_SECONDS,
    WEBHOOK_TIMEOUT_SECONDS,
    AlertDeliveryError,
    build_account_registry_sensor,
    build_final_failure_sensor,
    build_lost_retry_sensor,
    post_alert,
)


def _evaluate_registry_sensor(sensor, instance):
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance))


def test_registry_sensor_adds_new_and_removes_deleted_accounts(tmp_path):
    registry = tmp_path / "accounts.toml"
    registry.write_text('[[accounts]]\nid = "acme"\n[[accounts]]\nid = "paused"\nenabled = false\n')
    sensor = build_account_registry_sensor(registry)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("account", ["gone"])
        result = _evaluate_registry_sensor(sensor, instance)
        assert [(type(r).__name__, list(r.partition_keys)) for r in result.dynamic_partitions_requests] == [
            ("AddDynamicPartitionsRequest", ["acme", "paused"]),
            ("DeleteDynamicPartitionsRequest", ["gone"]),
        ]
        instance.add_dynamic_partitions("account", ["acme", "paused"])
        instance.delete_dynamic_partition("account", "gone")
        again = _evaluate_registry_sensor(sensor, instance)
    assert again.dynamic_partitions_requests == []
    assert again.skip_message == "The account dimension matches the registry (2 accounts)."
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_registry_sensor_removes_nothing_when_the_registry_lists_nobody(tmp_path):
    registry = tmp_path / "accounts.toml"
    registry.write_text('[[account]]\nid = "acme"\n')
    sensor = build_account_registry_sensor(registry)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("account", ["acme", "globex"])

        with pytest.raises(AccountConfigError, match="unknown top-level keys 'account'"):
            _evaluate_registry_sensor(sensor, instance)

        assert instance.get_dynamic_partitions("account") == ["acme", "globex"]


SECRET_TOKEN = "T0KEN-s3cret-in-the-path"


@dataclass
class WebhookReceiver:
    url: str
    received: list[dict]
    statuses: list[int]


@pytest.fixture
def webhook_receiver():
    """A webhook at a secret path; it answers each POST with the next of ``statuses`` (204 when none are left)."""
    received: list[dict] = []
    statuses: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(statuses.pop(0) if statuses else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver = WebhookReceiver(f"http://127.0.0.1:{server.server_address[1]}/hooks/{SECRET_TOKEN}", received, statuses)
    yield receiver
    server.shutdown()


@dg.op
def broken_op() -> None:
    raise RuntimeError("the platform said no")


@dg.job
def broken_job() -> None:
    broken_op()


def _failure_context(instance, tags):
    result = broken_job.execute_in_process(instance=instance, raise_on_error=False, tags=tags)
    run = instance.get_run_by_id(result.run_id)
    failure = next(event for event in result.all_events if event.event_type_value == "PIPELINE_FAILURE")
    return dg.build_run_status_sensor_context(
        sensor_name="final_failure_alert_sensor", dagster_event=failure, dagster_instance=instance, dagster_run=run
    ).for_run_failure()


def test_final_failure_posts_one_alert(webhook_receiver):
    sensor = build_final_failure_sensor(webhook_receiver.url)
    with dg.instance_for_test() as instance:
        context = _failure_context(instance, {"dagster/partition/account": "acme", "dagster/partition/date": "2026-11-27"})
        sensor(context)
    assert len(webhook_receiver.received) == 1
    alert = webhook_receiver.received[0]
    assert alert["event"] == "campaign_pipeline.run_failed"
    assert (alert["job"], alert["account"], alert["date"], alert["attempt"]) == ("broken_job", "acme", "2026-11-27", 1)
    assert alert["run_id"] == context.dagster_run.run_id


def test_failure_that_will_be_retried_raises_no_alert_and_is_marked_as_expecting_its_retry(webhook_receiver):
    sensor = build_final_failure_sensor(webhook_receiver.url)
    with dg.instance_for_test() as instance:
        context = _failure_context(instance, {"dagster/will_retry": "true"})
        result = sensor(context)
        tags = instance.get_run_by_id(context.dagster_run.run_id).tags
    assert webhook_receiver.received == []
    assert result.skip_message == f"Run {context.dagster_run.run_id} failed but will be retried."
    assert tags["campaign_pipeline/retry"] == "expected"


def test_an_alert_the_webhook_refuses_for_a_while_is_posted_again_until_taken(webhook_receiver):
    webhook_receiver.statuses.extend([503, 429])

    post_alert(webhook_receiver.url, {"run_id": "run-1"}, retry_delay_seconds=0)

    assert webhook_receiver.received == [{"run_id": "run-1"}] * 3


def test_an_undelivered_alert_fails_without_quoting_the_webhook_url(webhook_receiver):
    webhook_receiver.statuses.extend([500, 502, 503])

    with pytest.raises(AlertDeliveryError) as excinfo:
        post_alert(webhook_receiver.url, {"run_id": "run-1"}, retry_delay_seconds=0)

    assert str(excinfo.value) == (
        "CAMPAIGN_PIPELINE_ALERT_WEBHOOK_URL did not take the alert about run run-1 (3 attempts, last: HTTP 503)."
    )
    assert excinfo.value.__cause__ is None and excinfo.value.__context__ is None
    assert len(webhook_receiver.received) == 3


def test_a_webhook_that_rejects_the_alert_is_not_asked_again(webhook_receiver):
    webhook_receiver.statuses.append(404)

    with pytest.raises(AlertDeliveryError, match=r"\(1 attempt, last: HTTP 404\)\.$"):
        post_alert(webhook_receiver.url, {"run_id": "run-1"}, retry_delay_seconds=0)

    assert len(webhook_receiver.received) == 1


def test_an_unreachable_webhook_is_named_by_its_setting_only():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}/hooks/{SECRET_TOKEN}"

    with pytest.raises(AlertDeliveryError) as excinfo:
        post_alert(url, {"run_id": "run-1"}, attempts=2, retry_delay_seconds=0)

    assert str(excinfo.value) == (
        "CAMPAIGN_PIPELINE_ALERT_WEBHOOK_URL did not take the alert about run run-1 "
        "(2 attempts, last: ConnectionError)."
    )


def test_an_alert_takes_at_most_a_fifth_of_a_sensor_tick():
    # Dagster's run-status sensor handles up to 5 runs in one tick, which must end within 60 s.
    worst_case = WEBHOOK_ATTEMPTS * WEBHOOK_TIMEOUT_SECONDS + sum(
        WEBHOOK_RETRY_DELAY_SECONDS * 2**retry for retry in range(WEBHOOK_ATTEMPTS - 1)
    )

    assert worst_case == 10.5
    assert 5 * worst_case < 60


def _failed_run_marked_for_retry(instance, **tags) -> dg.DagsterRun:
    """A failed run Dagster promised to retry, passed over by ``final_failure_alert_sensor``."""
    context = _failure_context(instance, {"dagster/will_retry": "true", **tags})
    build_final_failure_sensor(None)(context)
    return instance.get_run_by_id(context.dagster_run.run_id)


def test_a_retry_that_never_started_raises_one_alert(webhook_receiver):
    sensor = build_lost_retry_sensor(webhook_receiver.url, grace_seconds=0)
    with dg.instance_for_test() as instance:
        lost = _failed_run_marked_for_retry(instance, **{"dagster/partition/account": "acme"})
        retried = _failed_run_marked_for_retry(instance)
        instance.add_run_tags(retried.run_id, {"dagster/auto_retry_run_id": "the-retry"})

        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        second = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))

        assert instance.get_run_by_id(lost.run_id).tags["campaign_pipeline/retry"] == "lost_alerted"
        assert instance.get_run_by_id(retried.run_id).tags["campaign_pipeline/retry"] == "started"
    assert [(alert["run_id"], alert["account"]) for alert in webhook_receiver.received] == [(lost.run_id, "acme")]
    assert webhook_receiver.received[0]["message"] == (
        "Dagster marked the run for a retry that did not start within 0 min"
    )
    assert first.skip_message == "Alerted about 1 run(s) whose retry never started."
    assert second.skip_message == "No failed run is waiting for a retry that never started."


def test_a_retry_the_daemon_failed_to_launch_raises_the_alert(webhook_receiver):
    # When the run's code location does not load, the daemon gives the retry up and turns
    # dagster/will_retry to "false"; final_failure_alert_sensor has seen the failure already.
    sensor = build_lost_retry_sensor(webhook_receiver.url, grace_seconds=0)
    with dg.instance_for_test() as instance:
        lost = _failed_run_marked_for_retry(instance)
        instance.add_run_tags(lost.run_id, {"dagster/will_retry": "false"})

        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))

    assert result.skip_message == "Alerted about 1 run(s) whose retry never started."
    assert [alert["run_id"] for alert in webhook_receiver.received] == [lost.run_id]


def test_lost_retries_are_found_oldest_first_past_newer_failures(webhook_receiver):
    # Ten minutes later as far as the sensor can tell: every run's grace is over.
    sensor = build_lost_retry_sensor(
        webhook_receiver.url, grace_seconds=600, runs_per_tick=2, clock=lambda: time.time() + 601
    )
    with dg.instance_for_test() as instance:
        oldest = _failed_run_marked_for_retry(instance)
        newer = [_failed_run_marked_for_retry(instance) for _ in range(2)]
        for run in newer:
            instance.add_run_tags(run.run_id, {"dagster/auto_retry_run_id": f"retry-of-{run.run_id}"})

        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        second = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))

    assert [alert["run_id"] for alert in webhook_receiver.received] == [oldest.run_id]
    assert first.skip_message == "Alerted about 1 run(s) whose retry never started."
    assert second.skip_message == "No failed run is waiting for a retry that never started."


def test_a_retry_still_within_its_grace_raises_no_alert_and_a_refused_alert_is_tried_next_tick(webhook_receiver):
    with dg.instance_for_test() as instance:
        run = _failed_run_marked_for_retry(instance)
        waiting = build_lost_retry_sensor(webhook_receiver.url, grace_seconds=600)
        assert waiting.evaluate_tick(dg.build_sensor_context(instance=instance)).skip_message == (
            "No failed run is waiting for a retry that never started."
        )

        webhook_receiver.statuses.extend([500, 500, 500])
        lost = build_lost_retry_sensor(webhook_receiver.url, grace_seconds=0)
        with pytest.raises(AlertDeliveryError):
            lost.evaluate_tick(dg.build_sensor_context(instance=instance))
        lost.evaluate_tick(dg.build_sensor_context(instance=instance))

    assert [alert["run_id"] for alert in webhook_receiver.received] == [run.run_id] * 4
