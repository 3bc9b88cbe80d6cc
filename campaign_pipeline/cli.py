"""The ``campaign-pipeline`` command.

``run`` syncs one day for every enabled account through Dagster (the README's
main command); ``dev`` starts the Dagster UI and daemon; ``db`` manages the
embedded PostgreSQL server. Errors of setup end in one sentence and exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from campaign_pipeline.settings import PARTITION_START_DATE, Settings, SettingsError, redact_url

EXIT_FAILED = 1
EXIT_SETUP = 2
EXIT_INTERRUPTED = 130
POLL_SECONDS = 1.0
# Accounts named in an error about an unknown one.
ACCOUNTS_SHOWN = 5
# How long interrupted account syncs get to stop on their own before they are killed.
STOP_GRACE_SECONDS = 20.0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except _setup_errors() as exc:
        print(f"campaign-pipeline: {exc}", file=sys.stderr)
        return EXIT_SETUP
    except _launch_errors() as exc:
        print(f"campaign-pipeline: {exc}", file=sys.stderr)
        return EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="campaign-pipeline",
        description="Sync ad-platform campaign performance into PostgreSQL with Dagster. "
        "Settings come from CAMPAIGN_PIPELINE_* environment variables (see README).",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="sync one day for every enabled account and print a summary",
        description="Materialize one day's partitions (default: yesterday, UTC) for the enabled accounts "
        "of the registry through Dagster, with live progress and a summary per account. With no "
        "CAMPAIGN_PIPELINE_API_URL, a local simulator with demo accounts is started; with no database "
        "URL, the embedded PostgreSQL server. Exits 0 when every account succeeded, 1 otherwise.",
    )
    run.add_argument(
        "--date",
        type=_iso_date,
        help="day to sync, YYYY-MM-DD, from the partitions' start date to yesterday (default: yesterday, UTC)",
    )
    run.add_argument("--account", action="append", dest="accounts", metavar="ID", help="only this account (repeatable)")
    run.add_argument("--parallel", type=_positive_int, default=8, help="accounts synced at once (default: 8)")
    run.set_defaults(handler=_run)

    partition = commands.add_parser(
        "sync-partition",
        help="sync one account-day in this process (used by run)",
        description="Materialize one account-day partition in this process and write a JSON summary.",
    )
    partition.add_argument("--account", required=True, metavar="ID")
    partition.add_argument("--date", required=True, type=_iso_date)
    partition.add_argument("--summary-file", required=True, type=Path)
    partition.set_defaults(handler=_sync_partition)

    dev = commands.add_parser(
        "dev",
        help="start the Dagster UI, daemon and code server (and the simulator) until Ctrl-C",
        description="Start a gRPC code server, dagster-daemon and dagster-webserver as separate processes on "
        "the PostgreSQL storage, with the local simulator when no API URL is set. Stop with Ctrl-C or SIGTERM. "
        "Logs go to $CAMPAIGN_PIPELINE_HOME/logs.",
    )
    dev.add_argument("--port", type=_port, default=3000, help="webserver port (default: 3000)")
    dev.add_argument(
        "--code-server-port", type=_port, default=4266, help="gRPC code server port (default: 4266)"
    )
    dev.set_defaults(handler=_dev)

    backfill = commands.add_parser(
        "backfill",
        help="launch a Dagster backfill of the failed account-days",
        description="Find the account-days whose latest attempt failed (either asset FAILED) and launch one "
        "backfill of campaign_sync_job over exactly those (several of about 4,000 each past that); the daemon "
        "runs it and the UI shows it.",
    )
    backfill.add_argument("--failed", action="store_true", required=True, help="select the failed partitions")
    backfill.add_argument("--since", type=_iso_date, help="only days on or after YYYY-MM-DD")
    backfill.add_argument("--account", metavar="ID", help="only this account")
    backfill.add_argument("--dry-run", action="store_true", help="list the partitions, launch nothing")
    backfill.set_defaults(handler=_backfill)

    db = commands.add_parser("db", help="the embedded PostgreSQL server: status, stop")
    db.add_argument("action", choices=["status", "stop"])
    db.set_defaults(handler=_db)
    return parser


@dataclass
class _AccountRun:
    account_id: str
    summary_file: Path
    log_file: Path
    process: subprocess.Popen | None = None
    started: float = 0.0
    finished: float = 0.0
    last_progress: str = ""


def _run(args: argparse.Namespace) -> int:
    from campaign_pipeline import environment

    today = datetime.now(UTC).date()
    day = args.date or (today - timedelta(days=1))
    # Before starting anything: a day without a partition is refused at once, not by each account's run.
    check_partition_day(day, Settings.from_env().partition_start_date, today=today)
    # Before importing Dagster and pandas: a bad setting is reported in half a second, not three.
    prepared = environment.prepare()
    from dagster import DagsterInstance

    from campaign_pipeline.accounts import load_registry
    from campaign_pipeline.partitions import ACCOUNT_DIMENSION
    from campaign_pipeline.warehouse.writer import Warehouse

    try:
        registry = [account for account in load_registry(prepared.settings.accounts_file) if account.enabled]
        account_ids = _select_accounts([account.id for account in registry], args.accounts)
        os.environ.update(prepared.env)
        print(f"Syncing {day.isoformat()} for {len(account_ids)} account(s) from {prepared.env['CAMPAIGN_PIPELINE_API_URL']}")
        print(f"Warehouse: {redact_url(prepared.databases.warehouse)}" + (" (embedded)" if prepared.databases.embedded else ""))
        instance = DagsterInstance.get()
        known = set(instance.get_dynamic_partitions(ACCOUNT_DIMENSION))
        missing = [account_id for account_id in account_ids if account_id not in known]
        if missing:
            instance.add_dynamic_partitions(ACCOUNT_DIMENSION, missing)
        with Warehouse(prepared.databases.warehouse, max_connections=1) as warehouse, _sigterm_interrupts():
            warehouse.migrate()
            runs = _run_partitions(prepared, warehouse, account_ids, day, args.parallel)
        return _print_summary(runs, day)
    finally:
        prepared.close()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while the syncs run, so that they are stopped, not orphaned."""

    def interrupt(signum, frame) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_partitions(prepared, warehouse, account_ids: list[str], day: date, parallel: int) -> list[_AccountRun]:
    log_dir = prepared.settings.home / "logs" / day.isoformat()
    log_dir.mkdir(parents=True, exist_ok=True)
    runs = [
        _AccountRun(account_id, log_dir / f"{account_id}.summary.json", log_dir / f"{account_id}.log")
        for account_id in account_ids
    ]
    for run in runs:
        run.summary_file.unlink(missing_ok=True)
    waiting = list(runs)
    active: list[_AccountRun] = []
    try:
        _supervise(warehouse, day, parallel, waiting, active, prepared.env)
    except BaseException:
        # Interrupted, or this process failed: either way no sync it started may go on unsupervised.
        _stop(runs)
        raise
    return runs


