"""Rate-limit efficiency of one account-day through Dagster, and what Dagster itself costs.

Run ``python -m bench.bench_dagster [--time-scale 0.1]``.

1. Rate-limit efficiency: one account-day of 100 campaigns (1 list page, 100
   syncs) materialized through Dagster, each scenario in a fresh process on a
   PostgreSQL-backed Dagster instance, against the simulator at 60 requests
   per window. The asset's wall time runs from the simulator's arrival of the
   account's first request (the token) to the load asset's materialization
   event, which Dagster writes after the load's transaction committed. ``R``
   requests at ``L`` per window ``W`` cannot finish before
   ``floor((R - 1) / L) * W`` plus one request's latency; ``R`` counts every
   list and sync request the simulator admitted (503s and hangs included,
   429s not). ``--time-scale`` shrinks the window, the sync latency, the read
   timeout, the backoff and the limiter's margin by one factor.
2. Dagster's own cost: the same account-day with no rate limit and no
   latency, so that nearly all the time is Dagster's: in a fresh process like
   ``campaign-pipeline run`` starts per account, once with the project's job
   (in-process executor) and once under Dagster's default multiprocess
   executor (a process per step, what a materialization from the UI's asset
   page uses).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.bench_client import window_bound
from bench.harness import (
    BenchDatabases,
    bench_databases,
    bench_server,
    dagster_env,
    elapsed,
    run_child,
    state_dir,
)
from campaign_pipeline import settings as setting_names
from campaign_pipeline.ad_platform import ClientConfig
from mock_api.accounts import demo_credentials
from mock_api.testing import MockApiServer

RATE_LIMIT = 60
WINDOW_SECONDS = 60.0
SYNC_LATENCY_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 5.0
# The gap between taking a slot and the platform seeing the request is set by
# the machine, not by the time scale: keep at least this much margin.
MIN_SAFETY_MARGIN_SECONDS = 0.1
FAULTS = {"error_rate": 0.2, "hang_rate": 0.1}
CHILD_TIMEOUT_SECONDS = 900
CLIENT_DEFAULTS = ClientConfig()


@dataclass(frozen=True)
class RateScenario:
    """One rate-limit run: its account (each has its own window), faults, sync workers and aim."""

    name: str
    account_id: str
    faults: bool
    sync_workers: int | None
    aim: float | None


# Sync workers as CAMPAIGN_PIPELINE_SYNC_WORKERS defaults them: the rate limit (up to 64).
RATE_SCENARIOS = (
    RateScenario("fault-free", "acme-retail", faults=False, sync_workers=RATE_LIMIT, aim=1.05),
    RateScenario("20% 503 + 10% hangs on every endpoint", "globex", faults=True, sync_workers=RATE_LIMIT, aim=1.3),
)


def bench_day() -> date:
    """The account-day every Dagster benchmark syncs: yesterday, UTC."""
    return datetime.now(UTC).date() - timedelta(days=1)


def ad_platform_fields(time_scale: float, sync_workers: int | None) -> dict[str, Any]:
    """The resource fields of the rate-limit benchmark: the platform's window, every wait scaled."""
    fields: dict[str, Any] = {
        "rate_limit": RATE_LIMIT,
        "rate_window_seconds": WINDOW_SECONDS * time_scale,
        "limiter_safety_margin_seconds": max(
            MIN_SAFETY_MARGIN_SECONDS, CLIENT_DEFAULTS.limiter_safety_margin_seconds * time_scale
        ),
        "read_timeout_seconds": READ_TIMEOUT_SECONDS * time_scale,
        "backoff_base_seconds": CLIENT_DEFAULTS.backoff_base_seconds * time_scale,
        "backoff_cap_seconds": CLIENT_DEFAULTS.backoff_cap_seconds * time_scale,
    }
    if sync_workers is not None:
        fields["sync_workers"] = sync_workers
    return fields


def child_env(databases: BenchDatabases, home: Path, account_ids: list[str]) -> dict[str, str]:
    """Environment of a child run: Dagster home, warehouse and demo credentials."""
    return {
        **dagster_env(home, databases.dagster_url),
        setting_names.HOME: str(home),
        setting_names.WAREHOUSE_URL: databases.warehouse_url,
        setting_names.CREDENTIALS: json.dumps(demo_credentials(account_ids)),
    }


def dagster_costs(result: dict[str, Any], first_request: float | None) -> dict[str, float | None]:
    """Split a child run's time into Dagster's parts (seconds)."""
    timeline = result["timeline"]
    steps = timeline["steps"]
    first_step = timeline.get("first_step_start")
    load_done = timeline["materialized"].get("campaign_daily_metrics")
    return {
        "process_start_to_imported": elapsed(result["process_started"], result["imported"]),
        "imported_to_run_called": elapsed(result["imported"], result["called"]),
        "run_called_to_run_start": elapsed(result["called"], timeline.get("run_start")),
        "run_start_to_first_step": elapsed(timeline.get("run_start"), first_step),
        "process_start_to_first_step": elapsed(result["process_started"], first_step),
        "first_step_to_first_request": elapsed(first_step, first_request),
        "between_steps": elapsed(
            steps.get("campaign_snapshots", {}).get("end"), steps.get("campaign_daily_metrics", {}).get("start")
        ),
        "load_to_run_success": elapsed(load_done, timeline.get("run_success")),
        "run_success_to_returned": elapsed(timeline.get("run_success"), result["returned"]),
        "run_start_to_run_success": elapsed(timeline.get("run_start"), timeline.get("run_success")),
        "process_start_to_returned": elapsed(result["process_started"], result["returned"]),
    }


