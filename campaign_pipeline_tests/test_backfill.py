from __future__ import annotations

import os

import pytest

from campaign_pipeline.backfill import BackfillLaunchError, launch_backfill, partition_key_batches


def test_a_backfill_dagster_cannot_launch_is_one_error_naming_its_exit_status(tmp_path):
    env = dict(os.environ, DAGSTER_HOME=str(tmp_path))
    missing = tmp_path / "no-such-workspace.yaml"

    with pytest.raises(BackfillLaunchError) as excinfo:
        launch_backfill("campaign_sync_job", ["acme|2026-11-27"], missing, env)

    assert str(excinfo.value) == (
        "dagster job backfill failed (exit status 2): "
        f"Error: Invalid value for '--workspace' / '-w': Path '{missing}' does not exist."
    )


def _keys(count: int) -> list[str]:
    return [f"account-{number:05d}|2026-11-27" for number in range(count)]


def test_partition_keys_are_split_into_arguments_that_fit_in_order():
    keys = _keys(7)  # 24 characters each

    batches = partition_key_batches(keys, max_argument_chars=50)

    assert batches == [keys[0:2], keys[2:4], keys[4:6], keys[6:7]]
    assert all(len(",".join(batch)) <= 50 for batch in batches)
    assert partition_key_batches(keys, max_argument_chars=10_000) == [keys]


def test_keys_past_the_kernels_argument_limit_are_an_error_not_an_oserror(tmp_path):
    env = dict(os.environ, DAGSTER_HOME=str(tmp_path))
    keys = _keys(8_000)  # 200,000 characters joined, past Linux's 131,072 per argument

    with pytest.raises(BackfillLaunchError) as unsplit:
        launch_backfill("campaign_sync_job", keys, tmp_path / "workspace.yaml", env, max_argument_chars=10**6)
    with pytest.raises(BackfillLaunchError) as split:
        launch_backfill("campaign_sync_job", keys, tmp_path / "workspace.yaml", env)

    assert str(unsplit.value) == "dagster job backfill failed (not started): Argument list too long"
    # Split, the first backfill's command starts, and fails on the missing workspace instead.
    assert str(split.value).startswith("dagster job backfill failed (exit status 2): Error: Invalid value for '--workspace'")
