"""What the chaos tests share: ground-truth comparison, Dagster runs, the figures they add up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import psycopg

from campaign_pipeline.assets import build_campaign_assets
from campaign_pipeline.io_managers import ParquetIOManager
from campaign_pipeline.partitions import AccountDay, build_campaign_partitions
from campaign_pipeline.resources import AdPlatformResource, WarehouseResource
from mock_api.accounts import demo_credentials
from mock_api.dataset import expected_campaigns

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSETS = build_campaign_assets(build_campaign_partitions(date(2026, 1, 1)))
CENT = Decimal("0.01")
SUBPROCESS_TIMEOUT_SECONDS = 300

Row = tuple[str, str, Decimal, int, int, int, datetime]


@dataclass
class Figures:
    """The counts the suite reports in docs/RESILIENCE.md, added up by the tests that ran."""

    faults_injected: Counter[str] = field(default_factory=Counter)
    account_days_synced: int = 0
    crashes_survived: int = 0
    crash_points: Counter[str] = field(default_factory=Counter)
    repeated_sync_requests: int = 0
    checkpointed_syncs_repeated: int = 0
    reader_snapshots: int = 0
    half_partitions_seen: int = 0
    bad_inputs_tried: int = 0
    bad_inputs_named: int = 0
    bad_configurations_tried: int = 0
    outages_survived: int = 0
    rows_expected: int = 0
    rows_lost: int = 0
    rows_duplicated: int = 0
    rows_stale: int = 0
    rows_unexpected: int = 0
    secrets_searched: int = 0
    places_searched: int = 0
    bytes_searched: int = 0
    secrets_found: int = 0
    tests: list[str] = field(default_factory=list)

    def add_faults(self, counts: Mapping[str, int]) -> None:
        """Add injected faults by kind."""
        self.faults_injected.update({kind: count for kind, count in counts.items() if count})

    def add_comparison(self, comparison: Comparison) -> None:
        """Add one account-day's comparison with the ground truth."""
        self.account_days_synced += 1
        self.rows_expected += comparison.expected
        self.rows_lost += len(comparison.lost)
        self.rows_duplicated += comparison.duplicated
        self.rows_stale += len(comparison.stale)
        self.rows_unexpected += len(comparison.unexpected)

    def as_json(self) -> dict[str, Any]:
        """Return the figures as plain JSON values."""
        data = {name: value for name, value in vars(self).items()}
        data["faults_injected"] = dict(sorted(self.faults_injected.items()))
        data["crash_points"] = dict(sorted(self.crash_points.items()))
        return data


@dataclass(frozen=True)
class Comparison:
    """How an account-day in the warehouse differs from the simulator's ground truth."""

    expected: int
    lost: list[str]
    duplicated: int
    stale: list[str]
    unexpected: list[str]

    @property
    def exact(self) -> bool:
        """Whether the warehouse holds exactly the ground truth."""
        return not (self.lost or self.duplicated or self.stale or self.unexpected)


def truth_rows(account_id: str, day: date, *, seed: int, campaign_count: int = 100) -> dict[str, Row]:
    """Return the rows the warehouse must hold for an account-day, by campaign id."""
    return {
        record["id"]: (
            record["name"],
            record["status"],
            Decimal(str(record["budget"])).quantize(CENT),
            record["impressions"],
            record["clicks"],
            record["conversions"],
            datetime.fromisoformat(record["created_at"].replace("Z", "+00:00")).astimezone(UTC),
        )
        for record in expected_campaigns(account_id, day, seed=seed, campaign_count=campaign_count)
    }


