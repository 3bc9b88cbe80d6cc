from __future__ import annotations

import os

import pytest

from campaign_pipeline.backfill import BackfillLaunchError, launch_backfill


def test_a_backfill_dagster_cannot_launch_is_one_error_naming_its_exit_status(tmp_path):
    env = dict(os.environ, DAGSTER_HOME=str(tmp_path))
    missing = tmp_path / "no-such-workspace.yaml"

    with pytest.raises(BackfillLaunchError) as excinfo:
        launch_backfill("campaign_sync_job", ["acme|2026-11-27"], missing, env)

    assert str(excinfo.value) == (
        "dagster job backfill failed (exit status 2): "
        f"Error: Invalid value for '--workspace' / '-w': Path '{missing}' does not exist."
    )
