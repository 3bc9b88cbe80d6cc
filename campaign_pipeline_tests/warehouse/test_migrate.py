from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from campaign_pipeline.warehouse.migrate import (
    Migration,
    MigrationError,
    apply_migrations,
    load_migrations,
    pending_migrations,
)
from campaign_pipeline.warehouse.writer import Warehouse

WAREHOUSE_TABLES = {
    "campaigns",
    "campaign_daily_metrics",
    "campaign_sync_progress",
    "campaign_sync_failures",
    "partition_progress",
    "partition_loads",
    "schema_migrations",
}


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {name for (name,) in rows}


def recorded_versions(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        return [v for (v,) in connection.execute("SELECT version FROM schema_migrations ORDER BY version")]


def test_packaged_migrations_are_ordered_and_named() -> None:
    migrations = load_migrations()

    assert [m.version for m in migrations][:1] == ["0001_initial_schema"]
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)
    assert all(len(m.checksum) == 64 for m in migrations)


def test_migrate_applies_once_and_a_second_run_applies_nothing(warehouse_url: str) -> None:
    with Warehouse(warehouse_url) as warehouse:
        first = warehouse.migrate()
        second = warehouse.migrate()

    assert first == [m.version for m in load_migrations()]
    assert second == []
    assert tables(warehouse_url) == WAREHOUSE_TABLES
    assert recorded_versions(warehouse_url) == first


def test_an_applied_migration_edited_afterwards_stops_the_runner(warehouse_url: str) -> None:
    original = Migration("0001_first", "CREATE TABLE first_table (id integer)")
    with psycopg.connect(warehouse_url, autocommit=True) as connection:
        apply_migrations(connection, [original])
        edited = Migration("0001_first", "CREATE TABLE first_table (id bigint)")
        with pytest.raises(MigrationError, match=r"^Migration 0001_first changed after it was applied \(checksum "):
            apply_migrations(connection, [edited, Migration("0002_second", "CREATE TABLE second_table ()")])

    assert tables(warehouse_url) == {"first_table", "schema_migrations"}


def test_a_database_migrated_by_newer_code_is_refused() -> None:
    known = [Migration("0001_first", "SELECT 1")]

    with pytest.raises(MigrationError, match="has migration 0002_later applied, which this code does not have"):
        pending_migrations(known, {"0001_first": known[0].checksum, "0002_later": "abc"})


def test_a_failing_migration_leaves_no_trace_and_keeps_the_earlier_ones(warehouse_url: str) -> None:
    good = Migration("0001_good", "CREATE TABLE good_table (id integer)")
    bad = Migration("0002_bad", "CREATE TABLE half_done (id integer); SELECT no_such_column FROM good_table")
    with psycopg.connect(warehouse_url, autocommit=True) as connection:
        with pytest.raises(psycopg.errors.UndefinedColumn):
            apply_migrations(connection, [good, bad])
        fixed = Migration("0002_bad", "CREATE TABLE half_done (id integer)")
        assert apply_migrations(connection, [good, fixed]) == ["0002_bad"]

    assert recorded_versions(warehouse_url) == ["0001_good", "0002_bad"]


def test_concurrent_runners_apply_each_migration_once(warehouse_url: str) -> None:
    migrations = [Migration("0001_once", "CREATE TABLE once_only (id integer)")]
    results: list[list[str]] = []
    start = threading.Barrier(3)

    def migrate() -> None:
        with psycopg.connect(warehouse_url, autocommit=True) as connection:
            start.wait()
            results.append(apply_migrations(connection, migrations))

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [[], [], ["0001_once"]]


def test_migration_files_must_be_numbered_once(tmp_path: Path) -> None:
    (tmp_path / "0002_second.sql").write_text("SELECT 2")
    (tmp_path / "0001_first.sql").write_text("SELECT 1")
    (tmp_path / "README.txt").write_text("not a migration")
    assert [m.version for m in load_migrations(tmp_path)] == ["0001_first", "0002_second"]

    (tmp_path / "0002_again.sql").write_text("SELECT 3")
    with pytest.raises(MigrationError, match="share the number 0002"):
        load_migrations(tmp_path)

    (tmp_path / "0002_again.sql").unlink()
    (tmp_path / "3_bad-name.sql").write_text("SELECT 3")
    with pytest.raises(MigrationError, match=r"^Migration file '3_bad-name.sql' is not named NNNN_description.sql.$"):
        load_migrations(tmp_path)


def test_apply_migrations_needs_an_autocommit_connection(warehouse_url: str) -> None:
    with psycopg.connect(warehouse_url) as connection:
        with pytest.raises(ValueError, match="autocommit"):
            apply_migrations(connection, [])