def stored_rows(url: str, account_id: str, day: date) -> list[tuple[str, Row]]:
    """Return every stored row of an account-day (duplicates included), as (campaign id, row)."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT m.campaign_id, c.name, m.status, m.budget, m.impressions, m.clicks, m.conversions, c.created_at"
            " FROM campaign_daily_metrics m JOIN campaigns c USING (account_id, campaign_id)"
            " WHERE m.account_id = %s AND m.metrics_date = %s ORDER BY m.campaign_id",
            (account_id, day),
        ).fetchall()
    return [(campaign_id, (name, status, budget, *metrics, created_at.astimezone(UTC)))
            for campaign_id, name, status, budget, *metrics, created_at in rows]


def compare(url: str, account_id: str, day: date, *, seed: int, campaign_count: int = 100) -> Comparison:
    """Compare the stored account-day with the ground truth of ``seed``."""
    truth = truth_rows(account_id, day, seed=seed, campaign_count=campaign_count)
    stored = stored_rows(url, account_id, day)
    counts = Counter(campaign_id for campaign_id, _ in stored)
    values = dict(stored)
    return Comparison(
        expected=len(truth),
        lost=sorted(set(truth) - set(values)),
        duplicated=sum(count - 1 for count in counts.values()),
        stale=sorted(cid for cid, row in values.items() if cid in truth and row != truth[cid]),
        unexpected=sorted(set(values) - set(truth)),
    )


def loaded_by(url: str, account_id: str, day: date) -> set[str]:
    """Return the run ids that wrote the stored rows of an account-day."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT DISTINCT loaded_by_run_id FROM campaign_daily_metrics WHERE account_id = %s AND metrics_date = %s",
            (account_id, day),
        ).fetchall()
    return {run_id for (run_id,) in rows}


def resources(api_url: str, warehouse_url: str, frames_dir: Path, **client_fields: Any) -> dict[str, Any]:
    """Return the run's resources as definitions.py builds them, with the test's client settings."""
    fields = {"rate_limit": 1000, "rate_window_seconds": 1.0, "read_timeout_seconds": 2.0, **client_fields}
    return {
        "ad_platform": AdPlatformResource(
            base_url=api_url, credentials=json.dumps(demo_credentials()), limiter_url=warehouse_url, **fields
        ),
        "warehouse": WarehouseResource(url=warehouse_url),
        "frame_io_manager": ParquetIOManager(base_dir=str(frames_dir)),
    }


def materialize(
    instance: dg.DagsterInstance, run_resources: Mapping[str, Any], account_id: str, day: date
) -> dg.ExecuteInProcessResult:
    """Materialize both assets of one account-day in this process, as a Dagster run."""
    return dg.materialize(
        ASSETS,
        instance=instance,
        resources=dict(run_resources),
        partition_key=str(AccountDay(account_id, day).partition_key),
        raise_on_error=False,
    )


def failure_reasons(result: dg.ExecuteInProcessResult) -> list[str]:
    """Return the full message of each step failure, looking past Dagster's retry wrapper."""
    reasons = []
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        error = event.event_specific_data.error
        while error.cls_name == "RetryRequestedFromPolicy" and error.cause is not None:
            error = error.cause
        reasons.append(error.message.strip())
    return reasons


def clean_env(home: Path, **overrides: str) -> dict[str, str]:
    """Return this process's environment without any project setting, plus ``overrides``."""
    prefixes = ("CAMPAIGN_PIPELINE_", "MOCK_API_", "DAGSTER_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    env["CAMPAIGN_PIPELINE_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def cli(*args: str, env: Mapping[str, str], timeout: float = SUBPROCESS_TIMEOUT_SECONDS) -> subprocess.CompletedProcess:
    """Run ``campaign-pipeline ARGS`` as a user would, and return what it printed.

    On timeout the whole process group is killed: ``run`` starts a worker per account.
    """
    command = [sys.executable, "-m", "campaign_pipeline.cli", *args]
    with subprocess.Popen(
        command, env=dict(env), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def postgres_logs(admin_url: str) -> list[Path]:
    """Return the server log of the test PostgreSQL when it is a local data directory (the embedded server)."""
    socket_dirs = parse_qs(urlsplit(admin_url).query).get("host", [])
    return [path for path in (Path(d) / "log" for d in socket_dirs) if path.is_file()]


def fault_counts(log: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """Count the faults a simulator's request log shows, by kind."""
    counts: Counter[str] = Counter()
    for record in log:
        endpoint, status = record.get("endpoint"), record.get("status")
        if record.get("hung"):
            counts[f"hang ({endpoint})"] += 1
        elif status == 503:
            counts[f"503 ({endpoint})"] += 1
        elif status == 401 and endpoint in ("list", "sync"):
            counts["expired or refused token (401)"] += 1
        elif status == 429:
            counts["429 rate limited"] += 1
    return counts
