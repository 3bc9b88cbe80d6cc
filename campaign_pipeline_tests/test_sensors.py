from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from campaign_pipeline.sensors import build_account_registry_sensor, build_final_failure_sensor


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


@pytest.fixture
def webhook_receiver():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
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
    url, received = webhook_receiver
    sensor = build_final_failure_sensor(url)
    with dg.instance_for_test() as instance:
        context = _failure_context(instance, {"dagster/partition/account": "acme", "dagster/partition/date": "2026-11-27"})
        sensor(context)
    assert len(received) == 1
    alert = received[0]
    assert alert["event"] == "campaign_pipeline.run_failed"
    assert (alert["job"], alert["account"], alert["date"], alert["attempt"]) == ("broken_job", "acme", "2026-11-27", 1)
    assert alert["run_id"] == context.dagster_run.run_id


def test_failure_that_will_be_retried_raises_no_alert(webhook_receiver):
    url, received = webhook_receiver
    sensor = build_final_failure_sensor(url)
    with dg.instance_for_test() as instance:
        result = sensor(_failure_context(instance, {"dagster/will_retry": "true"}))
    assert received == []
    assert "will be retried" in result.skip_message
