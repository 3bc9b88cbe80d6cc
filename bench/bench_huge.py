"""One huge account-day through Dagster against a bare loop that only fetches the same pages.

Run ``python -m bench.bench_huge [--campaigns 100000]``. The simulator runs the
``fast`` profile (no faults, no latency, no rate limit worth the name) with
``--campaign-count N``; every page is requested once before measuring, so both
sides are served from the simulator's page cache.

- Bare loop: one ``requests.Session`` fetches the token, then every page
  (``limit=100``) and keeps the bytes: no parsing, no validation, no storage.
- Pipeline, pages and load: the real assets materialized with Dagster in a
  fresh process (:mod:`bench.dagster_child`): every page through the client
  (rate limiter in PostgreSQL, validation, progress rows), the DataFrame, its
  Parquet hand-over between the two steps, the COPY-staged load, the asset
  checks and Dagster's events. Campaign syncs are left out of this figure by
  the product's own resumption: the sync ledger says every campaign was
  synced by an earlier attempt, so the asset skips them (a platform sync is a
  slow remote call whose cost is the rate limit, measured by benchmark 1).
  Two walls: the asset wall, as benchmark 1 measures it, from the account's
  first request arriving at the simulator to the load asset's materialization
  (written after the load committed), which the aim is judged on; and the run
  wall, from the ``materialize()`` call to RUN_SUCCESS, which adds Dagster's
  start-up (reported beside it).
- Pipeline with syncs (``--sync-campaigns``, a smaller account-day): the same
  with every campaign synced (sync latency 0), against a bare loop that
  fetches the pages and posts the syncs from as many threads as the
  pipeline's sync workers: the cost the pipeline adds per sync.

Peak memory is the child process's peak resident set (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import requests

from bench.bench_dagster import account_requests, bench_day, child_env, dagster_costs
from bench.harness import BenchDatabases, bench_databases, bench_server, elapsed, run_child, state_dir
from campaign_pipeline.warehouse.writer import Warehouse
from mock_api.accounts import account_by_id
from mock_api.testing import MockApiServer

ACCOUNT = "acme-retail"
PAGE_SIZE = 100
SYNC_WORKERS = 16
CHILD_TIMEOUT_SECONDS = 1800
MEMORY_AIM_BYTES = 10**9
RATE_AIM = 0.5


def bare_page_loop(base_url: str, account_id: str, day: date, campaigns: int, *, syncs: bool = False) -> dict:
    """Fetch a token and every page of the account-day with one session (then post every sync); return time.

    Syncs, when asked for, go out from :data:`SYNC_WORKERS` threads with a session each.
    """
    account = account_by_id(account_id)
    pages = math.ceil(campaigns / PAGE_SIZE)
    received = 0
    started = time.perf_counter()
    with requests.Session() as session:
        session.headers["X-Client-ID"] = account_id
        token = session.post(f"{base_url}/auth/token", auth=(account.email, account.password), timeout=30)
        token.raise_for_status()
        session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        for page in range(1, pages + 1):
            response = session.get(
                f"{base_url}/api/campaigns",
                params={"page": page, "limit": PAGE_SIZE, "date": day.isoformat()},
                timeout=30,
            )
            response.raise_for_status()
            received += len(response.content)
        if syncs:
            _post_syncs(base_url, dict(session.headers), campaigns)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "rows_per_second": round(campaigns / seconds), "bytes": received}


def _post_syncs(base_url: str, headers: dict[str, str], campaigns: int) -> None:
    local = threading.local()

    def sync(number: int) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.headers.update(headers)
        campaign_id = f"campaign_{number}"
        response = local.session.post(
            f"{base_url}/api/campaigns/{campaign_id}/sync", json={"campaign_id": campaign_id}, timeout=30
        )
        response.raise_for_status()

    with ThreadPoolExecutor(SYNC_WORKERS) as pool:
        list(pool.map(sync, range(1, campaigns + 1)))


def mark_all_synced(warehouse_url: str, account_id: str, day: date, campaigns: int) -> None:
    """Write the sync ledger as an earlier attempt that synced every campaign would have left it."""
    with Warehouse(warehouse_url, application_name="bench_huge") as warehouse:
        warehouse.migrate()
    with psycopg.connect(warehouse_url) as connection:
        connection.execute(
            """
            INSERT INTO campaign_sync_progress (account_id, metrics_date, campaign_id, synced_at, run_id)
            SELECT %s, %s, 'campaign_' || n, now(), 'bench-earlier-attempt' FROM generate_series(1, %s) AS n
            """,
            (account_id, day, campaigns),
        )


def run_pipeline(
    server: MockApiServer, databases: BenchDatabases, home: Path, *, campaigns: int, day: date, syncs: bool
) -> dict[str, Any]:
    """Materialize the huge account-day in a child process; return rows/s, phases and peak memory."""
    if not syncs:
        mark_all_synced(databases.warehouse_url, ACCOUNT, day, campaigns)
    # A clean request log (the page cache stays), so that the run's first request is in it.
    server.reset()
    spec = {
        "mode": "materialize",
        "account_id": ACCOUNT,
        "day": day.isoformat(),
        "api_url": server.url,
        "frames_dir": str(home / "frames"),
        "ad_platform": {"rate_limit": 1_000_000, "rate_window_seconds": 1.0, "sync_workers": SYNC_WORKERS},
    }
    result = run_child(["bench.dagster_child"], spec, env=child_env(databases, home, [ACCOUNT]),
                       timeout=CHILD_TIMEOUT_SECONDS)
    timeline = result["timeline"]
    seconds = elapsed(result["called"], timeline.get("run_success"))
    steps = timeline["steps"]
    load = result["metadata"].get("campaign_daily_metrics", {})
    snapshot = result["metadata"].get("campaign_snapshots", {})
    first_request = min((record["arrived_at"] for record in account_requests(server, ACCOUNT)), default=None)
    asset_wall = elapsed(first_request, timeline["materialized"].get("campaign_daily_metrics"))
    costs = dagster_costs(result, first_request)
    return {
        "success": timeline["status"] == "SUCCESS",
        "errors": result["errors"],
        "rows": load.get("rows"),
        "asset_wall_seconds": asset_wall,
        "asset_rows_per_second": round(campaigns / asset_wall) if asset_wall else None,
        "seconds": seconds,
        "rows_per_second": round(campaigns / seconds) if seconds else None,
        "dagster_start_up": {
            "process_start_to_first_step": costs["process_start_to_first_step"],
            "run_called_to_first_step": elapsed(result["called"], timeline.get("first_step_start")),
            "first_step_to_first_request": costs["first_step_to_first_request"],
            "load_to_run_success": costs["load_to_run_success"],
        },
        "requests": {
            "total": snapshot.get("requests_total"),
            "limiter_restamps": snapshot.get("limiter_restamps"),
            "rate_limited": snapshot.get("rate_limited_total"),
        },
        "phases": {
            "run_called_to_first_step": elapsed(result["called"], timeline.get("first_step_start")),
            "snapshot_step": elapsed(
                steps.get("campaign_snapshots", {}).get("start"), steps.get("campaign_snapshots", {}).get("end")
            ),
            "first_request_to_snapshot_stored": elapsed(
                first_request, timeline["materialized"].get("campaign_snapshots")
            ),
            "snapshot_duration_metadata": snapshot.get("duration_seconds"),
            "load_step": elapsed(
                steps.get("campaign_daily_metrics", {}).get("start"), steps.get("campaign_daily_metrics", {}).get("end")
            ),
            "load_duration_metadata": load.get("duration_seconds"),
            "last_step_to_run_success": elapsed(
                steps.get("campaign_daily_metrics", {}).get("end"), timeline.get("run_success")
            ),
        },
        "process_start_to_returned": elapsed(result["process_started"], result["returned"]),
        "peak_rss_bytes": result["peak_rss_bytes"],
    }


def run(
    *, campaigns: int = 100_000, sync_campaigns: int = 0, seed: int = 0, postgres_url: str | None = None
) -> dict[str, Any]:
    """Benchmark 3: the bare page loop against the pipeline (pages and load), and optionally with syncs.

    Args:
        campaigns: Campaigns of the huge account-day.
        sync_campaigns: Campaigns of the account-day synced in the with-syncs figure (0: skip it).
        seed: Simulator seed.
        postgres_url: Admin URL of a PostgreSQL server; the embedded bench server when None.
    """
    day = bench_day()
    figures: dict[str, Any] = {"campaigns": campaigns, "pages": math.ceil(campaigns / PAGE_SIZE)}
    with bench_server(postgres_url) as admin_url, state_dir("huge") as home:
        with _simulator(home, seed, campaigns) as server:
            bare_page_loop(server.url, ACCOUNT, day, campaigns)
            bare = [bare_page_loop(server.url, ACCOUNT, day, campaigns)]
            with bench_databases("huge", admin_url) as databases:
                pipeline = run_pipeline(server, databases, home, campaigns=campaigns, day=day, syncs=False)
            bare.append(bare_page_loop(server.url, ACCOUNT, day, campaigns))
        fastest = max(bare, key=lambda run: run["rows_per_second"])
        figures.update(
            bare_loop=fastest,
            bare_loop_runs=bare,
            pipeline=pipeline,
            pipeline_vs_bare=_ratio(pipeline, fastest),
            pipeline_run_vs_bare=_ratio(pipeline, fastest, key="rows_per_second"),
        )
        if sync_campaigns:
            with _simulator(home, seed, sync_campaigns) as server, bench_databases("syncs", admin_url) as databases:
                bare_page_loop(server.url, ACCOUNT, day, sync_campaigns)
                bare_syncs = bare_page_loop(server.url, ACCOUNT, day, sync_campaigns, syncs=True)
                synced = run_pipeline(server, databases, home, campaigns=sync_campaigns, day=day, syncs=True)
            figures["with_syncs"] = {
                "campaigns": sync_campaigns,
                "sync_workers": SYNC_WORKERS,
                "bare_loop": bare_syncs,
                "pipeline": synced,
                "pipeline_vs_bare": _ratio(synced, bare_syncs),
                "pipeline_run_vs_bare": _ratio(synced, bare_syncs, key="rows_per_second"),
            }
    return figures


def _simulator(home: Path, seed: int, campaigns: int) -> MockApiServer:
    return MockApiServer(
        profile="fast",
        seed=seed,
        campaign_count=campaigns,
        request_log_size=campaigns + campaigns // PAGE_SIZE + 100,
        log_path=home / "simulator.log",
    )


def _ratio(pipeline: dict[str, Any], bare: dict[str, Any], *, key: str = "asset_rows_per_second") -> float | None:
    """Pipeline rows/s over the bare loop's: by the asset wall (the aim's figure) unless ``key`` says otherwise."""
    if not pipeline[key]:
        return None
    return round(pipeline[key] / bare["rows_per_second"], 3)


def main() -> None:
    """Parse options, run benchmark 3, print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_huge", description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=100_000, help="campaigns of the account-day")
    parser.add_argument(
        "--sync-campaigns", type=int, default=10_000, help="campaigns of the with-syncs figure (0: skip it)"
    )
    parser.add_argument("--postgres-url", help="admin URL of a PostgreSQL server (default: embedded)")
    args = parser.parse_args()
    figures = run(campaigns=args.campaigns, sync_campaigns=args.sync_campaigns, postgres_url=args.postgres_url)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
