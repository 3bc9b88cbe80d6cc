"""End to end with Dagster's own processes: code server, daemon and webserver sharing PostgreSQL.

One story, as an operator lives it: the daily schedule ticks and syncs every
account; an outage fails one partition; ``campaign-pipeline backfill --failed``
re-runs exactly that partition; the warehouse ends equal to the platform's
ground truth. The simulator injects 503s and hangs throughout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from campaign_pipeline.backfill import launch_backfill
from campaign_pipeline.definitions import CAMPAIGN_SYNC_JOB
from campaign_pipeline.partitions import build_campaign_partitions
from campaign_pipeline_tests import browser
from mock_api.accounts import demo_credentials
from mock_api.dataset import expected_campaigns
from mock_api.testing import MockApiServer

pytestmark = pytest.mark.e2e

SEED = 5
ACCOUNTS = ("acme-retail", "globex", "initech")
REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "test-artifacts"
PARTITIONS = build_campaign_partitions(date(2026, 1, 1))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(condition: Callable[[], object], what: str, timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Stack:
    """The simulator plus ``campaign-pipeline dev`` (code server, daemon, webserver)."""

    def __init__(self, home: Path, warehouse_url: str, storage_url: str, log_dir: Path) -> None:
        self.home = home
        self.warehouse_url = warehouse_url
        self.simulator = MockApiServer(
            profile="original", seed=SEED, log_path=log_dir / "mock_api.log",
            rate_limit=20, rate_window_seconds=1, sync_latency_seconds=0.05, hang_seconds=3,
            list_error_rate=0.2, list_hang_rate=0.1, sync_error_rate=0.05, sync_hang_rate=0.02,
        )
        registry = home / "accounts.toml"
        home.mkdir(parents=True, exist_ok=True)
        registry.write_text("".join(f'[[accounts]]\nid = "{account}"\n' for account in ACCOUNTS))
        self.port = _free_port()
        self.env = {key: value for key, value in os.environ.items() if not key.startswith(("CAMPAIGN_PIPELINE_", "DAGSTER_"))}
        self.env.update(
            CAMPAIGN_PIPELINE_HOME=str(home),
            CAMPAIGN_PIPELINE_ACCOUNTS_FILE=str(registry),
            CAMPAIGN_PIPELINE_CREDENTIALS=json.dumps(demo_credentials(ACCOUNTS)),
            CAMPAIGN_PIPELINE_WAREHOUSE_URL=warehouse_url,
            CAMPAIGN_PIPELINE_DAGSTER_STORAGE_URL=storage_url,
            CAMPAIGN_PIPELINE_SCHEDULE_CRON="* * * * *",
            CAMPAIGN_PIPELINE_RATE_LIMIT="20",
            CAMPAIGN_PIPELINE_RATE_WINDOW_SECONDS="1",
            CAMPAIGN_PIPELINE_READ_TIMEOUT_SECONDS="1",
            CAMPAIGN_PIPELINE_TRANSIENT_RETRIES="3",
            CAMPAIGN_PIPELINE_STEP_RETRIES="0",
        )
        self.process: subprocess.Popen | None = None
        self.log_dir = log_dir
        self.broken_key = ""

    def start(self) -> None:
        self.simulator.start()
        self.env["CAMPAIGN_PIPELINE_API_URL"] = self.simulator.url
        with (self.log_dir / "dev.log").open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "campaign_pipeline.cli", "dev", "--port", str(self.port),
                 "--code-server-port", str(_free_port())],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        _wait(lambda: "Dagster UI:" in (self.log_dir / "dev.log").read_text() or self.process.poll() is not None,
              "campaign-pipeline dev to start", 180)
        assert self.process.poll() is None, (self.log_dir / "dev.log").read_text()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.simulator.stop()

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "campaign_pipeline.cli", *args], env=self.env,
                              capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def stack(make_database, tmp_path_factory) -> Iterator[Stack]:
    log_dir = ARTIFACTS / "e2e"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    stack = Stack(tmp_path_factory.mktemp("e2e") / "home", make_database("e2ewh"), make_database("e2edg"), log_dir)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def instance(stack: Stack, tmp_path_factory) -> Iterator[dg.DagsterInstance]:
    saved = dict(os.environ)
    os.environ["CAMPAIGN_PIPELINE_DAGSTER_PG_URL"] = stack.env["CAMPAIGN_PIPELINE_DAGSTER_STORAGE_URL"].replace(
        "postgresql://", "postgresql+psycopg2://", 1
    )
    try:
        with dg.DagsterInstance.from_config(str(stack.dagster_home)) as instance:
            yield instance
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _runs(instance: dg.DagsterInstance, **tags: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags=tags)))


def _finished(runs: list[dg.DagsterRun], count: int) -> list[dg.DagsterRun] | None:
    done = [run for run in runs if run.is_finished]
    return done if len(done) >= count else None


def _warehouse(url: str, day: date) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT account_id, campaign_id, impressions, clicks, conversions FROM campaign_daily_metrics"
            " WHERE metrics_date = %s ORDER BY account_id, campaign_id", (day,)
        ).fetchall()
    result: dict[str, list[tuple]] = {}
    for account_id, *rest in rows:
        result.setdefault(account_id, []).append(tuple(rest))
    return result


def _truth(accounts, day: date) -> dict[str, list[tuple]]:
    return {
        account: sorted((r["id"], r["impressions"], r["clicks"], r["conversions"])
                        for r in expected_campaigns(account, day, seed=SEED))
        for account in sorted(accounts)
    }


def test_1_schedule_tick_syncs_every_account_then_an_outage_fails_one_partition(
    stack: Stack, instance: dg.DagsterInstance
):
    instance.add_dynamic_partitions("account", list(ACCOUNTS))

    scheduled = _wait(
        lambda: _finished(_runs(instance, **{"dagster/schedule_name": "daily_campaign_sync_schedule"}), 3),
        "the schedule tick's three runs", 240,
    )[-3:]
    yesterday = date.fromisoformat(scheduled[0].tags["dagster/partition/date"])
    assert yesterday in {datetime.now(UTC).date() - timedelta(days=offset) for offset in (1, 2)}
    assert sorted(run.tags["dagster/partition"] for run in scheduled) == sorted(f"{a}|{yesterday}" for a in ACCOUNTS)
    assert [run.status for run in scheduled] == [dg.DagsterRunStatus.SUCCESS] * 3
    assert _warehouse(stack.warehouse_url, yesterday) == _truth(ACCOUNTS, yesterday)

    broken_day = yesterday - timedelta(days=1)
    stack.broken_key = f"globex|{broken_day}"
    stack.simulator.set_faults({"list": {"error_rate": 1.0, "hang_rate": 0.0}})
    dagster_env = {**stack.env, "DAGSTER_HOME": str(stack.dagster_home),
                   "CAMPAIGN_PIPELINE_DAGSTER_PG_URL": os.environ["CAMPAIGN_PIPELINE_DAGSTER_PG_URL"]}
    launch_backfill(CAMPAIGN_SYNC_JOB, [stack.broken_key], stack.dagster_home / "workspace.yaml", dagster_env)
    (failed_run,) = _wait(lambda: _finished(_runs(instance, **{"dagster/partition": stack.broken_key}), 1),
                          "the run during the outage to fail", 180)
    stack.simulator.set_faults({"list": {"error_rate": 0.2, "hang_rate": 0.1}})
    assert failed_run.status == dg.DagsterRunStatus.FAILURE
    assert instance.get_status_by_partition(
        dg.AssetKey("campaign_snapshots"), [stack.broken_key], PARTITIONS
    ) == {stack.broken_key: dg.AssetPartitionStatus.FAILED}


@pytest.mark.browser
def test_2_the_ui_partition_page_shows_the_materialized_and_the_failed_partitions(stack: Stack):
    page = f"{stack.url}/assets/campaign_snapshots?view=partitions"
    deadline = time.monotonic() + 180
    while True:
        # A loaded machine may need more than one page load for the UI's queries to answer.
        text = browser.page_text(page)
        counts = dict(re.findall(r"(Failed|Materialized|Materializing|Missing) \((\d+)\)", text))
        if counts.get("Failed") == "1" and counts.get("Materialized") == "3" and all(a in text for a in ACCOUNTS):
            break
        assert time.monotonic() < deadline, f"the partitions page still shows {counts}"
        time.sleep(2)
    browser.screenshot(page, ARTIFACTS / "partitions-with-failure.png")


def test_3_backfill_of_failed_partitions_reruns_exactly_that_one(stack: Stack, instance: dg.DagsterInstance):
    broken_key = stack.broken_key
    broken_day = date.fromisoformat(broken_key.split("|")[1])

    completed = stack.cli("backfill", "--failed")

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"1 failed partition(s): {broken_key}" in completed.stdout
    runs = _wait(lambda: _finished(_runs(instance, **{"dagster/partition": broken_key}), 2),
                 "the backfill's run to finish", 180)
    assert sorted(run.status.value for run in runs) == ["FAILURE", "SUCCESS"]
    backfill_runs = [run for run in _runs(instance) if "dagster/backfill" in run.tags]
    assert sorted((run.tags["dagster/partition"], run.status.value) for run in backfill_runs) == [
        (broken_key, "FAILURE"), (broken_key, "SUCCESS")
    ], "the backfill re-ran exactly the failed partition"
    assert _warehouse(stack.warehouse_url, broken_day) == _truth(["globex"], broken_day)
    assert stack.cli("backfill", "--failed").stdout.strip() == "No failed partition matches; nothing to backfill."
