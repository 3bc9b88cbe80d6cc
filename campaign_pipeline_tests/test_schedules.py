from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg
import pytest

from campaign_pipeline.partitions import AccountDay, build_campaign_partitions
from campaign_pipeline.schedules import build_daily_schedule, scheduled_account_days
from campaign_pipeline.settings import SettingsError


def _job(start: date):
    @dg.asset(partitions_def=build_campaign_partitions(start))
    def placeholder() -> None:
        return None

    return placeholder, dg.define_asset_job("campaign_sync_job", selection=[placeholder])


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, when: datetime):
    repository = defs.get_repository_def()
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when, repository_def=repository)
    return repository.get_schedule_def("daily_campaign_sync_schedule").evaluate_tick(context)


def test_lookback_covers_yesterday_and_the_days_before_not_before_start():
    days = scheduled_account_days(date(2026, 11, 28), ["b", "a"], start_date=date(2026, 11, 26), lookback_days=3)
    assert days == [
        AccountDay("a", date(2026, 11, 27)),
        AccountDay("b", date(2026, 11, 27)),
        AccountDay("a", date(2026, 11, 26)),
        AccountDay("b", date(2026, 11, 26)),
    ]


def test_tick_requests_one_run_per_enabled_known_account_for_yesterday(tmp_path):
    registry = tmp_path / "accounts.toml"
    registry.write_text(
        '[[accounts]]\nid = "acme"\n[[accounts]]\nid = "globex"\n'
        '[[accounts]]\nid = "paused"\nenabled = false\n[[accounts]]\nid = "not-yet-added"\n'
    )
    asset, job = _job(date(2026, 1, 1))
    schedule = build_daily_schedule(job, cron="15 2 * * *", accounts_file=registry, start_date=date(2026, 1, 1))
    defs = dg.Definitions(assets=[asset], jobs=[job], schedules=[schedule])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("account", ["acme", "globex", "paused"])
        requests = _tick(defs, instance, datetime(2026, 11, 28, 2, 15, tzinfo=UTC)).run_requests
    assert [(r.run_key, str(r.partition_key)) for r in requests] == [
        ("2026-11-28:acme|2026-11-27", "acme|2026-11-27"),
        ("2026-11-28:globex|2026-11-27", "globex|2026-11-27"),
    ]
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.execution_timezone == "UTC"


def test_tick_skips_when_no_account_is_known(tmp_path):
    registry = tmp_path / "accounts.toml"
    registry.write_text('[[accounts]]\nid = "acme"\n')
    asset, job = _job(date(2026, 1, 1))
    schedule = build_daily_schedule(job, cron="0 3 * * *", accounts_file=registry, start_date=date(2026, 1, 1))
    defs = dg.Definitions(assets=[asset], jobs=[job], schedules=[schedule])
    with dg.instance_for_test() as instance:
        result = _tick(defs, instance, datetime(2026, 11, 28, 3, tzinfo=UTC))
    assert result.run_requests == []
    assert result.skip_message == "No enabled account is in the account dimension yet."


@pytest.mark.parametrize("cron", ["99 99 * * *", "every day", "0 0 30 2 *", "* * * * * *"])
def test_a_cron_dagster_refuses_is_a_settings_error_naming_the_variable(tmp_path, cron):
    _, job = _job(date(2026, 1, 1))

    with pytest.raises(SettingsError) as raised:
        build_daily_schedule(job, cron=cron, accounts_file=tmp_path / "accounts.toml", start_date=date(2026, 1, 1))

    assert str(raised.value) == (
        "CAMPAIGN_PIPELINE_SCHEDULE_CRON must be a cron expression of 5 fields (minute hour day month weekday, "
        f"e.g. '15 2 * * *') or a macro such as '@daily', not {cron!r}."
    )
