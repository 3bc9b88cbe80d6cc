"""One account versus sixteen synced at once through the Dagster daemon's run queue.

Run ``python -m bench.bench_queue [--time-scale 1] [--accounts 16]``. The
real processes of ``campaign-pipeline dev`` run (a gRPC code server,
``dagster-daemon`` and ``dagster-webserver``, sharing only PostgreSQL, with
the project's dagster.yaml: QueuedRunCoordinator, ``max_concurrent_runs: 16``,
one run per account at a time, launches from 16 threads, each run forked
from the project's fork server: campaign_pipeline/run_launcher.py) against a simulator
with generated accounts ``acct-0001``.., each with its own window of 60
requests. Runs are submitted as the UI submits them: through the webserver's
GraphQL API (``DagsterGraphQLClient.submit_job_execution``, one run per
account-day with its partition's tags), which puts them on the queue; the
daemon launches each as its own process. First one account-day, then N
account-days of N other accounts at once; the wall time of each runs from the
submission to the last run's end, and the figure is their ratio. A last phase
repeats the N accounts with Dagster's default run launcher (the code server
spawns a fresh interpreter per run), to show what the fork server buys.

While runs execute, the resident memory of every process under the code
server (the run workers) is sampled four times a second.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import psutil
import yaml
from dagster_graphql import DagsterGraphQLClient

from bench.bench_dagster import RATE_LIMIT, SYNC_LATENCY_SECONDS, WINDOW_SECONDS, bench_day
from bench.harness import (
    BenchDatabases,
    RssSampler,
    bench_databases,
    bench_server,
    descendants,
    elapsed,
    max_connections,
    run_timeline,
    state_dir,
    stop_processes,
    wait_until,
)
from campaign_pipeline import environment
from campaign_pipeline import settings as setting_names
from campaign_pipeline.settings import patched_environ
from campaign_pipeline.definitions import CAMPAIGN_SYNC_JOB
from campaign_pipeline.partitions import ACCOUNT_DIMENSION, AccountDay, build_campaign_partitions
from mock_api.accounts import demo_credentials
from mock_api.testing import MockApiServer

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
LOCATION_NAME = "campaign_pipeline"
# The repository that a Definitions object forms.
REPOSITORY_NAME = "__repository__"
PHASE_TAG = "campaign_pipeline/bench_phase"
# `dagster code-server start` serves from a `dagster api grpc` child. The project's run launcher
# forks each run worker from a fork server under the daemon; Dagster's default launcher has the
# gRPC server spawn them (multiprocessing's spawn method).
GRPC_SERVER_MARK = "dagster api grpc"
FORK_SERVER_MARK = "multiprocessing.forkserver"
SPAWNED_WORKER_MARK = "multiprocessing.spawn"
# A schedule that never ticks while the benchmark runs (1 January, 00:00 UTC).
QUIET_CRON = "0 0 1 1 *"


@dataclass(frozen=True)
class QueueSetup:
    """What a phase needs: the prepared environment, the simulator and the Dagster instance."""

    prepared: environment.PreparedEnvironment
    server: MockApiServer
    instance: dg.DagsterInstance
    code_server_pid: int
    daemon_pid: int
    admin_url: str
    ui_port: int


def run_workers(setup: QueueSetup) -> list[psutil.Process]:
    """The run workers: children of the daemon's fork server, or spawned by the code server."""
    processes = descendants(setup.daemon_pid) + descendants(setup.code_server_pid)
    fork_servers = {
        process.pid for process in processes
        if FORK_SERVER_MARK in _command(process) and _parent_pid(process) == setup.daemon_pid
    }
    return [
        process for process in processes
        if _parent_pid(process) in fork_servers or SPAWNED_WORKER_MARK in _command(process)
    ]


