"""The fork-server run launcher, with the project's dagster.yaml on PostgreSQL and real runs.

Runs are created for a small test job and launched by the launcher the
instance loads from the shipped dagster.yaml; each test checks what an
operator relies on: the run executes in a process forked from the fork
server, the UI's Terminate stops it, a killed run process is reported
failed to run monitoring.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import psutil
import pytest
from dagster._core.launcher import LaunchRunContext, WorkerStatus

from campaign_pipeline import database, environment
from campaign_pipeline.run_launcher import PID_TAG, PROCESS_START_TAG, ForkServerRunLauncher
from campaign_pipeline_tests import launcher_jobs

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def instance(make_database: Callable[[str], str], tmp_path: Path, monkeypatch) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv(environment.DAGSTER_PG_URL, database.sqlalchemy_psycopg2_url(make_database("launcher")))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def _create_run(instance: dg.DagsterInstance, report_path: Path, wait_seconds: float = 0.0) -> dg.DagsterRun:
    recon_job = dg.reconstructable(launcher_jobs.report_process_job)
    return instance.create_run_for_job(
        launcher_jobs.report_process_job,
        run_config={"ops": {"report_process": {"config": {"report_path": str(report_path), "wait_seconds": wait_seconds}}}},
        job_code_origin=recon_job.get_python_origin(),
    )


def _launch(instance: dg.DagsterInstance, report_path: Path, wait_seconds: float = 0.0) -> dg.DagsterRun:
    run = _create_run(instance, report_path, wait_seconds)
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return run


def _wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _exited(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _ended(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun | None:
    run = instance.get_run_by_id(run_id)
    return run if run is not None and run.is_finished else None


def test_the_shipped_dagster_yaml_uses_the_fork_server_launcher(instance: dg.DagsterInstance):
    assert isinstance(instance.run_launcher, ForkServerRunLauncher)
    assert instance.run_launcher.supports_check_run_worker_health


def test_a_run_executes_in_a_process_forked_from_the_fork_server(instance: dg.DagsterInstance, tmp_path: Path):
    report = tmp_path / "report.txt"
    run = _launch(instance, report)

    ended = _wait_for(lambda: _ended(instance, run.run_id), "the run to end")

    assert ended.status == dg.DagsterRunStatus.SUCCESS
    pid, parent_pid = (int(value) for value in report.read_text().split())
    assert ended.tags[PID_TAG] == str(pid)
    assert re.fullmatch(r"[0-9a-f-]{36}/\d+", ended.tags[PROCESS_START_TAG])
    assert pid != os.getpid()
    assert "multiprocessing.forkserver" in " ".join(psutil.Process(parent_pid).cmdline())
    assert psutil.Process(parent_pid).ppid() == os.getpid()
    _wait_for(lambda: _exited(pid), "the run process to exit")
    assert instance.run_launcher.check_run_worker_health(ended).status == WorkerStatus.SUCCESS


def test_terminate_cancels_a_running_run_and_a_second_terminate_is_refused(
    instance: dg.DagsterInstance, tmp_path: Path
):
    report = tmp_path / "report.txt"
    run = _launch(instance, report, wait_seconds=120)
    _wait_for(report.exists, "the op to start")
    assert instance.run_launcher.check_run_worker_health(instance.get_run_by_id(run.run_id)).status == WorkerStatus.RUNNING

    started = time.monotonic()
    assert instance.run_launcher.terminate(run.run_id) is True
    ended = _wait_for(lambda: _ended(instance, run.run_id), "the run to stop", timeout=30)

    assert ended.status == dg.DagsterRunStatus.CANCELED
    assert time.monotonic() - started < 30
    assert instance.run_launcher.terminate(run.run_id) is False


def test_a_killed_run_process_is_reported_failed_by_any_launcher_on_the_machine(
    instance: dg.DagsterInstance, tmp_path: Path
):
    report = tmp_path / "report.txt"
    run = _launch(instance, report, wait_seconds=120)
    _wait_for(report.exists, "the op to start")
    pid = int(report.read_text().split()[0])
    # Another process's launcher (the daemon's run monitoring) knows the run only by its tag.
    other = ForkServerRunLauncher()
    running = instance.get_run_by_id(run.run_id)
    assert other.check_run_worker_health(running).status == WorkerStatus.RUNNING

    os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: other.check_run_worker_health(running).status != WorkerStatus.RUNNING, "the process to be gone")

    health = other.check_run_worker_health(running)
    assert health.status == WorkerStatus.FAILED
    assert f"pid {pid}" in (health.msg or "")
    assert instance.run_launcher.check_run_worker_health(running).status == WorkerStatus.FAILED


def test_a_process_that_got_the_run_process_id_later_is_neither_the_run_nor_terminated(
    instance: dg.DagsterInstance, tmp_path: Path
):
    run = _create_run(instance, tmp_path / "report.txt")
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        # The run's process ended long ago, and the kernel gave its id to another process since.
        instance.add_run_tags(run.run_id, {PID_TAG: str(stranger.pid), PROCESS_START_TAG: "an-earlier-boot/12345"})
        tagged = instance.get_run_by_id(run.run_id)

        health = instance.run_launcher.check_run_worker_health(tagged)
        terminated = instance.run_launcher.terminate(run.run_id)

        assert (health.status, health.msg) == (WorkerStatus.FAILED, f"The run's process (pid {stranger.pid}) is gone.")
        assert terminated is False
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
