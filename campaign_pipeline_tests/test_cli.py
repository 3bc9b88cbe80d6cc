"""The ``campaign-pipeline`` command as a user runs it: a real process, real servers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psutil
import psycopg
import pytest

from campaign_pipeline.accounts import AccountConfigError
from campaign_pipeline.cli import DayOutOfRangeError, check_account_partition, check_partition_day
from mock_api.accounts import DEMO_ACCOUNT_IDS
from mock_api.dataset import expected_campaigns

DAY = date(2026, 11, 27)


def _clean_env(home: Path, **overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CAMPAIGN_PIPELINE_", "MOCK_API_", "DAGSTER_"))}
    env["CAMPAIGN_PIPELINE_HOME"] = str(home)
    env.update(overrides)
    return env


def _cli(*args: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "campaign_pipeline.cli", *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )


def _warehouse_rows(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT m.account_id, m.campaign_id, c.name, m.impressions, m.clicks, m.conversions"
            " FROM campaign_daily_metrics m JOIN campaigns c USING (account_id, campaign_id)"
            " WHERE m.metrics_date = %s ORDER BY m.account_id, m.campaign_id",
            (DAY,),
        ).fetchall()
    by_account: dict[str, list[tuple]] = {}
    for account_id, *rest in rows:
        by_account.setdefault(account_id, []).append(tuple(rest))
    return by_account


def _ground_truth(seed: int = 0) -> dict[str, list[tuple]]:
    return {
        account_id: sorted(
            (r["id"], r["name"], r["impressions"], r["clicks"], r["conversions"])
            for r in expected_campaigns(account_id, DAY, seed=seed)
        )
        for account_id in sorted(DEMO_ACCOUNT_IDS)
    }


def test_run_with_no_settings_syncs_every_demo_account_exactly(tmp_path):
    env = _clean_env(tmp_path / "home")

    completed = _cli("run", "--date", DAY.isoformat(), env=env)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "(embedded)" in completed.stdout
    for account_id in DEMO_ACCOUNT_IDS:
        assert f"  {account_id:<20} ok " in completed.stdout
        assert "campaigns synced: 100/100" in completed.stdout
    socket_dir = tmp_path / "home" / "pgdata"
    url = f"postgresql://postgres@/campaign_warehouse?host={socket_dir}"
    assert _warehouse_rows(url) == _ground_truth()
    _cli("db", "stop", env=env)


def test_second_run_changes_nothing(make_database, tmp_path):
    env = _clean_env(
        tmp_path / "home",
        CAMPAIGN_PIPELINE_WAREHOUSE_URL=make_database("cliwh"),
        CAMPAIGN_PIPELINE_DAGSTER_STORAGE_URL=make_database("clidg"),
        CAMPAIGN_PIPELINE_SIMULATOR_PROFILE="fast",
    )
    first = _cli("run", "--date", DAY.isoformat(), env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    rows_after_first = _warehouse_rows(env["CAMPAIGN_PIPELINE_WAREHOUSE_URL"])

    second = _cli("run", "--date", DAY.isoformat(), env=env)

    assert second.returncode == 0, second.stdout + second.stderr
    assert "(embedded)" not in second.stdout
    assert _warehouse_rows(env["CAMPAIGN_PIPELINE_WAREHOUSE_URL"]) == rows_after_first == _ground_truth()
    summaries = sorted((tmp_path / "home" / "logs" / DAY.isoformat()).glob("*.summary.json"))
    assert len(summaries) == len(DEMO_ACCOUNT_IDS)
    for path in summaries:
        metadata = json.loads(path.read_text())["metadata"]
        assert metadata["campaign_daily_metrics.unchanged"] == 100
        assert metadata["campaign_daily_metrics.inserted"] == 0


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"CAMPAIGN_PIPELINE_WAREHOUSE_URL": "postgresql://etl:s3cret-pw@127.0.0.1:1/wh",
             "CAMPAIGN_PIPELINE_DAGSTER_STORAGE_URL": "postgresql://etl:s3cret-pw@127.0.0.1:1/dg"},
            "campaign-pipeline: Cannot connect to the PostgreSQL database of CAMPAIGN_PIPELINE_WAREHOUSE_URL "
            "(postgresql://etl:***@127.0.0.1:1/wh)",
        ),
        (
            {"CAMPAIGN_PIPELINE_API_URL": "http://127.0.0.1:9", "CAMPAIGN_PIPELINE_CREDENTIALS": ""},
            "campaign-pipeline: CAMPAIGN_PIPELINE_CREDENTIALS is not set: it must hold the accounts' credentials as JSON.",
        ),
        (
            {"CAMPAIGN_PIPELINE_RATE_LIMIT": "lots"},
            "campaign-pipeline: CAMPAIGN_PIPELINE_RATE_LIMIT must be a whole number, not 'lots'.",
        ),
        (
            {"CAMPAIGN_PIPELINE_SCHEDULE_CRON": "at 2am"},
            "campaign-pipeline: CAMPAIGN_PIPELINE_SCHEDULE_CRON must be a cron expression of 5 fields",
        ),
    ],
)
def test_bad_setup_is_one_sentence(tmp_path, overrides, expected):
    env = _clean_env(tmp_path / "home", CAMPAIGN_PIPELINE_ACCOUNTS_FILE=str(_demo_registry()), **overrides)

    completed = _cli("run", env=env, timeout=60)

    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [completed.stderr.strip()]
    assert completed.stderr.startswith(expected)
    assert "s3cret-pw" not in completed.stderr + completed.stdout


def test_run_refuses_a_day_without_a_partition_before_starting_anything(tmp_path):
    home = tmp_path / "home"
    env = _clean_env(home, CAMPAIGN_PIPELINE_PARTITION_START_DATE="2026-03-01")

    too_early = _cli("run", "--date", "2026-02-28", env=env, timeout=60)
    before = datetime.now(UTC).date()
    tomorrow = before + timedelta(days=1)
    not_over = _cli("run", "--date", tomorrow.isoformat(), env=env, timeout=60)
    after = datetime.now(UTC).date()

    assert (too_early.returncode, too_early.stderr) == (
        2,
        "campaign-pipeline: --date 2026-02-28: the daily partitions start on 2026-03-01 "
        "(set CAMPAIGN_PIPELINE_PARTITION_START_DATE for earlier days).\n",
    )
    # Midnight UTC may fall between the two clock readings.
    assert not_over.returncode == 2
    assert not_over.stderr in {
        f"campaign-pipeline: --date {tomorrow.isoformat()}: a day has its partition once it is over in UTC; "
        f"the latest is {(today - timedelta(days=1)).isoformat()}.\n"
        for today in (before, after)
    }
    assert not home.exists(), "nothing is set up for a refused day"


def test_the_partitions_days_run_from_the_start_date_to_yesterday():
    start, today = date(2026, 3, 1), date(2026, 12, 2)

    for day in (start, date(2026, 12, 1)):
        check_partition_day(day, start, today=today)
    for day in (date(2026, 2, 28), today):
        with pytest.raises(DayOutOfRangeError, match=f"^--date {day.isoformat()}: "):
            check_partition_day(day, start, today=today)


@pytest.mark.parametrize(
    ("known", "listed"),
    [
        ([], "none yet"),
        (["globex", "acme-retail"], "acme-retail, globex"),
        ([f"account-{n}" for n in range(7, 0, -1)], "account-1, account-2, account-3, account-4, account-5, ..."),
    ],
)
def test_a_backfill_filter_on_an_account_without_partitions_names_the_known_ones(known, listed):
    check_account_partition("acme-retail", ["acme-retail"])

    with pytest.raises(AccountConfigError) as raised:
        check_account_partition("acme-retial", known)

    assert str(raised.value) == f"--account acme-retial: no account partition of that id (known: {listed})."


def test_backfill_refuses_an_unknown_account_in_one_sentence(make_database, tmp_path):
    env = _clean_env(
        tmp_path / "home",
        CAMPAIGN_PIPELINE_WAREHOUSE_URL=make_database("clibfwh"),
        CAMPAIGN_PIPELINE_DAGSTER_STORAGE_URL=make_database("clibfdg"),
    )

    completed = _cli("backfill", "--failed", "--dry-run", "--account", "acme-retial", env=env, timeout=120)

    assert (completed.returncode, completed.stderr) == (
        2, "campaign-pipeline: --account acme-retial: no account partition of that id (known: none yet).\n"
    )


@pytest.mark.parametrize(("option", "value"), [("--port", "70000"), ("--port", "0"), ("--code-server-port", "http")])
def test_dev_refuses_a_value_that_is_not_a_port(tmp_path, option, value):
    completed = _cli("dev", option, value, env=_clean_env(tmp_path / "home"), timeout=60)

    assert completed.returncode == 2
    assert completed.stderr.splitlines()[-1] == (
        f"campaign-pipeline dev: error: argument {option}: '{value}' is not a TCP port (1-65535)"
    )


def test_dev_refuses_a_port_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        completed = _cli("dev", "--port", str(port), env=_clean_env(tmp_path / "home"), timeout=60)
    assert completed.returncode == 2
    assert completed.stderr.strip() == (
        f"campaign-pipeline: Port {port} (--port) is already in use; choose another with --port."
    )


def _demo_registry() -> Path:
    return Path(__file__).resolve().parents[1] / "demo" / "accounts.toml"


def _command(process: psutil.Process) -> str:
    """The process's command line, or "" once it has exited: a short-lived child can end between listing and reading."""
    try:
        return " ".join(process.cmdline())
    except psutil.NoSuchProcess:  # ZombieProcess is a NoSuchProcess too
        return ""


