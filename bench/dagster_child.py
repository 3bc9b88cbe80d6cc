"""One account-day materialized through Dagster in a fresh process, as ``campaign-pipeline run`` does.

The benchmarks start this module as a child process (``python -m
bench.dagster_child SPEC.json``) so that its start-up, its peak memory and its
Dagster run are its own. The spec names the partition, the resources' fields
and how to run:

- ``materialize``: ``dagster.materialize()`` of the real assets with the
  resources built from the spec (in-process executor);
- ``job``: ``dagster.execute_job()`` of the project's job from
  ``build_definitions(Settings.from_env())``, with its in-process executor or
  Dagster's default multiprocess executor (one process per step, what an asset
  materialization launched from the UI's asset page uses).

It writes a JSON result: the process's start time, the run's timeline (see
:func:`bench.harness.run_timeline`), the assets' metadata and the process's
peak resident memory.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import psutil

from bench.harness import run_timeline
from campaign_pipeline import settings as setting_names
from campaign_pipeline.assets import build_campaign_assets
from campaign_pipeline.definitions import CAMPAIGN_SYNC_JOB, build_definitions
from campaign_pipeline.io_managers import ParquetIOManager
from campaign_pipeline.partitions import ACCOUNT_DIMENSION, AccountDay, build_campaign_partitions
from campaign_pipeline.resources import AdPlatformResource, WarehouseResource
from campaign_pipeline.settings import Settings

IMPORTED_AT = time.time()


def partition_start(day: date) -> date:
    """The first day of the benchmark's partitions: a week before the day synced."""
    return day - timedelta(days=7)


def materialize(spec: dict[str, Any], instance: dg.DagsterInstance, account_day: AccountDay) -> str:
    """Materialize both assets of ``account_day`` with ``dagster.materialize()``; return the run id."""
    assets = build_campaign_assets(build_campaign_partitions(partition_start(account_day.day)))
    resources = {
        "ad_platform": AdPlatformResource(
            base_url=spec["api_url"],
            credentials=dg.EnvVar(setting_names.CREDENTIALS),
            limiter_url=dg.EnvVar(setting_names.WAREHOUSE_URL),
            **spec["ad_platform"],
        ),
        "warehouse": WarehouseResource(url=dg.EnvVar(setting_names.WAREHOUSE_URL)),
        "frame_io_manager": ParquetIOManager(base_dir=spec["frames_dir"]),
    }
    result = dg.materialize(
        assets, instance=instance, resources=resources, partition_key=str(account_day), raise_on_error=False
    )
    return result.run_id


def in_process_sync_job() -> dg.JobDefinition:
    """The project's ``campaign_sync_job`` (in-process executor), settings from the environment."""
    return build_definitions(Settings.from_env()).resolve_job_def(CAMPAIGN_SYNC_JOB)


def multiprocess_sync_job() -> dg.JobDefinition:
    """The same job under Dagster's default executor: one process per step."""
    settings = Settings.from_env()
    defs = build_definitions(settings)
    job = dg.define_asset_job(
        f"{CAMPAIGN_SYNC_JOB}_multiprocess",
        selection=defs.assets,
        partitions_def=build_campaign_partitions(settings.partition_start_date),
        executor_def=dg.multiprocess_executor,
    )
    return dg.Definitions(assets=defs.assets, resources=defs.resources, jobs=[job]).resolve_job_def(job.name)


def execute(spec: dict[str, Any], instance: dg.DagsterInstance, account_day: AccountDay) -> str:
    """Run the project's job definitions with ``dagster.execute_job()``; return the run id."""
    factory = multiprocess_sync_job if spec["executor"] == "multiprocess" else in_process_sync_job
    tags = {
        "dagster/partition": str(account_day),
        f"dagster/partition/{ACCOUNT_DIMENSION}": account_day.account_id,
        "dagster/partition/date": account_day.day.isoformat(),
    }
    with dg.execute_job(dg.reconstructable(factory), instance=instance, tags=tags, raise_on_error=False) as result:
        return result.run_id


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the spec's account-day; return the figures this process can see."""
    account_day = AccountDay(spec["account_id"], date.fromisoformat(spec["day"]))
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions(ACCOUNT_DIMENSION, [account_day.account_id])
    called = time.time()
    run_id = (execute if spec["mode"] == "job" else materialize)(spec, instance, account_day)
    returned = time.time()
    return {
        "process_started": psutil.Process().create_time(),
        "imported": IMPORTED_AT,
        "called": called,
        "returned": returned,
        "run_id": run_id,
        "timeline": run_timeline(instance, run_id),
        "metadata": _materialization_metadata(instance, run_id),
        "errors": _step_errors(instance, run_id),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "children_peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
    }


def _materialization_metadata(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, Any]]:
    metadata: dict[str, dict[str, Any]] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        assert materialization is not None
        metadata[materialization.asset_key.to_user_string()] = {
            key: value.value
            for key, value in materialization.metadata.items()
            if isinstance(value.value, (int, float, str, dict, list)) and key != "preview"
        }
    return metadata


def _step_errors(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [
        entry.dagster_event.event_specific_data.error.message.strip().splitlines()[0]
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        if entry.dagster_event and entry.dagster_event.event_specific_data.error
    ]


def main(spec_path: str) -> None:
    """Read the spec, run it, write the result where the spec says."""
    spec = json.loads(Path(spec_path).read_text())
    Path(spec["result_path"]).write_text(json.dumps(run(spec)))


if __name__ == "__main__":
    # Run through the package's module, so that Dagster reconstructs the jobs as
    # ``bench.dagster_child.*`` in step processes rather than from ``__main__``.
    from bench.dagster_child import main as package_main

    package_main(sys.argv[1])
