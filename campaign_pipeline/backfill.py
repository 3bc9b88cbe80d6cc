"""Find the account-days whose latest attempt failed, and backfill exactly those.

The backfill is launched with Dagster's own ``dagster job backfill`` against
the project's workspace, so it is a real backfill of ``campaign_sync_job``:
the UI lists it under Backfills, its runs go through the run queue (one run
per account at a time) and carry the backfill's id.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import dagster as dg
from dagster._core.storage.partition_status_cache import AssetPartitionStatus

from campaign_pipeline.partitions import ACCOUNT_DIMENSION, account_day_from_key

SYNCED_ASSETS = (dg.AssetKey("campaign_snapshots"), dg.AssetKey("campaign_daily_metrics"))


def failed_partitions(
    instance: dg.DagsterInstance,
    partitions_def: dg.MultiPartitionsDefinition,
    *,
    since: date | None = None,
    account_id: str | None = None,
    today: date | None = None,
) -> list[str]:
    """Partition keys (``account|date``) where either asset's latest attempt failed, sorted."""
    accounts = instance.get_dynamic_partitions(ACCOUNT_DIMENSION)
    if account_id is not None:
        accounts = [account for account in accounts if account == account_id]
    if not accounts:
        return []
    keys = [
        str(key)
        for key in partitions_def.get_partition_keys(dynamic_partitions_store=instance)
        if _selected(key, accounts, since, today)
    ]
    failed: set[str] = set()
    for asset_key in SYNCED_ASSETS:
        statuses = instance.get_status_by_partition(asset_key, keys, partitions_def) or {}
        failed.update(key for key, status in statuses.items() if status == AssetPartitionStatus.FAILED)
    return sorted(failed)


class BackfillLaunchError(RuntimeError):
    """``dagster job backfill`` did not launch the backfill; the message is its last line of errors."""


def launch_backfill(job_name: str, partition_keys: Sequence[str], workspace: Path, env: dict[str, str]) -> str:
    """Launch one backfill of ``job_name`` over ``partition_keys``; return Dagster's output.

    Raises:
        BackfillLaunchError: Dagster's command failed; nothing was launched.
    """
    dagster = str(Path(sys.executable).with_name("dagster"))
    completed = subprocess.run(
        [dagster, "job", "backfill", "-w", str(workspace), "-j", job_name,
         "--partitions", ",".join(partition_keys), "--noprompt"],
        env=env, capture_output=True, text=True, check=False,
    )
    if completed.returncode != 0:
        last_line = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise BackfillLaunchError(f"dagster job backfill failed (exit status {completed.returncode}): {last_line}")
    return completed.stdout


def _selected(key: dg.MultiPartitionKey, accounts: Sequence[str], since: date | None, today: date | None) -> bool:
    account_day = account_day_from_key(key)
    if account_day.account_id not in accounts:
        return False
    if since is not None and account_day.day < since:
        return False
    return today is None or account_day.day <= today