def test_sigterm_stops_every_account_sync_it_started(make_database, tmp_path):
    env = _clean_env(
        tmp_path / "home",
        CAMPAIGN_PIPELINE_WAREHOUSE_URL=make_database("cliintwh"),
        CAMPAIGN_PIPELINE_DAGSTER_STORAGE_URL=make_database("cliintdg"),
        # The contract's own figures: 10 requests a minute, so the syncs are still running when stopped.
        CAMPAIGN_PIPELINE_SIMULATOR_PROFILE="original",
    )
    parent = subprocess.Popen(
        [sys.executable, "-m", "campaign_pipeline.cli", "run", "--date", DAY.isoformat()],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline and len(workers) < len(DEMO_ACCOUNT_IDS):
            time.sleep(0.5)
            workers = [
                child for child in psutil.Process(parent.pid).children(recursive=True)
                if "sync-partition" in _command(child)
            ]
        assert len(workers) == len(DEMO_ACCOUNT_IDS), "the account syncs did not all start"

        parent.send_signal(signal.SIGTERM)
        stdout, stderr = parent.communicate(timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()

    assert parent.returncode == 130, stdout + stderr
    assert f"Interrupted: stopping {len(DEMO_ACCOUNT_IDS)} running account sync(s)" in stderr
    gone, alive = psutil.wait_procs(workers, timeout=5)
    assert alive == []