def account_requests(server: MockApiServer, account_id: str) -> list[dict[str, Any]]:
    """The simulator's log of the account's requests (token, list, sync), oldest first."""
    return [record for record in server.requests() if record.get("account") == account_id]


def requests_counted_by_window(records: list[dict[str, Any]]) -> int:
    """List and sync requests the platform's window counted: every admitted one, 429s excluded."""
    return sum(1 for record in records if record["endpoint"] in ("list", "sync") and record["status"] != 429)


def run_rate_scenario(
    scenario: RateScenario, databases: BenchDatabases, home: Path, *, time_scale: float, seed: int, day: date
) -> dict[str, Any]:
    """Materialize one account-day under ``scenario`` in a child process; return its figures."""
    window = WINDOW_SECONDS * time_scale
    latency = SYNC_LATENCY_SECONDS * time_scale
    faults = FAULTS if scenario.faults else {"error_rate": 0.0, "hang_rate": 0.0}
    with MockApiServer(
        profile="fast",
        seed=seed,
        rate_limit=RATE_LIMIT,
        rate_window_seconds=window,
        sync_latency_seconds=latency,
        hang_seconds=600,
        log_path=home / f"simulator-{scenario.account_id}.log",
        **{f"{endpoint}_{name}": value for endpoint in ("token", "list", "sync") for name, value in faults.items()},
    ) as server:
        spec = {
            "mode": "materialize",
            "account_id": scenario.account_id,
            "day": day.isoformat(),
            "api_url": server.url,
            "frames_dir": str(home / "frames"),
            "ad_platform": ad_platform_fields(time_scale, scenario.sync_workers),
        }
        result = run_child(
            ["bench.dagster_child"], spec, env=child_env(databases, home, [scenario.account_id]),
            timeout=CHILD_TIMEOUT_SECONDS,
        )
        records = account_requests(server, scenario.account_id)
    first_request = min((record["arrived_at"] for record in records), default=None)
    load_done = result["timeline"]["materialized"].get("campaign_daily_metrics")
    counted = requests_counted_by_window(records)
    bound = window_bound(counted, limit=RATE_LIMIT, window_seconds=window, latency_seconds=latency)
    wall = elapsed(first_request, load_done)
    snapshot = result["metadata"].get("campaign_snapshots", {})
    counted_arrivals = sorted(
        record["arrived_at"] for record in records if record["endpoint"] in ("list", "sync") and record["status"] != 429
    )
    last_finished = max((record["finished_at"] or 0.0 for record in records), default=None)
    return {
        "scenario": scenario.name,
        "account_id": scenario.account_id,
        "success": result["timeline"]["status"] == "SUCCESS",
        "errors": result["errors"],
        "sync_workers": scenario.sync_workers or CLIENT_DEFAULTS.sync_workers,
        "rows": result["metadata"].get("campaign_daily_metrics", {}).get("rows"),
        "requests_counted": counted,
        "requests_by_status": _by_endpoint_and_status(records),
        "rate_limited": sum(1 for record in records if record["status"] == 429),
        "hangs": sum(1 for record in records if record.get("hung")),
        "retries_by_class": snapshot.get("retries_by_class"),
        "wall_seconds": wall,
        "bound_seconds": round(bound, 3),
        "ratio": round(wall / bound, 3) if wall is not None else None,
        "aim": scenario.aim,
        "phases": {
            "first_request_to_last_window_start": elapsed(first_request, _last_window_start(counted_arrivals)),
            "last_window_start_to_last_answer": elapsed(_last_window_start(counted_arrivals), last_finished),
            "last_answer_to_snapshot_stored": elapsed(
                last_finished, result["timeline"]["materialized"].get("campaign_snapshots")
            ),
            "snapshot_stored_to_load_committed": elapsed(
                result["timeline"]["materialized"].get("campaign_snapshots"), load_done
            ),
        },
        "dagster": dagster_costs(result, first_request),
        "peak_rss_bytes": result["peak_rss_bytes"],
    }