def _supervise(
    warehouse, day: date, parallel: int, waiting: list[_AccountRun], active: list[_AccountRun], env: dict[str, str]
) -> None:
    """Start account syncs, at most ``parallel`` at once, print their progress, until all have ended."""
    import psycopg

    progress_unavailable = False
    while waiting or active:
        while waiting and len(active) < parallel:
            run = waiting.pop(0)
            run.started = time.monotonic()
            with run.log_file.open("w") as log:
                run.process = subprocess.Popen(
                    [sys.executable, "-m", "campaign_pipeline.cli", "sync-partition", "--account", run.account_id,
                     "--date", day.isoformat(), "--summary-file", str(run.summary_file)],
                    stdout=log, stderr=subprocess.STDOUT, env=env,
                )
            active.append(run)
        time.sleep(POLL_SECONDS)
        try:
            progress = warehouse.read_progress(day, [run.account_id for run in active])
        except psycopg.Error as error:
            # Progress is only shown; the syncs report their own outcome. The next tick tries again.
            if not progress_unavailable:
                print(f"  (progress unavailable: {type(error).__name__}; the syncs go on)", file=sys.stderr, flush=True)
            progress_unavailable, progress = True, {}
        else:
            progress_unavailable = False
        for run in list(active):
            line = _progress_line(progress.get(run.account_id))
            if line and line != run.last_progress:
                print(f"  {run.account_id:<20} {line}", flush=True)
                run.last_progress = line
            if run.process.poll() is not None:
                run.finished = time.monotonic()
                active.remove(run)


def _stop(runs: list[_AccountRun]) -> None:
    """Interrupt the running account syncs (Ctrl-C for each), kill those still alive after the grace period.

    An interrupted sync writes nothing half: its load is one transaction, and
    its synced campaigns are checkpointed, so the next run resumes them.
    """
    running = [run for run in runs if run.process is not None and run.process.poll() is None]
    if not running:
        return
    print(f"\nInterrupted: stopping {len(running)} running account sync(s); a new run resumes them.", file=sys.stderr)
    for run in running:
        run.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for run in running:
        try:
            run.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            run.process.kill()
            run.process.wait()


def _progress_line(progress: dict | None) -> str:
    if not progress:
        return ""
    pages = progress.get("pages_fetched") or 0
    total = progress.get("campaigns_total")
    synced = progress.get("campaigns_synced") or 0
    line = f"{progress.get('phase', '?'):<8} pages fetched: {pages}"
    if total is not None:
        line += f", campaigns synced: {synced}/{total}"
    return line


