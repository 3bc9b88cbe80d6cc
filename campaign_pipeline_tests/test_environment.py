from __future__ import annotations

import os

from campaign_pipeline import environment
from campaign_pipeline.database import sqlalchemy_psycopg2_url
from campaign_pipeline.settings import Settings


def test_dagsters_processes_get_the_paths_this_directory_resolved(make_database, tmp_path, monkeypatch):
    here, elsewhere = tmp_path / "where-the-command-ran", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(here)
    environ = {
        "PATH": os.environ["PATH"],
        "CAMPAIGN_PIPELINE_WAREHOUSE_URL": make_database("env_wh"),
        "CAMPAIGN_PIPELINE_DAGSTER_STORAGE_URL": make_database("env_dagster"),
        "CAMPAIGN_PIPELINE_ACCOUNTS_FILE": "registry/accounts.toml",
    }

    prepared = environment.prepare(environ, api=False)

    assert prepared.env["CAMPAIGN_PIPELINE_HOME"] == str(here / ".campaign_pipeline")
    assert prepared.env["CAMPAIGN_PIPELINE_ACCOUNTS_FILE"] == str(here / "registry" / "accounts.toml")
    assert prepared.env["DAGSTER_HOME"] == str(here / ".campaign_pipeline" / "dagster_home")
    assert prepared.env[environment.DAGSTER_PG_URL] == sqlalchemy_psycopg2_url(
        environ["CAMPAIGN_PIPELINE_DAGSTER_STORAGE_URL"]
    )
    # The code server and daemon start in the checkout; they must read the same files.
    monkeypatch.chdir(elsewhere)
    seen_elsewhere = Settings.from_env(prepared.env)
    assert (seen_elsewhere.home, seen_elsewhere.accounts_file) == (prepared.settings.home, prepared.settings.accounts_file)