def _command(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


def _parent_pid(process: psutil.Process) -> int | None:
    try:
        return process.ppid()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _is_grpc_server(process: psutil.Process) -> bool:
    return GRPC_SERVER_MARK in _command(process)


def generated_accounts(count: int, first: int = 1) -> list[str]:
    """Ids of the simulator's generated accounts ``acct-0001``.. from number ``first``."""
    return [f"acct-{number:04d}" for number in range(first, first + count)]


def write_registry(path: Path, account_ids: list[str]) -> Path:
    """Write an account registry listing ``account_ids``; return its path."""
    path.write_text("".join(f'[[accounts]]\nid = "{account_id}"\nname = "{account_id}"\n\n' for account_id in account_ids))
    return path


def free_port() -> int:
    """Return a TCP port that was free on localhost a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pipeline_env(
    home: Path, databases: BenchDatabases, server: MockApiServer, account_ids: list[str], *, time_scale: float, day: date
) -> dict[str, str]:
    """The settings of ``campaign-pipeline dev`` for the benchmark: its simulator, databases and window."""
    return {
        setting_names.HOME: str(home),
        setting_names.API_URL: server.url,
        setting_names.CREDENTIALS: json.dumps(demo_credentials(account_ids)),
        setting_names.ACCOUNTS_FILE: str(write_registry(home / "accounts.toml", account_ids)),
        setting_names.WAREHOUSE_URL: databases.warehouse_url,
        setting_names.DAGSTER_STORAGE_URL: databases.dagster_url,
        setting_names.RATE_LIMIT: str(RATE_LIMIT),
        setting_names.RATE_WINDOW_SECONDS: str(WINDOW_SECONDS * time_scale),
        setting_names.SYNC_WORKERS: str(RATE_LIMIT),
        setting_names.PARTITION_START_DATE: (day - timedelta(days=7)).isoformat(),
        setting_names.SCHEDULE_CRON: QUIET_CRON,
    }


def submit_runs(setup: QueueSetup, account_ids: list[str], day: date, phase_id: str) -> None:
    """Submit one run of the sync job per account-day through the webserver, as the UI does."""
    partitions = build_campaign_partitions(day - timedelta(days=7))
    client = DagsterGraphQLClient("127.0.0.1", port_number=setup.ui_port)
    for account_id in account_ids:
        tags = {**partitions.get_tags_for_partition_key(str(AccountDay(account_id, day))), PHASE_TAG: phase_id}
        client.submit_job_execution(
            CAMPAIGN_SYNC_JOB, repository_location_name=LOCATION_NAME, repository_name=REPOSITORY_NAME, tags=tags
        )


def submit_and_wait(
    setup: QueueSetup, account_ids: list[str], day: date, *, phase_id: str, timeout_seconds: float
) -> dict[str, Any]:
    """Submit one run per account-day; wait for every run to end; return the phase's figures."""
    keys = [str(AccountDay(account_id, day)) for account_id in account_ids]
    sampler = RssSampler(lambda: run_workers(setup), connections_url=setup.admin_url)
    with sampler:
        submitted = time.time()
        submit_runs(setup, account_ids, day, phase_id)
        launched = time.time()
        runs_filter = dg.RunsFilter(tags={PHASE_TAG: phase_id})

        def all_ended() -> bool:
            runs = setup.instance.get_runs(filters=runs_filter)
            return len(runs) == len(keys) and all(run.status.value in TERMINAL for run in runs)

        wait_until(all_ended, timeout_seconds=timeout_seconds)
    runs = setup.instance.get_runs(filters=runs_filter)
    timelines = [run_timeline(setup.instance, run.run_id) for run in runs]
    records = _requests_of(setup.server, account_ids)
    first_requests = _first_requests(records)
    per_run = [_run_figures(run, timeline, first_requests, submitted) for run, timeline in zip(runs, timelines)]
    ended = max(timeline["ended"] or 0.0 for timeline in timelines)
    worker_peaks = sorted(sampler.peak_by_pid.values())
    return {
        "accounts": len(account_ids),
        "succeeded": sum(1 for timeline in timelines if timeline["status"] == "SUCCESS"),
        "wall_seconds": elapsed(submitted, ended),
        "submit_seconds": elapsed(submitted, launched),
        "runs": per_run,
        "median": {
            key: round(statistics.median(row[key] for row in per_run if row[key] is not None), 3)
            for key in per_run[0]
            if key != "account_id" and any(row[key] is not None for row in per_run)
        },
        "worker_processes": len(worker_peaks),
        "peak_rss_per_worker_bytes": worker_peaks[-1] if worker_peaks else None,
        "median_peak_rss_per_worker_bytes": int(statistics.median(worker_peaks)) if worker_peaks else None,
        "peak_rss_all_workers_bytes": sampler.peak_total,
        "peak_postgres_connections": sampler.peak_connections,
        "requests": len(records),
        "rate_limited": sum(1 for record in records if record["status"] == 429),
    }


def _requests_of(server: MockApiServer, account_ids: list[str]) -> list[dict[str, Any]]:
    wanted = set(account_ids)
    return [record for record in server.requests() if record.get("account") in wanted]


def _first_requests(records: list[dict[str, Any]]) -> dict[str, float]:
    first: dict[str, float] = {}
    for record in records:
        first.setdefault(record["account"], record["arrived_at"])
    return first


def _run_figures(run: Any, timeline: dict[str, Any], first_requests: dict[str, float], submitted: float) -> dict:
    account_id = run.tags.get(f"dagster/partition/{ACCOUNT_DIMENSION}", "")
    load = timeline["materialized"].get("campaign_daily_metrics")
    first_request = first_requests.get(account_id)
    return {
        "account_id": account_id,
        "submitted_to_created": elapsed(submitted, timeline["created"]),
        "queued": elapsed(timeline["created"], timeline.get("run_starting")),
        "starting_to_run_start": elapsed(timeline.get("run_starting"), timeline.get("run_start")),
        "run_start_to_first_step": elapsed(timeline.get("run_start"), timeline.get("first_step_start")),
        "first_step_to_first_request": elapsed(timeline.get("first_step_start"), first_request),
        "asset_wall": elapsed(first_request, load),
        "load_to_run_end": elapsed(load, timeline["ended"]),
        "submitted_to_run_end": elapsed(submitted, timeline["ended"]),
    }


def _services_memory(setup: QueueSetup) -> dict[str, int]:
    """Resident memory of the long-running services; the code server counts its gRPC child."""
    memory = {}
    for child in setup.prepared.children:
        name = "dagster code-server" if "code-server" in child.args else Path(child.args[0]).name
        processes = [psutil.Process(child.pid)] if psutil.pid_exists(child.pid) else []
        if name == "dagster code-server":
            processes += [process for process in descendants(child.pid) if _is_grpc_server(process)]
        with contextlib.suppress(psutil.NoSuchProcess):
            memory[name] = sum(process.memory_info().rss for process in processes)
    return memory


def default_launcher(dagster_home: Path) -> str:
    """Rewrite ``dagster_home``'s dagster.yaml to use Dagster's default run launcher; return the change."""
    path = dagster_home / "dagster.yaml"
    config = yaml.safe_load(path.read_text())
    config.pop("run_launcher", None)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return "run_launcher removed: DefaultRunLauncher (the code server spawns each run)"


def start_services(prepared: environment.PreparedEnvironment, server: MockApiServer, admin_url: str) -> QueueSetup:
    """Start the code server, daemon and webserver; return what the phases need."""
    ui_port = free_port()
    environment.start_dagster_services(prepared, ui_port=ui_port, code_port=free_port())
    code_server, daemon = prepared.children[0], prepared.children[1]
    return QueueSetup(prepared, server, dg.DagsterInstance.get(), code_server.pid, daemon.pid, admin_url, ui_port)


def stop_services(prepared: environment.PreparedEnvironment) -> None:
    """Stop the code server, daemon and webserver, and every process they started (run workers included).

    The code server's gRPC process outlives ``dagster code-server start`` while
    runs execute, and run workers outlive both: they are stopped by process id.
    """
    spawned = [process for child in prepared.children for process in descendants(child.pid)]
    prepared.close()
    stop_processes(spawned)
    prepared.children.clear()


def run(
    *,
    accounts: int = 16,
    time_scale: float = 1.0,
    seed: int = 0,
    postgres_url: str | None = None,
    default_launcher_variant: bool = True,
) -> dict[str, Any]:
    """Benchmark 2: one account-day alone, then ``accounts`` account-days at once; return the figures.

    Args:
        accounts: Accounts synced at once in the second phase.
        time_scale: Factor on the window and the sync latency (1.0: 60 requests per 60 s, 2 s syncs).
        seed: Simulator seed.
        postgres_url: Admin URL of a PostgreSQL server; the embedded bench server when None.
        default_launcher_variant: Run the many-account phase again (other accounts) with the daemon
            launched by Dagster's default run launcher instead of the project's fork server.
    """
    day = bench_day()
    single, many = generated_accounts(1), generated_accounts(accounts, first=2)
    again = generated_accounts(accounts, first=accounts + 2) if default_launcher_variant else []
    everyone = [*single, *many, *again]
    phase_timeout = 20 * WINDOW_SECONDS * time_scale + 600
    figures: dict[str, Any] = {}
    with (
        bench_server(postgres_url) as admin_url,
        bench_databases("queue", admin_url) as databases,
        state_dir("queue") as home,
        MockApiServer(
            profile="fast",
            seed=seed,
            account_count=len(everyone),
            rate_limit=RATE_LIMIT,
            rate_window_seconds=WINDOW_SECONDS * time_scale,
            sync_latency_seconds=SYNC_LATENCY_SECONDS * time_scale,
            log_path=home / "simulator.log",
        ) as server,
    ):
        server_max_connections = max_connections(admin_url)
        env = pipeline_env(home, databases, server, everyone, time_scale=time_scale, day=day)
        prepared = environment.prepare({**_inherited_env(), **env})
        dagster_vars = {key: prepared.env[key] for key in ("DAGSTER_HOME", environment.DAGSTER_PG_URL)}
        try:
            with patched_environ(dagster_vars):
                setup = start_services(prepared, server, admin_url)
                setup.instance.add_dynamic_partitions(ACCOUNT_DIMENSION, everyone)
                figures["one_account"] = submit_and_wait(
                    setup, single, day, phase_id="one_account", timeout_seconds=phase_timeout
                )
                figures["many_accounts"] = submit_and_wait(
                    setup, many, day, phase_id="many_accounts", timeout_seconds=phase_timeout
                )
                figures["services_rss_bytes"] = _services_memory(setup)
                if again:
                    stop_services(prepared)
                    change = default_launcher(Path(prepared.env["DAGSTER_HOME"]))
                    setup = start_services(prepared, server, admin_url)
                    variant = submit_and_wait(
                        setup, again, day, phase_id="many_accounts_default_launcher", timeout_seconds=phase_timeout
                    )
                    figures["many_accounts_default_launcher"] = {**variant, "instance_change": change}
            figures["rate_limited"] = server.counters()["rate_limited"]
        finally:
            stop_services(prepared)
    return {
        "configuration": {
            "rate_limit": RATE_LIMIT,
            "rate_window_seconds": WINDOW_SECONDS * time_scale,
            "sync_latency_seconds": SYNC_LATENCY_SECONDS * time_scale,
            "sync_workers": RATE_LIMIT,
            "time_scale": time_scale,
        },
        **figures,
        "postgres_max_connections": server_max_connections,
        "wall_ratio": _ratio(figures, "many_accounts"),
        "wall_ratio_default_launcher": _ratio(figures, "many_accounts_default_launcher"),
    }


def _ratio(figures: dict[str, Any], phase: str) -> float | None:
    if phase not in figures or not figures["one_account"]["wall_seconds"]:
        return None
    return round(figures[phase]["wall_seconds"] / figures["one_account"]["wall_seconds"], 3)


def _inherited_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith(setting_names.PREFIX)}


def main() -> None:
    """Parse options, run benchmark 2, print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_queue", description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=16, help="accounts synced at once")
    parser.add_argument("--time-scale", type=float, default=1.0, help="factor on the window and sync latency")
    parser.add_argument("--postgres-url", help="admin URL of a PostgreSQL server (default: embedded)")
    parser.add_argument("--no-default-launcher-variant", action="store_true", help="skip the default-launcher phase")
    args = parser.parse_args()
    figures = run(
        accounts=args.accounts,
        time_scale=args.time_scale,
        postgres_url=args.postgres_url,
        default_launcher_variant=not args.no_default_launcher_variant,
    )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
