"""A run launcher that starts each run in a process forked from a warm fork server.

Dagster's default launcher asks the code server to start every run in a fresh
interpreter (multiprocessing's spawn method), which then imports Dagster, its
PostgreSQL storage, pandas and pyarrow before the first step: about 2.5 s of
CPU per run. When the daily schedule queues a run per account, sixteen runs
starting at once on two cores wait about 20 s for each other, while every
account's rate-limit window sits idle.

:class:`ForkServerRunLauncher` runs ``dagster api execute_run`` (the command
Dagster's Docker and Kubernetes launchers run) in a process forked from a
fork server that imported those libraries once (multiprocessing's
``forkserver`` method, as Dagster's multiprocess executor offers for steps).
The project's own code is not preloaded: each run imports it afresh, so a
reloaded code location takes effect at the next run without restarting the
daemon. Each run gets the launching process's environment of the moment it
is launched. A run's process id and start time are stored in run tags, so that
terminating a run (from the UI or the daemon) and run monitoring work from any
process on the machine: a run whose process died is reported failed, and
``run_retries`` retries it; a process that got the same id later (after a
daemon restart, say) is neither taken for the run nor sent its SIGTERM.

It launches runs on the machine of the process that launches them (the
daemon) with that process's environment, like the default launcher does with
the code server's. Deployments that run code elsewhere (Docker, Kubernetes)
use those launchers instead: see the README.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import dagster._check as check
from dagster._config import Field
from dagster._core.events import EngineEventData
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import ConfigurableClass, ConfigurableClassData

# The run tag holding the run process's id on this machine.
PID_TAG = "campaign_pipeline/run_pid"
# The run tag telling that process apart from a later one given the same id: "<boot id>/<start time>".
PROCESS_START_TAG = "campaign_pipeline/run_process_start"
# Indexes in :func:`_proc_stat`'s fields (stat(5)'s field numbers minus 3): state, start time.
STAT_STATE, STAT_START_TIME = 0, 19
# Imported once by the fork server: what every run needs and takes long to import.
DEFAULT_PRELOAD_MODULES: tuple[str, ...] = (
    "dagster",
    "dagster._cli.api",
    "dagster._core.execution.api",
    "dagster._core.storage.event_log.sql_event_log",
    "dagster_postgres",
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "psycopg",
    "psycopg_pool",
    "requests",
    "tenacity",
)


class ForkServerRunLauncher(RunLauncher, ConfigurableClass):
    """Launch each run in a process forked from a fork server with Dagster and libraries preloaded.

    Args:
        preload_modules: Modules the fork server imports once; a module that
            fails to import is skipped (the run imports it itself).
        inst_data: Dagster's record of the configuration.
    """

    def __init__(
        self,
        preload_modules: Sequence[str] = DEFAULT_PRELOAD_MODULES,
        inst_data: ConfigurableClassData | None = None,
    ) -> None:
        self._inst_data = inst_data
        self._preload_modules = list(preload_modules)
        self._context: Any = None
        self._context_lock = threading.Lock()
        self._processes: dict[str, multiprocessing.process.BaseProcess] = {}
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {
            "preload_modules": Field(
                [str],
                is_required=False,
                default_value=list(DEFAULT_PRELOAD_MODULES),
                description="Modules the fork server imports once, before forking run processes.",
            )
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> ForkServerRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    def launch_run(self, context: LaunchRunContext) -> None:
        """Fork the run's process from the fork server and record its process id."""
        from dagster._grpc.types import ExecuteRunArgs  # deferred: every instance load imports this module

        run = context.dagster_run
        job_origin = check.not_none(run.job_code_origin, f"Run {run.run_id} has no code origin to execute.")
        args = ExecuteRunArgs(
            job_origin=job_origin,
            run_id=run.run_id,
            instance_ref=self._instance.get_ref(),
            set_exit_code_on_failure=True,
        )
        process = self._fork_context().Process(
            target=execute_run_in_forked_process,
            args=(list(args.get_command_args()), dict(os.environ)),
            name=f"dagster-run-{run.run_id}",
        )
        process.start()
        # Forget processes that ended, so that a long-lived daemon does not keep one per run ever launched.
        for run_id, ended in list(self._processes.items()):
            if ended.exitcode is not None:
                self._processes.pop(run_id, None)
        self._processes[run.run_id] = process
        tags = {PID_TAG: str(process.pid)}
        started = _process_start(process.pid)
        if started is not None:
            tags[PROCESS_START_TAG] = started
        self._instance.add_run_tags(run.run_id, tags)
        self._instance.report_engine_event(
            f"Forked the run's process (pid {process.pid}) from the fork server.",
            run,
            EngineEventData.in_process(process.pid),
            cls=self.__class__,
        )

    def terminate(self, run_id: str) -> bool:
        """Ask the run's process to stop (SIGTERM, which Dagster's run worker treats as an interrupt)."""
        if not self.has_instance:
            return False
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        pid = _run_pid(run)
        if pid is None or not _is_run_process_alive(run, pid):
            return False
        self._instance.report_run_canceling(run)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        """Report whether the run's process is alive; a dead one with an unfinished run is a failure."""
        process = self._processes.get(run.run_id)
        if process is not None and process.exitcode is not None:
            self._processes.pop(run.run_id, None)
            status = WorkerStatus.SUCCESS if process.exitcode == 0 else WorkerStatus.FAILED
            return CheckRunHealthResult(status, f"The run's process (pid {process.pid}) exited with {process.exitcode}.")
        pid = _run_pid(run)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.NOT_FOUND, "The run has no process id tag.")
        if _is_run_process_alive(run, pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        return CheckRunHealthResult(WorkerStatus.FAILED, f"The run's process (pid {pid}) is gone.")

    def dispose(self) -> None:
        """Forget the processes (they run on); the fork server stops with this process."""
        self._processes.clear()

    def _fork_context(self) -> Any:
        with self._context_lock:
            if self._context is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(self._preload_modules)
                self._context = context
            return self._context


def execute_run_in_forked_process(command_args: list[str], environ: dict[str, str]) -> None:
    """Run ``dagster api execute_run <args>`` in this (forked) process with ``environ``; exit with its code.

    The fork server's environment is the launching process's environment when
    the server started; the run gets the environment of the moment it is
    launched, as a freshly started process would.
    """
    from dagster._cli.api import api_cli

    os.environ.clear()
    os.environ.update(environ)
    entry_point, arguments = command_args[: command_args.index("api") + 1], command_args[command_args.index("api") + 1:]
    api_cli.main(args=arguments, prog_name=" ".join(entry_point))


def _run_pid(run: DagsterRun) -> int | None:
    value = run.tags.get(PID_TAG)
    return int(value) if value and value.isdigit() else None


def _is_run_process_alive(run: DagsterRun, pid: int) -> bool:
    """Whether the run's own process is alive: not merely some process that got its id after it ended."""
    if not _is_alive(pid):
        return False
    recorded = run.tags.get(PROCESS_START_TAG)
    return recorded is None or _process_start(pid) == recorded


def _process_start(pid: int) -> str | None:
    """``<boot id>/<start time in clock ticks>`` of process ``pid``: unique on this machine, or ``None``
    where ``/proc`` does not tell (not Linux, or the process is gone)."""
    fields = _proc_stat(pid)
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot_id:
            boot = boot_id.read().strip()
    except OSError:
        return None
    return None if fields is None else f"{boot}/{fields[STAT_START_TIME]}"


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (in parentheses, may hold spaces), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _is_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine and is not a zombie (an exited, unreaped process)."""
    if os.path.isdir("/proc/self"):
        fields = _proc_stat(pid)
        return fields is not None and fields[STAT_STATE] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
