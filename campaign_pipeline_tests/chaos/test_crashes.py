"""The run worker killed with SIGKILL at seeded points; a rerun ends exact and repeats only unsaved work.

Each crash runs one account-day as a real Dagster run in its own process
(``campaign-pipeline sync-partition``, Dagster's runs and events in PostgreSQL),
whose partition already holds a complete earlier load of other values. The
worker is killed while paging (after page k), while syncing (after n campaigns
were checkpointed), during the COPY, or just before the load's COMMIT; the
last two are reached exactly by a proxy in front of PostgreSQL that freezes
the worker's connection there (:mod:`.pgproxy`). Meanwhile a reader polls the
partition and must only ever see the earlier complete load or the new one.
A rerun must end with the ground truth, sync no campaign that had been
checkpointed, and sync every other campaign exactly once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest

from campaign_pipeline.database import sqlalchemy_psycopg2_url
from campaign_pipeline.environment import DAGSTER_PG_URL, prepare_dagster_home
from campaign_pipeline.warehouse import Warehouse
from campaign_pipeline.warehouse.frame import campaigns_to_frame
from campaign_pipeline_tests.chaos.pgproxy import PostgresProxy
from campaign_pipeline_tests.chaos.support import REPO_ROOT, Figures, clean_env, compare
from mock_api.accounts import demo_credentials
from mock_api.dataset import expected_campaigns
from mock_api.testing import MockApiServer

SEED = 41
EARLIER_SEED = 42
CRASH_SEED = 7
ACCOUNT = "umbrella-health"
CAMPAIGNS = 500
PAGES = 5
FIRST_DAY = date(2026, 10, 1)
POINT_TIMEOUT_SECONDS = 120
WORKER_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class CrashPoint:
    """Where to kill the worker: ``kind`` is paging, syncing, copy or commit; ``after`` pages or campaigns."""

    kind: str
    after: int = 0

    def __str__(self) -> str:
        return f"{self.kind}-{self.after}" if self.after else self.kind


def seeded_points(seed: int, per_kind: int) -> list[CrashPoint]:
    """Return ``per_kind`` points of each kind, the page and campaign counts drawn from ``seed``."""
    rng = random.Random(seed)
    points = []
    for _ in range(per_kind):
        points += [
            CrashPoint("paging", rng.randint(1, PAGES - 1)),
            CrashPoint("syncing", rng.randint(1, CAMPAIGNS - 50)),
            CrashPoint("copy"),
            CrashPoint("commit"),
        ]
    return points


@dataclass
class Stage:
    """Everything the crash tests share: simulator, databases, proxy, worker environment."""

    api: MockApiServer
    warehouse_url: str
    proxy: PostgresProxy
    env: dict[str, str]
    home: Path


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory, make_database: Any) -> Iterator[Stage]:
    home = tmp_path_factory.mktemp("crash-home")
    warehouse_url, dagster_url = make_database("crashwh"), make_database("crashdg")
    with Warehouse(warehouse_url) as warehouse:
        warehouse.migrate()
    dagster_home = prepare_dagster_home(home)
    storage_url = sqlalchemy_psycopg2_url(dagster_url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DAGSTER_PG_URL, storage_url)
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            instance.add_dynamic_partitions("account", [ACCOUNT])
    proxy = PostgresProxy(warehouse_url)
    with MockApiServer(
        profile="fast", seed=SEED, campaign_count=CAMPAIGNS, sync_latency_seconds=0.01,
        list_extra_latency_seconds=0.25, log_path=home / "mock_api.log",
    ) as api:
        env = clean_env(
            home,
            CAMPAIGN_PIPELINE_API_URL=api.url,
            CAMPAIGN_PIPELINE_CREDENTIALS=json.dumps(demo_credentials([ACCOUNT])),
            CAMPAIGN_PIPELINE_WAREHOUSE_URL=proxy.url,
            CAMPAIGN_PIPELINE_RATE_LIMIT="100000",
            CAMPAIGN_PIPELINE_RATE_WINDOW_SECONDS="1",
            CAMPAIGN_PIPELINE_SYNC_WORKERS="4",
            DAGSTER_HOME=str(dagster_home),
            **{DAGSTER_PG_URL: storage_url},
        )
        yield Stage(api=api, warehouse_url=warehouse_url, proxy=proxy, env=env, home=home)
    proxy.close()


class PartitionReader(threading.Thread):
    """Polls one partition and counts the snapshots that are neither complete load."""

    def __init__(self, url: str, day: date, complete_loads: list[frozenset]) -> None:
        super().__init__(name="partition-reader", daemon=True)
        self._url = url
        self._day = day
        self._complete = complete_loads
        self._halt = threading.Event()
        self.snapshots = 0
        self.half: list[int] = []

    def run(self) -> None:
        with psycopg.connect(self._url, autocommit=True) as connection:
            while not self._halt.is_set():
                rows = connection.execute(
                    "SELECT campaign_id, impressions, clicks, conversions FROM campaign_daily_metrics"
                    " WHERE account_id = %s AND metrics_date = %s",
                    (ACCOUNT, self._day),
                ).fetchall()
                self.snapshots += 1
                if frozenset(rows) not in self._complete:
                    self.half.append(len(rows))
                time.sleep(0.005)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def _metric_set(seed: int, day: date) -> frozenset:
    return frozenset(
        (r["id"], r["impressions"], r["clicks"], r["conversions"])
        for r in expected_campaigns(ACCOUNT, day, seed=seed, campaign_count=CAMPAIGNS)
    )


def _start_worker(stage: Stage, day: date, name: str) -> subprocess.Popen:
    # Its own process group: the kill takes the worker's children (Dagster's log tailers) with it.
    with (stage.home / f"worker-{day}-{name}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "campaign_pipeline.cli", "sync-partition", "--account", ACCOUNT,
             "--date", day.isoformat(), "--summary-file", str(stage.home / f"summary-{day}-{name}.json")],
            env=stage.env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )


def _reached(stage: Stage, point: CrashPoint, day: date) -> Callable[[], bool]:
    if point.kind in ("copy", "commit"):
        return stage.proxy.frozen.is_set
    query = {
        "paging": "SELECT pages_fetched FROM partition_progress WHERE phase = 'paging'"
                  " AND account_id = %s AND metrics_date = %s",
        "syncing": "SELECT count(*) FROM campaign_sync_progress WHERE account_id = %s AND metrics_date = %s",
    }[point.kind]

    def check() -> bool:
        with psycopg.connect(stage.warehouse_url, autocommit=True) as connection:
            row = connection.execute(query, (ACCOUNT, day)).fetchone()
        return row is not None and row[0] >= point.after

    return check


def _synced(log: list[dict[str, Any]]) -> list[str]:
    return [r["path"].split("/")[3] for r in log if r["endpoint"] == "sync" and r["status"] == 200]


def _checkpointed(url: str, day: date) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT campaign_id FROM campaign_sync_progress WHERE account_id = %s AND metrics_date = %s",
            (ACCOUNT, day),
        ).fetchall()
    return {campaign_id for (campaign_id,) in rows}


def crash_and_rerun(stage: Stage, point: CrashPoint, day: date, figures: Figures) -> None:
    """Kill the worker at ``point`` on ``day``, rerun it, and check every promise of the module docstring."""
    records = expected_campaigns(ACCOUNT, day, seed=EARLIER_SEED, campaign_count=CAMPAIGNS)
    with Warehouse(stage.warehouse_url) as warehouse:
        warehouse.replace_partition(
            ACCOUNT, day, campaigns_to_frame(records, account_id=ACCOUNT, day=day), run_id="earlier-load"
        )
    stage.api.reset()
    reader = PartitionReader(stage.warehouse_url, day, [_metric_set(EARLIER_SEED, day), _metric_set(SEED, day)])
    reader.start()
    worker = rerun = None
    try:
        if point.kind in ("copy", "commit"):
            stage.proxy.arm(point.kind)
        worker = _start_worker(stage, day, "crashed")
        reached = _reached(stage, point, day)
        deadline = time.monotonic() + POINT_TIMEOUT_SECONDS
        while not reached():
            assert worker.poll() is None, f"the worker ended before reaching {point} (exit {worker.returncode})"
            assert time.monotonic() < deadline, f"{point} not reached in {POINT_TIMEOUT_SECONDS} s"
            time.sleep(0.01)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        stage.proxy.disarm()
        assert worker.returncode == -signal.SIGKILL

        assert compare(stage.warehouse_url, ACCOUNT, day, seed=EARLIER_SEED, campaign_count=CAMPAIGNS).exact
        checkpointed = _checkpointed(stage.warehouse_url, day)
        crashed_log = stage.api.requests()
        synced_before_crash = set(_synced(crashed_log))
        assert checkpointed <= synced_before_crash
        if point.kind in ("copy", "commit"):
            assert len(checkpointed) == CAMPAIGNS

        rerun = _start_worker(stage, day, "rerun")
        assert rerun.wait(timeout=WORKER_TIMEOUT_SECONDS) == 0, (stage.home / f"worker-{day}-rerun.log").read_text()
    finally:
        stage.proxy.disarm()
        reader.stop()
        for process in (worker, rerun):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)

    rerun_synced = _synced(stage.api.requests()[len(crashed_log):])
    all_ids = {r["id"] for r in records}
    assert sorted(rerun_synced) == sorted(all_ids - checkpointed)
    comparison = compare(stage.warehouse_url, ACCOUNT, day, seed=SEED, campaign_count=CAMPAIGNS)
    assert comparison.exact, comparison
    assert reader.half == [] and reader.snapshots > 10

    figures.crashes_survived += 1
    figures.crash_points[point.kind] += 1
    figures.add_comparison(comparison)
    figures.reader_snapshots += reader.snapshots
    figures.half_partitions_seen += len(reader.half)
    figures.repeated_sync_requests += len(set(rerun_synced) & synced_before_crash)
    figures.checkpointed_syncs_repeated += len(set(rerun_synced) & checkpointed)


def test_killed_just_before_commit_the_partition_is_untouched_and_the_rerun_syncs_nothing(stage, figures):
    crash_and_rerun(stage, CrashPoint("commit"), FIRST_DAY, figures)


@pytest.mark.slow
def test_killed_while_syncing_the_rerun_resumes_exactly(stage, figures):
    crash_and_rerun(stage, CrashPoint("syncing", 200), FIRST_DAY + timedelta(days=1), figures)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("number", "point"), list(enumerate(seeded_points(CRASH_SEED, per_kind=3), 2)), ids=lambda value: str(value)
)
def test_killed_at_a_seeded_point_the_rerun_ends_exact(stage, figures, number, point):
    crash_and_rerun(stage, point, FIRST_DAY + timedelta(days=number), figures)
