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
# Linux refuses one command-line argument longer than 128 KiB (MAX_ARG_STRLEN); the keys are one.
MAX_PARTITIONS_ARGUMENT_CHARS = 100_000


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
    """``dagster job backfill`` did not launch a backfill; the message is its last line of errors."""


def launch_backfill(
    job_name: str,
    partition_keys: Sequence[str],
    workspace: Path,
    env: dict[str, str],
    *,
    max_argument_chars: int = MAX_PARTITIONS_ARGUMENT_CHARS,
) -> str:
    """Launch backfills of ``job_name`` over ``partition_keys``; return Dagster's output.

    The keys travel as one command-line argument, which Linux caps at 128 KiB,
    so past ``max_argument_chars`` they are split into several backfills (about
    4,000 account-days each), launched one after the other.

    Raises:
        BackfillLaunchError: Dagster's command failed; the message says which
            backfills, if any, were launched before it.
    """
    dagster = str(Path(sys.executable).with_name("dagster"))
    batches = partition_key_batches(partition_keys, max_argument_chars)
    outputs: list[str] = []
    for number, batch in enumerate(batches, start=1):
        try:
            completed = subprocess.run(
                [dagster, "job", "backfill", "-w", str(workspace), "-j", job_name,
                 "--partitions", ",".join(batch), "--noprompt"],
                env=env, capture_output=True, text=True, check=False,
            )
            failure = None if completed.returncode == 0 else (
                f"exit status {completed.returncode}",
                (completed.stderr.strip().splitlines() or ["no output"])[-1],
            )
        except OSError as error:
            failure = ("not started", error.strerror or str(error))
        if failure is not None:
            launched = sum(len(done) for done in batches[: number - 1])
            before = f"; {number - 1} of {len(batches)} backfills ({launched} partitions) were launched" if launched else ""
            raise BackfillLaunchError(f"dagster job backfill failed ({failure[0]}): {failure[1]}{before}")
        outputs.append(completed.stdout.strip())
    return "\n".join(outputs)


def partition_key_batches(partition_keys: Sequence[str], max_argument_chars: int) -> list[list[str]]:
    """Split ``partition_keys`` into runs whose comma-joined text fits ``max_argument_chars``, in order."""
    batches: list[list[str]] = []
    length = 0
    for key in partition_keys:
        if batches and length + 1 + len(key) <= max_argument_chars:
            batches[-1].append(key)
            length += 1 + len(key)
        else:
            batches.append([key])
            length = len(key)
    return batches


def _selected(key: dg.MultiPartitionKey, accounts: Sequence[str], since: date | None, today: date | None) -> bool:
    account_day = account_day_from_key(key)
    if account_day.account_id not in accounts:
        return False
    if since is not None and account_day.day < since:
        return False
    return today is None or account_day.day <= today
