"""The code location: assembles partitions, assets, job, schedule, sensors and resources."""

from __future__ import annotations

import dagster as dg

from campaign_pipeline import settings as setting_names
from campaign_pipeline.assets import build_campaign_assets
from campaign_pipeline.io_managers import ParquetIOManager
from campaign_pipeline.partitions import build_campaign_partitions
from campaign_pipeline.resources import AdPlatformResource, WarehouseResource
from campaign_pipeline.schedules import build_daily_schedule
from campaign_pipeline.sensors import (
    build_account_registry_sensor,
    build_final_failure_sensor,
    build_lost_retry_sensor,
)
from campaign_pipeline.settings import Settings

CAMPAIGN_SYNC_JOB = "campaign_sync_job"


def build_definitions(settings: Settings) -> dg.Definitions:
    """Build the definitions from non-secret ``settings``; secrets stay ``EnvVar``s read at run time."""
    partitions_def = build_campaign_partitions(settings.partition_start_date)
    assets = build_campaign_assets(
        partitions_def, step_retries=settings.step_retries, step_retry_delay_seconds=settings.step_retry_delay_seconds
    )
    # Both steps in one process: a second process per step would cost seconds of
    # start-up per partition and buy nothing, since each step is I/O bound.
    campaign_sync_job = dg.define_asset_job(
        CAMPAIGN_SYNC_JOB,
        selection=assets,
        partitions_def=partitions_def,
        executor_def=dg.in_process_executor,
        description="Sync one account-day: pull and sync every campaign, then load it into the warehouse.",
    )
    return dg.Definitions(
        assets=assets,
        jobs=[campaign_sync_job],
        schedules=[
            build_daily_schedule(
                campaign_sync_job,
                cron=settings.schedule_cron,
                accounts_file=settings.accounts_file,
                start_date=settings.partition_start_date,
                lookback_days=settings.lookback_days,
            )
        ],
        sensors=[
            build_account_registry_sensor(settings.accounts_file),
            build_final_failure_sensor(settings.alert_webhook_url),
            build_lost_retry_sensor(settings.alert_webhook_url),
        ],
        resources={
            "ad_platform": AdPlatformResource(
                base_url=dg.EnvVar(setting_names.API_URL),
                credentials=dg.EnvVar(setting_names.CREDENTIALS),
                limiter_url=dg.EnvVar(setting_names.WAREHOUSE_URL),
                rate_limit=settings.rate_limit,
                rate_window_seconds=settings.rate_window_seconds,
                sync_workers=settings.sync_workers,
                read_timeout_seconds=settings.read_timeout_seconds,
                hang_detection_multiplier=settings.hang_detection_multiplier,
                transient_retries=settings.transient_retries,
                partition_deadline_seconds=settings.partition_deadline_seconds,
            ),
            "warehouse": WarehouseResource(url=dg.EnvVar(setting_names.WAREHOUSE_URL)),
            "frame_io_manager": ParquetIOManager(base_dir=str(settings.home / "frames")),
        },
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded by Dagster (workspace.yaml, ``dg``): settings are read when the code location loads."""
    return build_definitions(Settings.from_env())
