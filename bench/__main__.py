"""Run every benchmark of issue #8 and write ``bench/RESULTS.md``: ``make bench`` (``python -m bench``).

1. rate_limit: one account-day through Dagster at 60 requests per window,
   fault-free and under faults, against the sliding-window bound;
2. many_accounts: 1 versus 16 accounts at once through the daemon's run queue;
3. huge: one account-day of 100,000 campaigns against a bare page loop;
4. loading: the warehouse load against raw COPY and ``to_sql``;
5. simulator: the simulator's own serving rate;
plus overhead: what Dagster itself costs per run, per executor.

``--quick`` runs small sizes on a compressed clock (about two minutes) and
writes its report under ``.campaign_pipeline/bench`` unless ``--output`` says
otherwise. Each benchmark runs on its own; one that fails is reported as
failed and the others still run. Exit status 0 when every benchmark ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench import bench_dagster, bench_huge, bench_queue, bench_simulator, bench_warehouse
from bench.harness import BENCH_STATE_DIR, REPO_ROOT, bench_server
from bench.results import all_verdicts, notes_for, render, summary_lines

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "RESULTS.md"
QUICK_OUTPUT = BENCH_STATE_DIR / "RESULTS-quick.md"
CHECKPOINT = BENCH_STATE_DIR / "last-results.json"


@dataclass(frozen=True)
class Plan:
    """Sizes of one run of the suite."""

    name: str
    time_scale: float
    rate_scenarios: tuple[bench_dagster.RateScenario, ...]
    accounts: int
    default_launcher_variant: bool
    campaigns: int
    sync_campaigns: int
    warehouse_rows: int
    to_sql_rows: int
    simulator_seconds: float
    hanging_requests: int
    executors: tuple[str, ...]


FULL = Plan(
    name="full",
    time_scale=1.0,
    rate_scenarios=bench_dagster.RATE_SCENARIOS,
    accounts=16,
    default_launcher_variant=True,
    campaigns=100_000,
    sync_campaigns=10_000,
    warehouse_rows=1_000_000,
    to_sql_rows=100_000,
    simulator_seconds=5.0,
    hanging_requests=1000,
    executors=("in_process", "multiprocess"),
)
QUICK = Plan(
    name="quick",
    time_scale=0.05,
    rate_scenarios=bench_dagster.RATE_SCENARIOS[:1],
    accounts=2,
    default_launcher_variant=False,
    campaigns=2_000,
    sync_campaigns=0,
    warehouse_rows=20_000,
    to_sql_rows=2_000,
    simulator_seconds=1.0,
    hanging_requests=100,
    executors=("in_process",),
)


def in_fresh_process(function: Callable[..., dict], **kwargs: Any) -> dict:
    """Call ``function(**kwargs)`` in a new interpreter, so that its peak memory and CPU are its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, **kwargs).result()


BENCHMARKS: dict[str, Callable[[Plan, str], dict]] = {
    "rate_limit": lambda plan, url: bench_dagster.run_rate_limit(
        time_scale=plan.time_scale, postgres_url=url, scenarios=plan.rate_scenarios
    ),
    "many_accounts": lambda plan, url: bench_queue.run(
        accounts=plan.accounts, time_scale=plan.time_scale, postgres_url=url, default_launcher_variant=plan.default_launcher_variant
    ),
    "huge": lambda plan, url: bench_huge.run(
        campaigns=plan.campaigns, sync_campaigns=plan.sync_campaigns, postgres_url=url
    ),
    "loading": lambda plan, url: in_fresh_process(
        bench_warehouse.run, rows=plan.warehouse_rows, url=url, to_sql_rows=plan.to_sql_rows
    ),
    "simulator": lambda plan, url: in_fresh_process(
        bench_simulator.run, duration_seconds=plan.simulator_seconds, hanging_requests=plan.hanging_requests
    ),
    "overhead": lambda plan, url: bench_dagster.run_overhead(postgres_url=url, executors=plan.executors),
}


def git_state() -> tuple[str, int]:
    """Return the short commit and how many files differ from it (tracked changes and untracked files)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    ).stdout
    return commit or "unknown", len(status.splitlines())


def machine(admin_url: str) -> dict[str, Any]:
    """Cores, memory and the versions that matter."""
    import dagster
    import pandas

    with psycopg.connect(admin_url) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    ) if Path("/proc/cpuinfo").exists() else platform.processor()
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": psutil.virtual_memory().total / 10**9,
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "postgresql": row[0] if row else "unknown",
        "dagster": dagster.__version__,
        "pandas": pandas.__version__,
    }


def run_suite(plan: Plan, selected: list[str], postgres_url: str | None) -> tuple[dict, dict]:
    """Run the selected benchmarks; return their figures and the run's context."""
    results: dict[str, Any] = {}
    load_before: dict[str, float] = {}
    load_after: dict[str, float] = {}
    durations: dict[str, float] = {}
    started = time.monotonic()
    with bench_server(postgres_url) as admin_url:
        for name in selected:
            load_before[name] = os.getloadavg()[0]
            print(f"[bench] {name}: running ({plan.name})", flush=True)
            began = time.monotonic()
            try:
                results[name] = BENCHMARKS[name](plan, admin_url)
            except Exception as exc:  # noqa: BLE001 - one failed benchmark must not hide the others
                traceback.print_exc()
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            durations[name] = round(time.monotonic() - began, 1)
            load_after[name] = os.getloadavg()[0]
            print(f"[bench] {name}: {durations[name]:.0f} s", flush=True)
            CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
            CHECKPOINT.write_text(json.dumps(results, indent=1, default=str))
        about = machine(admin_url)
    commit, dirty = git_state()
    context = {
        "command": "python -m bench" + (" --quick" if plan.name == "quick" else ""),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "dirty_files": dirty,
        "mode": f"{plan.name} (time scale {plan.time_scale:g})",
        "machine": about,
        "load_before": load_before,
        "load_after": load_after,
        "durations_seconds": durations,
        "duration_minutes": (time.monotonic() - started) / 60,
    }
    return results, context


def main(argv: list[str] | None = None) -> int:
    """Parse options, run the suite, write the report; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, compressed clock: a smoke run")
    parser.add_argument(
        "--only", type=lambda text: text.split(","), default=list(BENCHMARKS),
        help=f"comma-separated subset of {','.join(BENCHMARKS)}",
    )
    parser.add_argument("--time-scale", type=float, help="factor on every window and latency (default 1, quick 0.05)")
    parser.add_argument("--postgres-url", help="admin URL of a PostgreSQL server (default: an embedded one)")
    parser.add_argument("--output", type=Path, help=f"report path (default {DEFAULT_OUTPUT.relative_to(REPO_ROOT)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only) - set(BENCHMARKS))
    if unknown:
        parser.error(f"--only: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    plan = QUICK if args.quick else FULL
    if args.time_scale is not None:
        plan = Plan(**{**plan.__dict__, "time_scale": args.time_scale})
    results, context = run_suite(plan, args.only, args.postgres_url)
    output = args.output or (QUICK_OUTPUT if args.quick else DEFAULT_OUTPUT)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(results, context, notes_for(results)))
    print("\n".join(summary_lines(all_verdicts(results))))
    print(f"\nWritten {output} in {context['duration_minutes']:.1f} min.")
    return 1 if any("error" in figures for figures in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