def _print_summary(runs: list[_AccountRun], day: date) -> int:
    print(f"\nSummary for {day.isoformat()} (requests, retries and 429s of each account's last attempt):")
    print(
        f"  {'account':<20} {'result':<7} {'rows':>6} {'attempts':>8} {'requests':>9} {'retries':>8} "
        f"{'429s':>5} {'seconds':>8}"
    )
    failed = []
    for run in runs:
        summary = json.loads(run.summary_file.read_text()) if run.summary_file.exists() else {}
        ok = run.process is not None and run.process.returncode == 0 and summary.get("success", False)
        # A failed run has no figures: its summary holds null for them.
        rows, requests, retries, limited = (
            "-" if summary.get(key) is None else summary[key] for key in ("rows", "requests", "retries", "rate_limited")
        )
        print(
            f"  {run.account_id:<20} {'ok' if ok else 'FAILED':<7} {rows:>6} {summary.get('attempts', '-'):>8} "
            f"{requests:>9} {retries:>8} {limited:>5} {run.finished - run.started:>8.1f}"
        )
        if not ok:
            failed.append(run)
    for run in failed:
        reason = "; ".join(json.loads(run.summary_file.read_text()).get("errors", [])) if run.summary_file.exists() else ""
        print(f"\n{run.account_id} failed: {reason or 'see the log'} (log: {run.log_file})", file=sys.stderr)
    return EXIT_FAILED if failed else 0


