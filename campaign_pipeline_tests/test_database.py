from __future__ import annotations

import psycopg
import pytest

from campaign_pipeline import database
from campaign_pipeline.settings import Settings


def test_embedded_server_is_reused_then_restarted_after_stop(tmp_path):
    data_dir = tmp_path / "pgdata"
    first_url = database.start_embedded_server(data_dir)
    started_at = _postmaster_start_time(first_url)

    assert database.start_embedded_server(data_dir) == first_url
    assert _postmaster_start_time(first_url) == started_at
    with psycopg.connect(first_url) as conn:
        assert int(conn.execute("SHOW max_connections").fetchone()[0]) == database.EMBEDDED_MAX_CONNECTIONS

    assert database.stop_embedded_server(data_dir) is True
    assert database.stop_embedded_server(data_dir) is False
    second_url = database.start_embedded_server(data_dir)
    assert _postmaster_start_time(second_url) > started_at
    database.stop_embedded_server(data_dir)


def test_embedded_server_gets_the_bulk_load_settings_without_restarting_when_shared(tmp_path):
    data_dir = tmp_path / "pgdata"
    url = database.start_embedded_server(data_dir)
    assert _settings(url) == database.EMBEDDED_SERVER_SETTINGS
    # A server someone else started with other settings, and is using.
    with psycopg.connect(url, autocommit=True) as conn:
        for name, value in (("shared_buffers", "128MB"), ("max_wal_size", "1GB")):
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    database.stop_embedded_server(data_dir)
    database._pgserver().get_server(data_dir, cleanup_mode=None).start()
    started_at = _postmaster_start_time(url)

    assert database.start_embedded_server(data_dir) == url

    assert _postmaster_start_time(url) == started_at
    assert _settings(url) == database.EMBEDDED_SERVER_SETTINGS | {"shared_buffers": "128MB"}
    database.stop_embedded_server(data_dir)
    database.start_embedded_server(data_dir)
    assert _settings(url) == database.EMBEDDED_SERVER_SETTINGS
    database.stop_embedded_server(data_dir)


def _settings(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
            (list(database.EMBEDDED_SERVER_SETTINGS),),
        ).fetchall()
    return dict(rows)


def _postmaster_start_time(url: str):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]


def test_with_database_and_schemes():
    url = "postgresql://u:p@db.example:5432/postgres?sslmode=require"
    assert database.with_database(url, "dagster") == "postgresql://u:p@db.example:5432/dagster?sslmode=require"
    assert database.sqlalchemy_psycopg2_url(url).startswith("postgresql+psycopg2://u:p@")
    assert database.libpq_url("postgres+psycopg2://h/db") == "postgresql://h/db"


def test_unreachable_external_database_is_one_sentence(tmp_path):
    settings = Settings.from_env(
        {
            "CAMPAIGN_PIPELINE_HOME": str(tmp_path),
            "CAMPAIGN_PIPELINE_WAREHOUSE_URL": "postgresql://u:hunter2@127.0.0.1:1/warehouse",
            "CAMPAIGN_PIPELINE_DAGSTER_STORAGE_URL": "postgresql://u:hunter2@127.0.0.1:1/dagster",
        }
    )
    with pytest.raises(database.DatabaseSetupError) as excinfo:
        database.prepare_databases(settings)
    message = str(excinfo.value)
    assert message.startswith("Cannot connect to the PostgreSQL database of CAMPAIGN_PIPELINE_WAREHOUSE_URL")
    assert "hunter2" not in message
    assert "u:***@127.0.0.1:1" in message


def test_a_url_libpq_cannot_parse_is_refused_without_quoting_its_password():
    # Settings refuse such a URL first; the check itself must not leak it either.
    url = "postgresql://etl:pa%zzword@127.0.0.1:1/warehouse"

    with pytest.raises(database.DatabaseSetupError) as excinfo:
        database.check_reachable(url, "CAMPAIGN_PIPELINE_WAREHOUSE_URL")

    assert str(excinfo.value) == (
        "Cannot connect to the PostgreSQL database of CAMPAIGN_PIPELINE_WAREHOUSE_URL "
        '(postgresql://etl:***@127.0.0.1:1/warehouse): invalid percent-encoded token: "***"'
    )
