"""What the Dagster benchmarks share: bench databases, a Dagster home on PostgreSQL, run timelines, memory.

Every benchmark works in databases it creates on an embedded server of its
own in ``.campaign_pipeline/bench-suite-pgdata`` (or on the server of
``--postgres-url``) and drops afterwards, and in a state directory under
``.campaign_pipeline/bench``. The embedded server is stopped at the end when
the benchmark started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg

from campaign_pipeline import database
from campaign_pipeline.environment import DAGSTER_PG_URL, prepare_dagster_home

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DATA_DIR = REPO_ROOT / ".campaign_pipeline" / "bench-suite-pgdata"
BENCH_STATE_DIR = REPO_ROOT / ".campaign_pipeline" / "bench"
# Dagster's run events keep their old "PIPELINE_*" values; the timeline names them "run_*".
RUN_MILESTONES = {
    f"PIPELINE_{name}": f"run_{name.lower()}"
    for name in ("ENQUEUED", "DEQUEUED", "STARTING", "START", "SUCCESS", "FAILURE", "CANCELED")
}


@dataclass(frozen=True)
class BenchDatabases:
    """Fresh warehouse and Dagster-storage databases (libpq URLs) on one server."""

    admin_url: str
    warehouse_url: str
    dagster_url: str


@contextlib.contextmanager
def bench_server(postgres_url: str | None = None) -> Iterator[str]:
    """Yield the admin URL of ``postgres_url``, or of the embedded bench server, stopped afterwards if started here."""
    if postgres_url:
        yield database.libpq_url(postgres_url)
        return
    was_running = database.is_embedded_server_running(BENCH_DATA_DIR)
    admin_url = database.start_embedded_server(BENCH_DATA_DIR)
    try:
        yield admin_url
    finally:
        if not was_running:
            database.stop_embedded_server(BENCH_DATA_DIR)


def max_connections(admin_url: str) -> int:
    """Return the server's ``max_connections``."""
    with psycopg.connect(admin_url) as connection:
        row = connection.execute("SHOW max_connections").fetchone()
    return int(row[0]) if row else 0


@contextlib.contextmanager
def bench_databases(purpose: str, admin_url: str) -> Iterator[BenchDatabases]:
    """Create a warehouse and a Dagster-storage database for ``purpose``; drop both afterwards."""
    suffix = uuid.uuid4().hex[:8]
    names = (f"bench_{purpose}_wh_{suffix}", f"bench_{purpose}_dagster_{suffix}")
    for name in names:
        database.ensure_database(admin_url, name)
    try:
        yield BenchDatabases(
            admin_url, database.with_database(admin_url, names[0]), database.with_database(admin_url, names[1])
        )
    finally:
        for name in names:
            database.drop_database(admin_url, name)


@contextlib.contextmanager
def state_dir(purpose: str) -> Iterator[Path]:
    """A fresh ``CAMPAIGN_PIPELINE_HOME`` for one benchmark, removed afterwards."""
    path = BENCH_STATE_DIR / f"{purpose}-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def dagster_env(home: Path, dagster_url: str) -> dict[str, str]:
    """Write the project's dagster.yaml under ``home``; return the variables that point Dagster at it."""
    return {
        "DAGSTER_HOME": str(prepare_dagster_home(home)),
        DAGSTER_PG_URL: database.sqlalchemy_psycopg2_url(dagster_url),
    }


def run_timeline(instance: Any, run_id: str) -> dict[str, Any]:
    """Return the Unix times of a run's milestones from its record and event log.

    Keys: ``created``, ``started``, ``ended`` (run record), ``run_enqueued``,
    ``run_dequeued``, ``run_starting``, ``run_start`` and ``run_success`` or
    ``run_failure`` (those that happened), ``first_step_start``, ``steps``
    (step key -> start and end) and ``materialized`` (asset -> time).
    """
    record = instance.get_run_record_by_id(run_id)
    timeline: dict[str, Any] = {
        "status": record.dagster_run.status.value,
        "created": record.create_timestamp.timestamp(),
        "started": record.start_time,
        "ended": record.end_time,
        "steps": {},
        "materialized": {},
    }
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        if kind in RUN_MILESTONES:
            timeline.setdefault(RUN_MILESTONES[kind], entry.timestamp)
        elif kind == "STEP_START":
            timeline["steps"].setdefault(event.step_key, {})["start"] = entry.timestamp
            timeline.setdefault("first_step_start", entry.timestamp)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            timeline["steps"].setdefault(event.step_key, {})["end"] = entry.timestamp
        elif kind == "ASSET_MATERIALIZATION":
            timeline["materialized"][event.asset_key.to_user_string()] = entry.timestamp
    return timeline