def _sync_partition(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from campaign_pipeline.definitions import CAMPAIGN_SYNC_JOB, build_definitions
    from campaign_pipeline.partitions import AccountDay
    from campaign_pipeline.accounts import validate_account_id

    account_day = AccountDay(validate_account_id(args.account), args.date)
    job = build_definitions(Settings.from_env()).resolve_job_def(CAMPAIGN_SYNC_JOB)
    result = job.execute_in_process(
        partition_key=account_day.partition_key,
        instance=DagsterInstance.get(),
        raise_on_error=False,
        tags={"campaign_pipeline/launched_by": "campaign-pipeline run"},
    )
    summary = run_summary(result)
    args.summary_file.write_text(json.dumps(summary, indent=2, sort_keys=True))
    return 0 if result.success else EXIT_FAILED


def run_summary(result) -> dict:
    """Condense an in-process run's events into the figures the ``run`` command prints."""
    metadata: dict[str, object] = {}
    for node in ("campaign_snapshots", "campaign_daily_metrics"):
        for materialization in result.asset_materializations_for_node(node):
            for key, value in materialization.metadata.items():
                metadata[f"{node}.{key}"] = getattr(value, "value", value)
    errors = [
        _failure_reason(event.event_specific_data.error)
        for event in result.all_events
        if event.is_step_failure and event.event_specific_data and event.event_specific_data.error
    ]
    # The counters are the last attempt's: a failed attempt's only reach its log (see assets.py).
    attempts = 1 + sum(
        1 for event in result.all_events
        if event.event_type_value == "STEP_UP_FOR_RETRY" and event.step_key == "campaign_snapshots"
    )
    return {
        "success": result.success,
        "run_id": result.run_id,
        "rows": metadata.get("campaign_daily_metrics.rows"),
        "attempts": attempts,
        "requests": metadata.get("campaign_snapshots.requests_total"),
        "retries": metadata.get("campaign_snapshots.retries_total"),
        "rate_limited": metadata.get("campaign_snapshots.rate_limited_total"),
        "metadata": {key: value for key, value in metadata.items() if isinstance(value, (int, float, str))},
        "errors": errors,
    }


def _failure_reason(error) -> str:
    """Return the first line of the error that failed a step, looking past Dagster's retry wrapper."""
    # After its last retry, a step fails with "Exceeded max_retries of 2"; the cause says why.
    while error.cls_name == "RetryRequestedFromPolicy" and error.cause is not None:
        error = error.cause
    first_line = error.message.strip().splitlines()[0]
    # Dagster starts the message with the exception's qualified class name; the sentence follows it.
    return re.sub(rf"^[\w.]*\b{re.escape(error.cls_name)}: ", "", first_line)


def _dev(args: argparse.Namespace) -> int:
    from campaign_pipeline import environment

    environment.check_port_free(args.port, "--port")
    environment.check_port_free(args.code_server_port, "--code-server-port")
    prepared = environment.prepare()
    stop = _stop_on_sigterm()
    try:
        url = environment.start_dagster_services(prepared, ui_port=args.port, code_port=args.code_server_port)
        print(f"Dagster UI: {url}  (Ctrl-C stops the webserver, daemon, code server and simulator)", flush=True)
        print(f"Logs: {prepared.settings.home / 'logs'}", flush=True)
        while not stop.is_set() and all(child.poll() is None for child in prepared.children):
            stop.wait(1)
        exited = [child.args[0] for child in prepared.children if child.poll() is not None]
        if exited:
            print(f"campaign-pipeline: {Path(exited[0]).name} exited; stopping the others.", file=sys.stderr)
            return EXIT_FAILED
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        prepared.close()


def _stop_on_sigterm() -> threading.Event:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def _backfill(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from campaign_pipeline import environment
    from campaign_pipeline.backfill import failed_partitions, launch_backfill
    from campaign_pipeline.definitions import CAMPAIGN_SYNC_JOB
    from campaign_pipeline.partitions import ACCOUNT_DIMENSION, build_campaign_partitions
    from campaign_pipeline.accounts import validate_account_id

    account_id = validate_account_id(args.account) if args.account else None
    prepared = environment.prepare(api=False)
    os.environ.update(prepared.env)
    partitions_def = build_campaign_partitions(prepared.settings.partition_start_date)
    instance = DagsterInstance.get()
    if account_id is not None:
        check_account_partition(account_id, instance.get_dynamic_partitions(ACCOUNT_DIMENSION))
    keys = failed_partitions(
        instance, partitions_def, since=args.since, account_id=account_id, today=datetime.now(UTC).date()
    )
    if not keys:
        print("No failed partition matches; nothing to backfill.")
        return 0
    print(f"{len(keys)} failed partition(s): {', '.join(keys)}")
    if args.dry_run:
        return 0
    print(launch_backfill(CAMPAIGN_SYNC_JOB, keys, environment.PROJECT_DIR / "workspace.yaml", prepared.env).strip())
    return 0


def _db(args: argparse.Namespace) -> int:
    from campaign_pipeline import database

    settings = Settings.from_env()
    data_dir = settings.home / "pgdata"
    if args.action == "stop":
        stopped = database.stop_embedded_server(data_dir)
        print("Embedded PostgreSQL stopped." if stopped else "No embedded PostgreSQL server was running.")
        return 0
    running = database.is_embedded_server_running(data_dir)
    print(f"Embedded PostgreSQL in {data_dir}: {'running' if running else 'not running'}")
    for label, url in (("warehouse", settings.warehouse_url), ("dagster storage", settings.dagster_storage_url)):
        print(f"{label}: {redact_url(url) if url else 'embedded'}")
    return 0


class DayOutOfRangeError(ValueError):
    """The day asked for has no daily partition."""


def check_partition_day(day: date, start: date, *, today: date) -> None:
    """Refuse a day without a daily partition: before the partitions' start, or not yet over in UTC."""
    if day < start:
        raise DayOutOfRangeError(
            f"--date {day.isoformat()}: the daily partitions start on {start.isoformat()} "
            f"(set {PARTITION_START_DATE} for earlier days)."
        )
    if day >= today:
        raise DayOutOfRangeError(
            f"--date {day.isoformat()}: a day has its partition once it is over in UTC; "
            f"the latest is {(today - timedelta(days=1)).isoformat()}."
        )


def check_account_partition(account_id: str, known: list[str]) -> None:
    """Refuse a backfill filter naming an account that has no partitions: a typo would find nothing."""
    if account_id in known:
        return
    from campaign_pipeline.accounts import AccountConfigError

    if known:
        listed = ", ".join(sorted(known)[:ACCOUNTS_SHOWN]) + (", ..." if len(known) > ACCOUNTS_SHOWN else "")
    else:
        listed = "none yet"
    raise AccountConfigError(f"--account {account_id}: no account partition of that id (known: {listed}).")


def _select_accounts(enabled: list[str], requested: list[str] | None) -> list[str]:
    if not requested:
        return enabled
    unknown = [account_id for account_id in requested if account_id not in enabled]
    if unknown:
        from campaign_pipeline.accounts import AccountConfigError

        raise AccountConfigError(f"--account {', '.join(unknown)}: not an enabled account of the registry.")
    return list(dict.fromkeys(requested))


def _setup_errors() -> tuple[type[Exception], ...]:
    from campaign_pipeline.accounts import AccountConfigError
    from campaign_pipeline.database import DatabaseSetupError
    from campaign_pipeline.environment import SetupError

    return (SetupError, SettingsError, AccountConfigError, DatabaseSetupError, DayOutOfRangeError)


def _launch_errors() -> tuple[type[Exception], ...]:
    from campaign_pipeline.backfill import BackfillLaunchError

    return (BackfillLaunchError,)


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date as YYYY-MM-DD") from None


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return int(text)


if __name__ == "__main__":
    sys.exit(main())