def _last_window_start(arrivals: list[float]) -> float | None:
    """Arrival of the first request of the last full-or-partial window: request number ``floor((R-1)/L)*L``."""
    if not arrivals:
        return None
    return arrivals[(len(arrivals) - 1) // RATE_LIMIT * RATE_LIMIT]


def _by_endpoint_and_status(records: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        by_status = counts.setdefault(record["endpoint"], {})
        by_status[str(record["status"])] = by_status.get(str(record["status"]), 0) + 1
    return counts


def run_rate_limit(
    *,
    time_scale: float = 1.0,
    seed: int = 0,
    postgres_url: str | None = None,
    scenarios: Sequence[RateScenario] = RATE_SCENARIOS,
) -> dict[str, Any]:
    """Benchmark 1: the rate-limit scenarios; return the figures.

    Args:
        time_scale: Factor on the window, the sync latency, the read timeout,
            the backoff and the limiter margin (1.0: the true 60 s window).
        seed: Simulator seed (it decides which requests fail).
        postgres_url: Admin URL of a PostgreSQL server; the embedded bench server when None.
        scenarios: The scenarios to run, each on its own account.
    """
    day = bench_day()
    with (
        bench_server(postgres_url) as admin_url,
        bench_databases("rate", admin_url) as databases,
        state_dir("rate") as home,
    ):
        rows = [
            run_rate_scenario(scenario, databases, home, time_scale=time_scale, seed=seed, day=day)
            for scenario in scenarios
        ]
    return {
        "configuration": {
            "rate_limit": RATE_LIMIT,
            "rate_window_seconds": WINDOW_SECONDS * time_scale,
            "sync_latency_seconds": SYNC_LATENCY_SECONDS * time_scale,
            "time_scale": time_scale,
            "seed": seed,
            "resource_fields": ad_platform_fields(time_scale, RATE_LIMIT),
        },
        "scenarios": rows,
    }


def run_overhead(
    *, postgres_url: str | None = None, seed: int = 0, executors: Sequence[str] = ("in_process", "multiprocess")
) -> dict[str, Any]:
    """Dagster's own cost per account-day run under each of ``executors``, each in a fresh process."""
    day = bench_day()
    runs = []
    with (
        bench_server(postgres_url) as admin_url,
        bench_databases("overhead", admin_url) as databases,
        state_dir("overhead") as home,
    ):
        with MockApiServer(profile="fast", seed=seed, log_path=home / "simulator.log") as server:
            for executor, account_id in zip(executors, ("acme-retail", "globex"), strict=False):
                env = {
                    **child_env(databases, home, [account_id]),
                    setting_names.API_URL: server.url,
                    setting_names.RATE_LIMIT: "1000000",
                    setting_names.RATE_WINDOW_SECONDS: "1",
                    setting_names.PARTITION_START_DATE: (day - timedelta(days=7)).isoformat(),
                }
                spec = {"mode": "job", "executor": executor, "account_id": account_id, "day": day.isoformat()}
                result = run_child(["bench.dagster_child"], spec, env=env, timeout=CHILD_TIMEOUT_SECONDS)
                records = account_requests(server, account_id)
                first_request = min((record["arrived_at"] for record in records), default=None)
                last_request = max((record["finished_at"] or 0 for record in records), default=None)
                runs.append(
                    {
                        "executor": executor,
                        "success": result["timeline"]["status"] == "SUCCESS",
                        "errors": result["errors"],
                        "api_seconds": elapsed(first_request, last_request),
                        "dagster": dagster_costs(result, first_request),
                        "peak_rss_bytes": max(result["peak_rss_bytes"], result["children_peak_rss_bytes"]),
                    }
                )
    return {"runs": runs}


def format_report(figures: dict[str, Any]) -> str:
    """Return the figures of :func:`run_rate_limit` and :func:`run_overhead` as printable lines."""
    lines = []
    if "rate_limit" in figures:
        config = figures["rate_limit"]["configuration"]
        lines.append(
            f"{config['rate_limit']} requests per {config['rate_window_seconds']:g} s, sync latency "
            f"{config['sync_latency_seconds']:g} s (time scale {config['time_scale']:g})"
        )
        for row in figures["rate_limit"]["scenarios"]:
            lines.append(
                f"  {row['scenario']:<40} R={row['requests_counted']:>4} bound={row['bound_seconds']:>7.2f}s "
                f"wall={row['wall_seconds']}s ratio={row['ratio']} 429s={row['rate_limited']} "
                f"start-up={row['dagster']['process_start_to_first_step']}s"
            )
    for run in figures.get("overhead", {}).get("runs", []):
        lines.append(f"  {run['executor']:<13} {json.dumps(run['dagster'])}")
    return "\n".join(lines)


def main() -> None:
    """Parse options, run benchmark 1 and the Dagster overhead runs, print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_dagster", description=__doc__.splitlines()[0])
    parser.add_argument("--time-scale", type=float, default=1.0, help="factor on every duration (1: real time)")
    parser.add_argument("--seed", type=int, default=0, help="simulator seed")
    parser.add_argument("--postgres-url", help="admin URL of a PostgreSQL server (default: embedded)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = {
        "rate_limit": run_rate_limit(time_scale=args.time_scale, seed=args.seed, postgres_url=args.postgres_url),
        "overhead": run_overhead(postgres_url=args.postgres_url, seed=args.seed),
    }
    print(json.dumps(figures, indent=2) if args.json else format_report(figures))


if __name__ == "__main__":
    main()