def run_child(module_args: list[str], spec: Mapping[str, Any], *, env: Mapping[str, str], timeout: float) -> dict:
    """Run ``python -m <module_args>`` with ``spec`` as a JSON file; return the JSON it writes back.

    The child's output goes to a log file beside the spec; on failure its tail
    is in the exception.
    """
    work = BENCH_STATE_DIR / "children"
    work.mkdir(parents=True, exist_ok=True)
    stem = work / uuid.uuid4().hex[:8]
    spec_path, result_path, log_path = stem.with_suffix(".spec.json"), stem.with_suffix(".json"), stem.with_suffix(".log")
    spec_path.write_text(json.dumps({**spec, "result_path": str(result_path)}))
    try:
        with log_path.open("wb") as log:
            completed = subprocess.run(
                [sys.executable, "-m", *module_args, str(spec_path)],
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                cwd=REPO_ROOT,
                check=False,
            )
        if completed.returncode != 0 or not result_path.exists():
            tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
            raise RuntimeError(f"benchmark child {module_args} exited {completed.returncode}:\n" + "\n".join(tail))
        return json.loads(result_path.read_text())
    finally:
        for path in (spec_path, result_path, log_path):
            path.unlink(missing_ok=True)


@dataclass
class RssSampler:
    """Samples the resident memory of the processes ``select`` returns, in a background thread.

    With ``connections_url``, it also samples how many client connections the
    PostgreSQL server of that URL holds.

    Attributes:
        select: Returns the processes to measure now.
        interval_seconds: Time between samples.
        connections_url: libpq URL of the server whose connections are counted.
        peak_by_pid: Highest resident set seen per process, in bytes.
        command_by_pid: Command line of each process measured.
        peak_total: Highest sum over the processes alive at one sample, in bytes.
        peak_connections: Most client connections seen at one sample.
    """

    select: Callable[[], list[psutil.Process]]
    interval_seconds: float = 0.25
    connections_url: str | None = None
    peak_by_pid: dict[int, int] = field(default_factory=dict)
    command_by_pid: dict[int, str] = field(default_factory=dict)
    peak_total: int = 0
    peak_connections: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def sample(self) -> None:
        """Take one sample now."""
        total = 0
        for process in self.select():
            try:
                rss = process.memory_info().rss
                if process.pid not in self.command_by_pid:
                    self.command_by_pid[process.pid] = " ".join(process.cmdline())
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            self.peak_by_pid[process.pid] = max(self.peak_by_pid.get(process.pid, 0), rss)
            total += rss
        self.peak_total = max(self.peak_total, total)

    def _run(self) -> None:
        connection = psycopg.connect(self.connections_url, autocommit=True) if self.connections_url else None
        try:
            while not self._stop.is_set():
                self.sample()
                if connection is not None:
                    row = connection.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                    ).fetchone()
                    self.peak_connections = max(self.peak_connections, row[0] if row else 0)
                self._stop.wait(self.interval_seconds)
        finally:
            if connection is not None:
                connection.close()


def stop_processes(processes: list[psutil.Process], timeout_seconds: float = 10.0) -> None:
    """SIGTERM ``processes``, then SIGKILL those still alive after ``timeout_seconds``."""
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=timeout_seconds)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=timeout_seconds)


def descendants(pid: int) -> list[psutil.Process]:
    """Every living descendant of process ``pid`` (none when it is gone)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def elapsed(start: float | None, end: float | None) -> float | None:
    """Return ``end - start`` rounded to milliseconds, or None when either is unknown."""
    if start is None or end is None:
        return None
    return round(end - start, 3)


def wait_until(condition: Callable[[], bool], *, timeout_seconds: float, interval_seconds: float = 0.5) -> None:
    """Poll ``condition`` until it holds; raise ``TimeoutError`` after ``timeout_seconds``."""
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout_seconds:.0f} s")
        time.sleep(interval_seconds)
