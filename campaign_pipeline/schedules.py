"""The daily schedule: one run per enabled account for yesterday (UTC)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from campaign_pipeline.accounts import load_registry
from campaign_pipeline.partitions import ACCOUNT_DIMENSION, AccountDay
from campaign_pipeline.settings import SCHEDULE_CRON, SettingsError


def check_cron(cron: str) -> None:
    """Raise :class:`SettingsError` naming the variable when Dagster would refuse ``cron`` as a schedule.

    Dagster's own error names neither the variable nor what it expects, and it would come only when
    the code location loads, in every run's process.
    """
    try:
        dg.ScheduleDefinition(name="cron_check", cron_schedule=cron, job_name="cron_check")
    except dg.DagsterInvalidDefinitionError:
        raise SettingsError(
            f"{SCHEDULE_CRON} must be a cron expression of 5 fields (minute hour day month weekday, "
            f"e.g. '15 2 * * *') or a macro such as '@daily', not {cron!r}."
        ) from None


def build_daily_schedule(
    job: dg.UnresolvedAssetJobDefinition,
    *,
    cron: str,
    accounts_file: Path,
    start_date: date,
    lookback_days: int = 0,
) -> dg.ScheduleDefinition:
    """Return ``daily_campaign_sync_schedule``, running once the daemon is up.

    Each tick requests yesterday's partition of every enabled account, plus
    the ``lookback_days`` days before it so that late data is picked up. An
    account must be both in the registry (enabled) and in the account
    dimension (added by ``account_registry_sensor``).
    """
    check_cron(cron)

    @dg.schedule(
        name="daily_campaign_sync_schedule",
        cron_schedule=cron,
        job=job,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def daily_campaign_sync_schedule(context: dg.ScheduleEvaluationContext):
        tick_day = context.scheduled_execution_time.date()
        known = set(context.instance.get_dynamic_partitions(ACCOUNT_DIMENSION))
        enabled = [account.id for account in load_registry(accounts_file) if account.enabled and account.id in known]
        if not enabled:
            return dg.SkipReason("No enabled account is in the account dimension yet.")
        return [
            dg.RunRequest(run_key=f"{tick_day.isoformat()}:{account_day}", partition_key=account_day.partition_key)
            for account_day in scheduled_account_days(tick_day, enabled, start_date, lookback_days)
        ]

    return daily_campaign_sync_schedule


def scheduled_account_days(
    tick_day: date, account_ids: list[str], start_date: date, lookback_days: int
) -> list[AccountDay]:
    """The partitions a tick on ``tick_day`` requests, newest day first."""
    days = [tick_day - timedelta(days=offset) for offset in range(1, lookback_days + 2)]
    return [
        AccountDay(account_id, day) for day in days if day >= start_date for account_id in sorted(account_ids)
    ]
