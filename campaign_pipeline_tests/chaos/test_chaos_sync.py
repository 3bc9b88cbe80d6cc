"""Account-days synced through Dagster under the simulator's ``chaos`` profile, then searched for secrets.

The ``campaign-pipeline run`` command runs as a user runs it, against a
simulator that answers 503 or hangs on every endpoint, issues tokens that
live 5 s and admits 20 requests per 2 s per account. Afterwards the warehouse
must equal the ground truth exactly, and no password, Basic header value or
issued token may appear in any output: the processes' stdout and stderr,
every file under the pipeline's home (logs, run summaries, Dagster's home,
stored frames), the simulator's log, PostgreSQL's log, and every table of the
Dagster storage and warehouse databases (event log, runs, metadata, error texts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from campaign_pipeline_tests.chaos.leaks import LeakReport, search, secret_strings
from campaign_pipeline_tests.chaos.support import (
    REPO_ROOT,
    Figures,
    clean_env,
    cli,
    compare,
    fault_counts,
    postgres_logs,
)
from mock_api.accounts import DEMO_ACCOUNT_IDS, demo_credentials
from mock_api.testing import MockApiServer

FIRST_DAY = date(2026, 11, 20)


@dataclass
class ChaosRun:
    """What a chaos run left: the comparisons, the faults, the leak search."""

    exact: dict[str, bool]
    faults: dict[str, int]
    tokens_issued: int
    leaks: LeakReport


def sync_under_chaos(
    tmp_path: Path,
    make_database: Any,
    postgres_admin_url: str,
    figures: Figures,
    *,
    accounts: list[str],
    days: int,
    campaign_count: int,
    seed: int,
) -> ChaosRun:
    """Run ``campaign-pipeline run`` for ``days`` days of ``accounts`` under chaos; compare; search for secrets."""
    home = tmp_path / "home"
    credentials = demo_credentials()
    warehouse_url, dagster_url = make_database("chaoswh"), make_database("chaosdg")
    with MockApiServer(
        profile="chaos", seed=seed, campaign_count=campaign_count, hang_seconds=3, log_path=tmp_path / "mock_api.log"
    ) as server:
        env = clean_env(
            home,
            CAMPAIGN_PIPELINE_API_URL=server.url,
            CAMPAIGN_PIPELINE_CREDENTIALS=json.dumps(credentials),
            CAMPAIGN_PIPELINE_ACCOUNTS_FILE=str(REPO_ROOT / "demo" / "accounts.toml"),
            CAMPAIGN_PIPELINE_WAREHOUSE_URL=warehouse_url,
            CAMPAIGN_PIPELINE_DAGSTER_STORAGE_URL=dagster_url,
            CAMPAIGN_PIPELINE_RATE_LIMIT="20",
            CAMPAIGN_PIPELINE_RATE_WINDOW_SECONDS="2",
            CAMPAIGN_PIPELINE_READ_TIMEOUT_SECONDS="1",
        )
        outputs: dict[str, str] = {}
        for offset in range(days):
            day = (FIRST_DAY + timedelta(days=offset)).isoformat()
            selection = [arg for account_id in accounts for arg in ("--account", account_id)]
            completed = cli("run", "--date", day, "--parallel", str(len(accounts)), *selection, env=env, timeout=600)
            outputs[f"stdout of run --date {day}"] = completed.stdout
            outputs[f"stderr of run --date {day}"] = completed.stderr
            assert completed.returncode == 0, completed.stdout + completed.stderr
        log = server.requests()
        tokens = server.tokens()
        tokens_issued = server.counters()["tokens_issued"]
    faults = fault_counts(log)
    faults["token expired (5 s lifetime)"] = _token_renewals(log)
    figures.add_faults(faults)
    exact = {}
    for offset in range(days):
        day = FIRST_DAY + timedelta(days=offset)
        for account_id in accounts:
            comparison = compare(warehouse_url, account_id, day, seed=seed, campaign_count=campaign_count)
            figures.add_comparison(comparison)
            exact[f"{account_id}|{day}"] = comparison.exact
    secrets = secret_strings(credentials, tokens)
    leaks = search(
        secrets,
        directories=[home],
        files=[server.log_path, *postgres_logs(postgres_admin_url)],
        outputs=outputs,
        database_urls=[warehouse_url, dagster_url],
    )
    figures.secrets_searched += leaks.secrets
    figures.places_searched += leaks.places
    figures.bytes_searched += leaks.bytes_searched
    figures.secrets_found += len(leaks.found)
    return ChaosRun(exact=exact, faults=dict(faults), tokens_issued=tokens_issued, leaks=leaks)


def _token_renewals(log: list[dict[str, Any]]) -> int:
    """Tokens issued after an account's first: each replaced one that was expiring or expired."""
    issued: dict[str, int] = {}
    for record in log:
        if record["endpoint"] == "token" and record["status"] == 200:
            issued[record["account"]] = issued.get(record["account"], 0) + 1
    return sum(count - 1 for count in issued.values())


def test_one_account_day_under_chaos_is_exact_and_leaks_no_secret(
    tmp_path, make_database, postgres_admin_url, figures
):
    run = sync_under_chaos(
        tmp_path, make_database, postgres_admin_url, figures,
        accounts=["hostile-names"], days=1, campaign_count=30, seed=31,
    )

    assert run.exact == {"hostile-names|2026-11-20": True}
    assert sum(run.faults.values()) > 0
    assert run.leaks.found == []
    assert run.leaks.places > 20


@pytest.mark.slow
def test_ten_account_days_under_chaos_are_exact_and_leak_no_secret(
    tmp_path, make_database, postgres_admin_url, figures
):
    run = sync_under_chaos(
        tmp_path, make_database, postgres_admin_url, figures,
        accounts=list(DEMO_ACCOUNT_IDS), days=2, campaign_count=100, seed=32,
    )

    assert len(run.exact) == 10 and all(run.exact.values()), run.exact
    kinds = {kind.split(" (")[0] for kind, count in run.faults.items() if count}
    assert {"503", "hang", "token expired"} <= kinds, run.faults
    assert run.tokens_issued >= 20
    assert run.leaks.found == []
