"""Outages: PostgreSQL stopped mid-run and started again; the ad platform gone for good.

PostgreSQL: a Debian server that the test owns holds both the warehouse and
Dagster's storage; ``pg_ctl stop -m immediate`` hits it while ``campaign-pipeline
run`` is syncing two accounts, and it starts again a few seconds later. The run
must recover or fail with a clear reason per account; a rerun must end exact.

The platform: the simulator is killed while an account-day is syncing and
never comes back. Each attempt of the partition must end within its deadline
with a message naming the cause, the partition's earlier rows stay as they
were, and once a platform answers again the other accounts sync exactly and
the failed account-day resumes from its checkpoints.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest

from campaign_pipeline import database
from campaign_pipeline.warehouse import Warehouse
from campaign_pipeline.warehouse.frame import campaigns_to_frame
from campaign_pipeline_tests.chaos.externalpg import ExternalPostgres, postgres_bin_dir
from campaign_pipeline_tests.chaos.support import (
    REPO_ROOT,
    Figures,
    clean_env,
    cli,
    compare,
    failure_reasons,
    loaded_by,
    materialize,
    resources,
)
from mock_api.accounts import demo_credentials
from mock_api.dataset import expected_campaigns
from mock_api.testing import MockApiServer

DAY = date(2026, 11, 25)
SEED = 51
EARLIER_SEED = 52
OUTAGE_SECONDS = 4
PARTITION_DEADLINE_SECONDS = 4.0


def _synced_count(url: str, day: date) -> int:
    try:
        with psycopg.connect(url, connect_timeout=2) as connection:
            return connection.execute(
                "SELECT count(*) FROM campaign_sync_progress WHERE metrics_date = %s", (day,)
            ).fetchone()[0]
    except psycopg.Error:
        return 0


@pytest.fixture
def external_postgres() -> Iterator[ExternalPostgres]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.fail("Debian's PostgreSQL server is needed (apt-get install postgresql); .ci/run installs it.")
    server = ExternalPostgres(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.mark.slow
def test_postgres_stopped_mid_run_and_started_again_ends_exact_after_a_rerun(
    external_postgres: ExternalPostgres, tmp_path: Path, figures: Figures
) -> None:
    accounts = ["acme-retail", "globex"]
    for name in ("outage_wh", "outage_dg"):
        database.ensure_database(external_postgres.admin_url, name)
    warehouse_url = database.with_database(external_postgres.admin_url, "outage_wh")
    with MockApiServer(
        profile="fast", seed=SEED, sync_latency_seconds=0.2, log_path=tmp_path / "mock_api.log"
    ) as api:
        env = clean_env(
            tmp_path / "home",
            CAMPAIGN_PIPELINE_API_URL=api.url,
            CAMPAIGN_PIPELINE_CREDENTIALS=json.dumps(demo_credentials()),
            CAMPAIGN_PIPELINE_ACCOUNTS_FILE=str(REPO_ROOT / "demo" / "accounts.toml"),
            CAMPAIGN_PIPELINE_WAREHOUSE_URL=warehouse_url,
            CAMPAIGN_PIPELINE_DAGSTER_STORAGE_URL=database.with_database(external_postgres.admin_url, "outage_dg"),
            CAMPAIGN_PIPELINE_RATE_LIMIT="100000",
            CAMPAIGN_PIPELINE_RATE_WINDOW_SECONDS="1",
            CAMPAIGN_PIPELINE_SYNC_WORKERS="4",
        )
        selection = [arg for account_id in accounts for arg in ("--account", account_id)]
        command = [sys.executable, "-m", "campaign_pipeline.cli", "run", "--date", DAY.isoformat(), *selection]
        run = subprocess.Popen(
            command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            while _synced_count(warehouse_url, DAY) < 20:
                assert run.poll() is None, run.communicate()
                assert time.monotonic() < deadline, "the run never started syncing"
                time.sleep(0.05)
            external_postgres.stop("immediate")
            time.sleep(OUTAGE_SECONDS)
            external_postgres.start()
            stdout, stderr = run.communicate(timeout=600)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
                run.communicate()
        first = (run.returncode, stdout, stderr)

        rerun = cli("run", "--date", DAY.isoformat(), *selection, env=env, timeout=600)

    figures.add_faults({"PostgreSQL stopped (immediate) mid-run": 1})
    print(f"first run exit {first[0]}\n{first[1]}\n{first[2]}")
    assert first[0] in (0, 1), first
    if first[0] == 1:
        failed = [line for line in first[2].splitlines() if " failed: " in line]
        assert failed, first[2]
        assert all("connection" in line for line in failed), failed
    assert "Traceback" not in first[1] + first[2]
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    for account_id in accounts:
        comparison = compare(warehouse_url, account_id, DAY, seed=SEED)
        assert comparison.exact, comparison
        figures.add_comparison(comparison)
    figures.outages_survived += 1


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("account", ["initech", "acme-retail", "globex"])
        yield instance


@pytest.mark.slow
def test_the_platform_gone_fails_the_partition_within_its_deadline_and_others_carry_on_after(
    make_database: Any, instance: dg.DagsterInstance, tmp_path: Path, figures: Figures
) -> None:
    warehouse_url = make_database("gone")
    records = expected_campaigns("initech", DAY, seed=EARLIER_SEED)
    with Warehouse(warehouse_url) as warehouse:
        warehouse.migrate()
        warehouse.replace_partition(
            "initech", DAY, campaigns_to_frame(records, account_id="initech", day=DAY), run_id="earlier-load"
        )
    api = MockApiServer(profile="fast", seed=SEED, sync_latency_seconds=0.1, log_path=tmp_path / "mock_api.log")
    api.start()
    try:
        run_resources = resources(
            api.url, warehouse_url, tmp_path / "frames",
            sync_workers=4, partition_deadline_seconds=PARTITION_DEADLINE_SECONDS,
        )
        outcome: dict[str, dg.ExecuteInProcessResult] = {}
        worker = _in_thread(lambda: outcome.setdefault("initech", materialize(instance, run_resources, "initech", DAY)))
        deadline = time.monotonic() + 60
        while _synced_count(warehouse_url, DAY) < 20:
            assert time.monotonic() < deadline, "the partition never started syncing"
            time.sleep(0.02)
        api.kill()
        worker.join(timeout=300)
        assert not worker.is_alive()
        result = outcome["initech"]
        checkpointed = _checkpointed(warehouse_url, "initech")
        untouched = loaded_by(warehouse_url, "initech", DAY) == {"earlier-load"} and compare(
            warehouse_url, "initech", DAY, seed=EARLIER_SEED
        ).exact

        api.start()
        api.reset()
        others = [materialize(instance, run_resources, account_id, DAY) for account_id in ("acme-retail", "globex")]
        resumed = materialize(instance, run_resources, "initech", DAY)
        resumed_syncs = [r for r in api.requests() if r["endpoint"] == "sync" and r["account"] == "initech"]
    finally:
        api.stop()

    assert not result.success
    (reason,) = failure_reasons(result)
    assert "initech" in reason and "connection failed (ConnectionError)" in reason, reason
    attempts = _attempt_seconds(instance, result)
    assert len(attempts) == 3 and all(seconds <= PARTITION_DEADLINE_SECONDS + 3 for seconds in attempts), attempts
    assert untouched

    assert all(other.success for other in others)
    assert resumed.success
    assert len(resumed_syncs) == 100 - len(checkpointed)
    for account_id in ("acme-retail", "globex", "initech"):
        comparison = compare(warehouse_url, account_id, DAY, seed=SEED)
        assert comparison.exact, comparison
        figures.add_comparison(comparison)
    figures.add_faults({"ad platform gone (simulator killed)": 1})
    figures.outages_survived += 1


def _in_thread(work: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def _checkpointed(url: str, account_id: str) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT campaign_id FROM campaign_sync_progress WHERE account_id = %s AND metrics_date = %s",
            (account_id, DAY),
        ).fetchall()
    return {campaign_id for (campaign_id,) in rows}


def _attempt_seconds(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> list[float]:
    """Seconds from each start of the snapshot step to its retry request or failure, from the event log."""
    seconds, started = [], None
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None or event.step_key != "campaign_snapshots":
            continue
        if event.event_type_value in ("STEP_START", "STEP_RESTARTED"):
            started = entry.timestamp
        elif event.event_type_value in ("STEP_UP_FOR_RETRY", "STEP_FAILURE") and started is not None:
            seconds.append(entry.timestamp - started)
            started = None
    return seconds
