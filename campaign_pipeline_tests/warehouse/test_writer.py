from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import psycopg
import psycopg.sql
import pytest

from campaign_pipeline.warehouse.frame import FrameValidationError, campaigns_to_frame, empty_campaign_frame
from campaign_pipeline.warehouse.writer import (
    PREVIEW_COLUMNS,
    CampaignFailure,
    LoadResult,
    OffendingCampaigns,
    PartitionLoadError,
    Warehouse,
    account_lock_key,
)
from campaign_pipeline_tests.chaos.pgproxy import PostgresProxy

ACCOUNT = "acme-retail"
DAY = date(2026, 11, 27)

HOSTILE_TEXTS = [
    "O'Brien's \"quoted\" campaign",
    "back\\slash \\N \\. \\\\ end\\",
    "\\.",
    "line\n\\.\nafter the COPY end marker",
    "tab\there, comma, semicolon;",
    "new\nline",
    "carriage\rreturn and\r\nCRLF",
    "",
    "  leading and trailing  ",
    "NULL",
    "%s %(name)s {} $1",
    "'); DROP TABLE campaigns; --",
    "ünïcödé – 中文 – العربية – עברית",
    "emoji 🚀👍🏽👨‍👩‍👧 and \u200b zero width",
    "x" * 5000,
]


def record(number: int, **changes: Any) -> dict[str, Any]:
    return {
        "id": f"campaign_{number}",
        "name": f"Campaign {number}",
        "status": "active",
        "budget": 1000 + number,
        "impressions": 100 * number,
        "clicks": 10 * number,
        "conversions": number,
        "created_at": "2026-11-01T08:00:00.123456Z",
    } | changes


def frame_of(*records: Mapping[str, Any], account_id: str = ACCOUNT, day: date = DAY) -> pd.DataFrame:
    return campaigns_to_frame(list(records), account_id=account_id, day=day)


def campaigns(*numbers: int, **changes: Any) -> pd.DataFrame:
    return frame_of(*(record(n, **changes) for n in numbers))


def sorted_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("campaign_id", ignore_index=True)


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of both tables, with the transaction that wrote its current version (xmin)."""
    with psycopg.connect(url) as connection:
        return {
            table: connection.execute(f"SELECT xmin::text, * FROM {table} ORDER BY 2, 3, 4").fetchall()
            for table in ("campaigns", "campaign_daily_metrics")
        }


def run_ids(url: str) -> dict[str, str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT campaign_id, loaded_by_run_id FROM campaign_daily_metrics WHERE metrics_date = %s", (DAY,)
        ).fetchall()
    return dict(rows)


@pytest.fixture
def warehouse(warehouse_url: str) -> Iterator[Warehouse]:
    with Warehouse(warehouse_url, retry_delay_seconds=0) as opened:
        opened.migrate()
        yield opened


def test_a_url_libpq_cannot_parse_is_refused_before_the_pool_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError) as excinfo:
        Warehouse("postgresql://etl:pa%zzword@127.0.0.1:1/warehouse")

    assert str(excinfo.value) == (
        "The warehouse URL postgresql://etl:***@127.0.0.1:1/warehouse is not one libpq can read: "
        'invalid percent-encoded token: "***".'
    )
    assert "pa%zzword" not in caplog.text


def test_first_load_inserts_every_row_and_reads_back_exactly(warehouse: Warehouse) -> None:
    frame = campaigns(3, 1, 2)

    result = warehouse.replace_partition(ACCOUNT, DAY, frame, run_id="run-1")

    assert result == LoadResult(inserted=3, updated=0, deleted=0, unchanged=0, campaigns_written=3)
    assert result.as_dict() == {"inserted": 3, "updated": 0, "deleted": 0, "unchanged": 0, "campaigns_written": 3}
    pd.testing.assert_frame_equal(warehouse.read_partition(ACCOUNT, DAY), sorted_frame(frame), check_exact=True)
    assert warehouse.partition_row_count(ACCOUNT, DAY) == 3


def test_loading_the_same_frame_twice_rewrites_nothing(warehouse: Warehouse, warehouse_url: str) -> None:
    frame = campaigns(1, 2, 3)
    warehouse.replace_partition(ACCOUNT, DAY, frame, run_id="run-1")
    before = snapshot(warehouse_url)

    result = warehouse.replace_partition(ACCOUNT, DAY, frame, run_id="run-2")

    assert result == LoadResult(inserted=0, updated=0, deleted=0, unchanged=3, campaigns_written=0)
    assert snapshot(warehouse_url) == before


def test_only_changed_rows_are_rewritten(warehouse: Warehouse, warehouse_url: str) -> None:
    warehouse.replace_partition(ACCOUNT, DAY, campaigns(1, 2, 3, 4), run_id="run-1")
    before = {row[3]: row for row in snapshot(warehouse_url)["campaign_daily_metrics"]}
    changed = frame_of(record(1), record(2, clicks=999), record(3, status="paused"), record(4, budget="1004.01"))

    result = warehouse.replace_partition(ACCOUNT, DAY, changed, run_id="run-2")

    assert result == LoadResult(inserted=0, updated=3, deleted=0, unchanged=1, campaigns_written=2)
    assert run_ids(warehouse_url) == {
        "campaign_1": "run-1",
        "campaign_2": "run-2",
        "campaign_3": "run-2",
        "campaign_4": "run-2",
    }
    after = {row[3]: row for row in snapshot(warehouse_url)["campaign_daily_metrics"]}
    assert after["campaign_1"] == before["campaign_1"]
    pd.testing.assert_frame_equal(warehouse.read_partition(ACCOUNT, DAY), changed)


def test_a_restated_day_is_rewritten_on_the_pages_it_was_on(warehouse: Warehouse, warehouse_url: str) -> None:
    numbers = range(1, 301)
    warehouse.replace_partition(ACCOUNT, DAY, campaigns(*numbers), run_id="run-1")
    pages_before = metric_pages(warehouse_url)

    result = warehouse.replace_partition(ACCOUNT, DAY, campaigns(*numbers, clicks=7), run_id="run-2")

    assert result == LoadResult(inserted=0, updated=300, deleted=0, unchanged=0, campaigns_written=0)
    assert metric_pages(warehouse_url) == pages_before
    assert set(run_ids(warehouse_url).values()) == {"run-2"}
    with psycopg.connect(warehouse_url) as connection:
        options = connection.execute(
            "SELECT reloptions FROM pg_class WHERE oid = 'campaign_daily_metrics'::regclass"
        ).fetchone()[0]
    assert options == ["fillfactor=50"]


def test_the_next_day_rewrites_each_campaign_on_the_page_it_was_on(warehouse: Warehouse, warehouse_url: str) -> None:
    numbers = range(1, 301)
    next_day = DAY + timedelta(days=1)
    warehouse.replace_partition(ACCOUNT, DAY, campaigns(*numbers), run_id="run-1")
    pages_before = campaign_pages(warehouse_url)

    result = warehouse.replace_partition(
        ACCOUNT, next_day, frame_of(*(record(number) for number in numbers), day=next_day), run_id="run-2"
    )

    # Unchanged attributes, but each row now records the newer day it is from.
    assert result == LoadResult(inserted=300, updated=0, deleted=0, unchanged=0, campaigns_written=300)
    assert campaign_pages(warehouse_url) == pages_before
    with psycopg.connect(warehouse_url) as connection:
        assert connection.execute("SELECT DISTINCT attributes_as_of FROM campaigns").fetchall() == [(next_day,)]
        options = connection.execute("SELECT reloptions FROM pg_class WHERE oid = 'campaigns'::regclass").fetchone()[0]
    assert options == ["fillfactor=50"]


def test_rows_are_written_in_key_order_whatever_the_frame_order(warehouse: Warehouse, warehouse_url: str) -> None:
    # Byte order, as the keys' COLLATE "C": "campaign_10" < "campaign_9" < "campaign_é" < "campaign_中".
    ids = [f"campaign_{number}" for number in range(1, 301)] + ["campaign_中", "campaign_é", "Campaign_Z"]
    frame = frame_of(*(record(1, id=campaign_id) for campaign_id in reversed(ids)))

    warehouse.replace_partition(ACCOUNT, DAY, frame, run_id="run-1")

    with psycopg.connect(warehouse_url) as connection:
        for table in ("campaigns", "campaign_daily_metrics"):
            heap_order = [row[0] for row in connection.execute(f"SELECT campaign_id FROM {table} ORDER BY ctid")]
            assert heap_order == sorted(ids, key=lambda campaign_id: campaign_id.encode()), table


def campaign_pages(url: str) -> dict[str, int]:
    """The heap page of each campaign row."""
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT campaign_id, (ctid::text::point)[0]::integer FROM campaigns").fetchall()
    return dict(rows)


def metric_pages(url: str) -> dict[str, int]:
    """The heap page of each metric row: an update that stays on its page is HOT (no new index entry)."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT campaign_id, (ctid::text::point)[0]::integer FROM campaign_daily_metrics"
        ).fetchall()
    return dict(rows)


def test_rows_the_platform_no_longer_returns_are_deleted_from_that_day_only(warehouse: Warehouse) -> None:
    next_day = DAY + timedelta(days=1)
    warehouse.replace_partition(ACCOUNT, DAY, campaigns(1, 2, 3, 4, 5), run_id="run-1")
    warehouse.replace_partition(ACCOUNT, next_day, frame_of(record(1), record(2), day=next_day), run_id="run-1")
    warehouse.replace_partition("globex", DAY, frame_of(record(1), account_id="globex"), run_id="run-1")

    result = warehouse.replace_partition(ACCOUNT, DAY, campaigns(2, 4, 6), run_id="run-2")

    assert result == LoadResult(inserted=1, updated=0, deleted=3, unchanged=2, campaigns_written=1)
    remaining = warehouse.read_partition(ACCOUNT, DAY)["campaign_id"].tolist()
    assert remaining == ["campaign_2", "campaign_4", "campaign_6"]
    assert warehouse.partition_row_count(ACCOUNT, next_day) == 2
    assert warehouse.partition_row_count("globex", DAY) == 1


def test_an_empty_frame_empties_the_day(warehouse: Warehouse) -> None:
    warehouse.replace_partition(ACCOUNT, DAY, campaigns(1, 2), run_id="run-1")

    result = warehouse.replace_partition(ACCOUNT, DAY, empty_campaign_frame(), run_id="run-2")

    assert result == LoadResult(inserted=0, updated=0, deleted=2, unchanged=0)
    pd.testing.assert_frame_equal(warehouse.read_partition(ACCOUNT, DAY), empty_campaign_frame())


class InjectedFailure(RuntimeError):
    pass


@pytest.mark.parametrize("step", ["_stage", "_merge_campaigns", "_delete_stale_metrics", "_merge_metrics"])
def test_a_failure_at_any_step_leaves_the_previous_day_intact(warehouse_url: str, step: str) -> None:
    class FailingWarehouse(Warehouse):
        pass

    def fail_after(self: Warehouse, connection: psycopg.Connection, *args: Any) -> Any:
        getattr(Warehouse, step)(self, connection, *args)
        raise InjectedFailure(step)

    setattr(FailingWarehouse, step, fail_after)
    with Warehouse(warehouse_url) as warehouse:
        warehouse.migrate()
        warehouse.replace_partition(ACCOUNT, DAY, campaigns(1, 2, 3), run_id="run-1")
    before = snapshot(warehouse_url)

    with FailingWarehouse(warehouse_url, retry_delay_seconds=0) as failing:
        with pytest.raises(InjectedFailure):
            failing.replace_partition(ACCOUNT, DAY, campaigns(2, 3, 4, 5, name="renamed", clicks=7), run_id="run-2")

    assert snapshot(warehouse_url) == before


def test_an_invalid_frame_writes_nothing(warehouse: Warehouse, warehouse_url: str) -> None:
    warehouse.replace_partition(ACCOUNT, DAY, campaigns(1, 2), run_id="run-1")
    before = snapshot(warehouse_url)
    negative = campaigns(1, 2, 3)
    negative.loc[2, "clicks"] = -4

    with pytest.raises(FrameValidationError) as excinfo:
        warehouse.replace_partition(ACCOUNT, DAY, negative, run_id="run-2")
    assert str(excinfo.value) == "column 'clicks' violates 'non-negative': campaign_3"

    with pytest.raises(FrameValidationError) as excinfo:
        warehouse.replace_partition("globex", DAY, campaigns(1), run_id="run-2")
    assert str(excinfo.value) == "column 'account_id' violates 'belongs to account globex': campaign_1"

    with pytest.raises(FrameValidationError) as excinfo:
        warehouse.replace_partition(ACCOUNT, DAY, campaigns(1, name="nul \x00 byte"), run_id="run-2")
    assert str(excinfo.value) == "column 'name' violates 'no NUL character': campaign_1"

    assert snapshot(warehouse_url) == before


def test_a_database_error_names_where_it_failed_but_no_row_values(warehouse_url: str) -> None:
    class BrokenWarehouse(Warehouse):
        def _merge_metrics(self, connection: psycopg.Connection, params: Mapping[str, Any]) -> int:
            connection.execute("UPDATE campaign_staging SET clicks = -clicks - 1")
            return super()._merge_metrics(connection, params)

    with BrokenWarehouse(warehouse_url, retry_delay_seconds=0) as warehouse:
        warehouse.migrate()
        with pytest.raises(PartitionLoadError) as excinfo:
            warehouse.replace_partition(ACCOUNT, DAY, campaigns(1, name="Confidential launch"), run_id="run-1")

        assert str(excinfo.value) == (
            "Loading acme-retail 2026-11-27 failed and was rolled back: CheckViolation "
            "(SQLSTATE 23514, table campaign_daily_metrics, constraint campaign_daily_metrics_clicks_check)"
        )
        assert excinfo.value.__cause__ is None and excinfo.value.__suppress_context__
        assert warehouse.partition_row_count(ACCOUNT, DAY) == 0
        restored = pickle.loads(pickle.dumps(excinfo.value))
        assert (str(restored), restored.sqlstate, restored.error_class) == (
            str(excinfo.value),
            "23514",
            psycopg.errors.CheckViolation,
        )


def test_hostile_strings_are_stored_byte_for_byte(warehouse: Warehouse, warehouse_url: str) -> None:
    frame = frame_of(
        *(
            record(number, id=f"id {text[:40]}", name=text, status=text[:30])
            for number, text in enumerate(HOSTILE_TEXTS)
        )
    )

    assert warehouse.replace_partition(ACCOUNT, DAY, frame, run_id="run-1").inserted == len(HOSTILE_TEXTS)

    pd.testing.assert_frame_equal(warehouse.read_partition(ACCOUNT, DAY), sorted_frame(frame), check_exact=True)
    with psycopg.connect(warehouse_url) as connection:
        stored = connection.execute("SELECT convert_to(name, 'UTF8') FROM campaigns").fetchall()
    assert sorted(bytes(name) for (name,) in stored) == sorted(text.encode("utf-8") for text in HOSTILE_TEXTS)
    assert warehouse.replace_partition(ACCOUNT, DAY, frame, run_id="run-2").unchanged == len(HOSTILE_TEXTS)


def test_strings_are_stored_byte_for_byte_whatever_the_client_encoding(warehouse_url: str) -> None:
    parts = urlsplit(warehouse_url)
    latin1_url = urlunsplit(parts._replace(query="&".join(filter(None, [parts.query, "client_encoding=LATIN1"]))))
    frame = frame_of(record(1, id="id-1", name="ünï 🚀 中文", status="active"))

    with Warehouse(latin1_url, retry_delay_seconds=0) as latin1_warehouse:
        latin1_warehouse.migrate()
        assert latin1_warehouse.replace_partition(ACCOUNT, DAY, frame, run_id="run-1").inserted == 1

    with psycopg.connect(warehouse_url) as connection:
        stored = connection.execute("SELECT convert_to(name, 'UTF8') FROM campaigns").fetchall()
    assert stored == [("ünï 🚀 中文".encode("utf-8"),)]


def test_a_backfill_of_an_earlier_day_never_reverts_newer_attributes(warehouse: Warehouse, warehouse_url: str) -> None:
    def load(day: date, name: str, budget: int) -> LoadResult:
        frame = frame_of(record(1, name=name, budget=budget), day=day)
        return warehouse.replace_partition(ACCOUNT, day, frame, run_id=f"run-{day.day}")

    load(date(2026, 11, 12), "New name", 500)

    assert load(date(2026, 11, 10), "Old name", 300) == LoadResult(1, 0, 0, 0, campaigns_written=0)
    stored = warehouse.read_partition(ACCOUNT, date(2026, 11, 10)).iloc[0]
    assert (stored["name"], stored["budget"]) == ("New name", Decimal("300.00"))
    with psycopg.connect(warehouse_url) as connection:
        row = connection.execute("SELECT name, budget, attributes_as_of, loaded_by_run_id FROM campaigns").fetchone()
    assert row == ("New name", Decimal("500.00"), date(2026, 11, 12), "run-12")

    assert load(date(2026, 11, 11), "New name", 500).campaigns_written == 0
    assert load(date(2026, 11, 13), "New name", 500).campaigns_written == 1


def test_a_connection_lost_mid_load_reruns_the_whole_load(warehouse_url: str) -> None:
    class FlakyWarehouse(Warehouse):
        attempts = 0

        def _merge_metrics(self, connection: psycopg.Connection, params: Mapping[str, Any]) -> int:
            FlakyWarehouse.attempts += 1
            if FlakyWarehouse.attempts == 1:
                with psycopg.connect(warehouse_url, autocommit=True) as killer:
                    killer.execute("SELECT pg_terminate_backend(%s, 5000)", (connection.info.backend_pid,))
            return super()._merge_metrics(connection, params)

    with FlakyWarehouse(warehouse_url, retry_delay_seconds=0) as warehouse:
        warehouse.migrate()
        warehouse.replace_partition(ACCOUNT, DAY, campaigns(1, 2), run_id="run-1")
        FlakyWarehouse.attempts = 0

        result = warehouse.replace_partition(ACCOUNT, DAY, campaigns(2, 3, 4), run_id="run-2")

        assert FlakyWarehouse.attempts == 2
        assert result == LoadResult(inserted=2, updated=0, deleted=1, unchanged=1, campaigns_written=2)
        pd.testing.assert_frame_equal(warehouse.read_partition(ACCOUNT, DAY), campaigns(2, 3, 4))


def loads_recorded(url: str) -> list[tuple]:
    with psycopg.connect(url) as connection:
        return connection.execute(
            "SELECT account_id, metrics_date, run_id, inserted, updated, deleted, unchanged, campaigns_written "
            "FROM partition_loads ORDER BY loaded_at"
        ).fetchall()


def test_each_load_records_its_counts_and_run(warehouse: Warehouse, warehouse_url: str) -> None:
    warehouse.replace_partition(ACCOUNT, DAY, campaigns(1, 2, 3), run_id="run-1")
    warehouse.replace_partition(ACCOUNT, DAY, campaigns(1, 2, 3), run_id="run-2")

    assert loads_recorded(warehouse_url) == [
        (ACCOUNT, DAY, "run-1", 3, 0, 0, 0, 3),
        (ACCOUNT, DAY, "run-2", 0, 0, 0, 3, 0),
    ]


def test_a_load_whose_commit_answer_was_lost_reports_what_it_committed(warehouse_url: str) -> None:
    proxy = PostgresProxy(warehouse_url)
    try:
        with Warehouse(proxy.url, max_connections=1, retry_delay_seconds=0) as warehouse:
            warehouse.migrate()
            warehouse.replace_partition(ACCOUNT, DAY, campaigns(1, 2), run_id="run-1")
            proxy.arm("commit_reply")

            result = warehouse.replace_partition(ACCOUNT, DAY, campaigns(2, 3, 4), run_id="run-2")

            assert proxy.frozen.is_set(), "the proxy dropped the answer to the load's COMMIT"
            # Merged again, the retry would find nothing to do and report 0, 0, 0, 3.
            assert result == LoadResult(inserted=2, updated=0, deleted=1, unchanged=1, campaigns_written=2)
            pd.testing.assert_frame_equal(warehouse.read_partition(ACCOUNT, DAY), campaigns(2, 3, 4))
    finally:
        proxy.close()
    assert loads_recorded(warehouse_url) == [
        (ACCOUNT, DAY, "run-1", 2, 0, 0, 0, 2),
        (ACCOUNT, DAY, "run-2", 2, 0, 1, 1, 2),
    ]


def test_a_lost_commit_answer_without_retries_left_says_the_outcome_is_unknown(warehouse_url: str) -> None:
    proxy = PostgresProxy(warehouse_url)
    try:
        with Warehouse(proxy.url, max_connections=1, transaction_retries=0) as warehouse:
            warehouse.migrate()
            proxy.arm("commit_reply")

            with pytest.raises(PartitionLoadError) as excinfo:
                warehouse.replace_partition(ACCOUNT, DAY, campaigns(1, 2, 3), run_id="run-1")
    finally:
        proxy.close()

    message = str(excinfo.value)
    assert message.startswith(
        f"Loading {ACCOUNT} {DAY}: the connection was lost while committing, so the load may or may not "
        "have been committed (if it was, partition_loads has a row of load_id "
    ), message
    assert message.endswith("; loading it again is safe: OperationalError"), message
    assert excinfo.value.outcome_unknown and excinfo.value.error_class is psycopg.OperationalError
    load_id = message.split("load_id ")[1].split(")")[0]
    with psycopg.connect(warehouse_url) as connection:
        assert connection.execute(
            "SELECT run_id, inserted FROM partition_loads WHERE load_id = %s", (load_id,)
        ).fetchall() == [("run-1", 3)]
        assert connection.execute("SELECT count(*) FROM campaign_daily_metrics").fetchone() == (3,)


def test_a_statement_over_the_timeout_is_cancelled_and_not_retried(warehouse_url: str) -> None:
    class SlowWarehouse(Warehouse):
        attempts = 0

        def _merge_metrics(self, connection: psycopg.Connection, params: Mapping[str, Any]) -> int:
            SlowWarehouse.attempts += 1
            connection.execute("SELECT pg_sleep(30)")
            return 0

    with SlowWarehouse(warehouse_url, statement_timeout_seconds=0.2, retry_delay_seconds=0) as warehouse:
        warehouse.migrate()
        started = time.monotonic()
        with pytest.raises(PartitionLoadError) as excinfo:
            warehouse.replace_partition(ACCOUNT, DAY, campaigns(1), run_id="run-1")

        assert time.monotonic() - started < 10
        assert (excinfo.value.error_class, excinfo.value.sqlstate) == (psycopg.errors.QueryCanceled, "57014")
        assert SlowWarehouse.attempts == 1
        assert warehouse.partition_row_count(ACCOUNT, DAY) == 0


def test_loads_of_one_account_wait_for_each_other(warehouse: Warehouse, warehouse_url: str) -> None:
    results: list[LoadResult] = []
    with psycopg.connect(warehouse_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (account_lock_key(ACCOUNT),))
        load = threading.Thread(
            target=lambda: results.append(warehouse.replace_partition(ACCOUNT, DAY, campaigns(1), run_id="run-1"))
        )
        load.start()
        _wait_for_advisory_lock_waiter(holder)
        assert results == []
        holder.execute("SELECT pg_advisory_unlock(%s)", (account_lock_key(ACCOUNT),))
        load.join(timeout=30)

    assert results == [LoadResult(inserted=1, updated=0, deleted=0, unchanged=0, campaigns_written=1)]


def _wait_for_advisory_lock_waiter(connection: psycopg.Connection) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        waiting = connection.execute(
            """
            SELECT count(*) FROM pg_locks
            WHERE locktype = 'advisory' AND NOT granted
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """
        )
        if waiting.fetchone()[0] == 1:
            return
        time.sleep(0.01)
    raise AssertionError("the load never waited for the account's advisory lock")


def test_account_lock_keys_are_stable_64_bit_integers() -> None:
    assert account_lock_key(ACCOUNT) == account_lock_key(ACCOUNT)
    assert account_lock_key(ACCOUNT) != account_lock_key("globex")
    assert -(2**63) <= account_lock_key(ACCOUNT) < 2**63


def test_sync_progress_is_recorded_once_per_campaign_and_reset(warehouse: Warehouse) -> None:
    synced_at = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
    warehouse.record_campaign_synced(ACCOUNT, DAY, "campaign_1", run_id="run-1", synced_at=synced_at)
    warehouse.record_campaign_synced(ACCOUNT, DAY, "campaign_1", run_id="run-2", synced_at=pd.Timestamp.now("UTC"))
    warehouse.record_campaign_synced(ACCOUNT, DAY, "campaign_2", run_id="run-1", synced_at=synced_at)
    warehouse.record_campaign_synced(ACCOUNT, DAY.replace(day=28), "campaign_3", run_id="run-1", synced_at=synced_at)

    assert warehouse.synced_campaign_ids(ACCOUNT, DAY) == {"campaign_1", "campaign_2"}
    assert warehouse.reset_sync_progress(ACCOUNT, DAY) == 2
    assert warehouse.synced_campaign_ids(ACCOUNT, DAY) == set()
    assert warehouse.synced_campaign_ids(ACCOUNT, DAY.replace(day=28)) == {"campaign_3"}


def test_sync_progress_can_be_recorded_from_many_threads(warehouse: Warehouse) -> None:
    synced_at = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
    ids = [f"campaign_{n}" for n in range(100)]

    def record_slice(start: int) -> None:
        for campaign_id in ids[start::8]:
            warehouse.record_campaign_synced(ACCOUNT, DAY, campaign_id, run_id="run-1", synced_at=synced_at)

    threads = [threading.Thread(target=record_slice, args=(start,)) for start in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert warehouse.synced_campaign_ids(ACCOUNT, DAY) == set(ids)


def test_failure_ledger_accumulates_attempts_and_clears(warehouse: Warehouse) -> None:
    warehouse.record_campaign_failures(ACCOUNT, DAY, {"campaign_1": ("503 after 3 attempts", 3)}, run_id="run-1")
    first = warehouse.campaign_failures(ACCOUNT, DAY)["campaign_1"]
    warehouse.record_campaign_failures(
        ACCOUNT, DAY, {"campaign_1": ("read timeout", 2), "campaign_2": ("deadline reached", 0)}, run_id="run-2"
    )
    warehouse.record_campaign_failures(ACCOUNT, DAY, {}, run_id="run-3")

    failures = warehouse.campaign_failures(ACCOUNT, DAY)
    assert sorted(failures) == ["campaign_1", "campaign_2"]
    campaign_1 = failures["campaign_1"]
    assert (campaign_1.reason, campaign_1.attempts, campaign_1.run_id) == ("read timeout", 5, "run-2")
    assert campaign_1.first_seen == first.first_seen
    assert campaign_1.last_seen >= first.last_seen
    assert isinstance(failures["campaign_2"], CampaignFailure)
    assert failures["campaign_2"].attempts == 0

    assert warehouse.clear_campaign_failures(ACCOUNT, DAY, ["campaign_1", "campaign_9"]) == 1
    assert sorted(warehouse.campaign_failures(ACCOUNT, DAY)) == ["campaign_2"]
    assert warehouse.clear_campaign_failures(ACCOUNT, DAY) == 1
    assert warehouse.campaign_failures(ACCOUNT, DAY) == {}


def test_failure_ledger_refuses_negative_attempts(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="^attempts of campaign 'campaign_1' must be 0 or more, not -1.$"):
        warehouse.record_campaign_failures(ACCOUNT, DAY, {"campaign_1": ("x", -1)}, run_id="run-1")


def test_progress_keeps_counts_left_out_within_a_run_and_resets_them_for_a_new_run(warehouse: Warehouse) -> None:
    warehouse.update_progress(ACCOUNT, DAY, run_id="run-1", phase="paging", pages_fetched=3)
    warehouse.update_progress(ACCOUNT, DAY, run_id="run-1", phase="syncing", campaigns_total=100, campaigns_synced=7)
    warehouse.update_progress("globex", DAY, run_id="run-9", phase="paging")

    progress = warehouse.read_progress(DAY, [ACCOUNT, "globex", "initech"])
    assert sorted(progress) == [ACCOUNT, "globex"]
    acme = progress[ACCOUNT]
    assert {key: value for key, value in acme.items() if key != "updated_at"} == {
        "run_id": "run-1",
        "phase": "syncing",
        "pages_fetched": 3,
        "campaigns_total": 100,
        "campaigns_synced": 7,
    }
    assert isinstance(acme["updated_at"], datetime)

    warehouse.update_progress(ACCOUNT, DAY, run_id="run-2", phase="paging", pages_fetched=1)
    restarted = warehouse.read_progress(DAY, [ACCOUNT])[ACCOUNT]
    assert (restarted["pages_fetched"], restarted["campaigns_total"], restarted["campaigns_synced"]) == (1, None, 0)
    assert warehouse.read_progress(DAY + timedelta(days=1), [ACCOUNT]) == {}


def test_one_shared_writer_per_process_url_and_options(warehouse_url: str) -> None:
    try:
        first = Warehouse.shared(warehouse_url, max_connections=2)
        assert Warehouse.shared(warehouse_url, max_connections=2) is first
        assert Warehouse.shared(warehouse_url, max_connections=3) is not first

        first.close()
        assert Warehouse.shared(warehouse_url, max_connections=2) is not first
    finally:
        Warehouse.close_shared()
    assert Warehouse._shared == {}


def test_repr_hides_the_password(warehouse_url: str) -> None:
    with Warehouse(url_with_password(warehouse_url, "hunter2")) as warehouse:
        assert warehouse.migrate() == [
            "0001_initial_schema",
            "0002_metrics_fillfactor_50",
            "0003_campaigns_fillfactor_50",
            "0004_partition_loads",
        ]
        assert "hunter2" not in repr(warehouse)
        assert "postgres:***@" in repr(warehouse)


def url_with_password(url: str, password: str) -> str:
    """Return ``url`` logging in with ``password``; the test servers trust local users and ignore it."""
    parts = urlsplit(url)
    user_info, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user_info.split(':')[0]}:{password}@{host}"))


def test_profile_counts_the_day_and_lists_over_clicked_campaigns_in_id_order(warehouse: Warehouse) -> None:
    over_clicked = {3: 301, 12: 1201, 20: 2001}
    frame = frame_of(
        *(record(n, clicks=over_clicked[n]) if n in over_clicked else record(n) for n in range(1, 21))
    )
    warehouse.replace_partition(ACCOUNT, DAY, frame, run_id="run-1")

    profile = warehouse.profile_partition(ACCOUNT, DAY, sample_size=2, preview_rows=3)

    assert profile.rows == 20
    assert profile.over_clicked == OffendingCampaigns(count=3, sample=("campaign_12", "campaign_20"))
    assert profile.duplicated == OffendingCampaigns()
    assert profile.negative_metrics == OffendingCampaigns()
    assert profile.without_attributes == OffendingCampaigns()
    expected_preview = pd.DataFrame(
        {
            "campaign_id": ["campaign_1", "campaign_10", "campaign_11"],
            "name": ["Campaign 1", "Campaign 10", "Campaign 11"],
            "status": ["active"] * 3,
            "impressions": [100, 1000, 1100],
            "clicks": [10, 100, 110],
            "conversions": [1, 10, 11],
        }
    )
    pd.testing.assert_frame_equal(profile.preview, expected_preview)


def test_profile_of_a_day_never_loaded_is_empty(warehouse: Warehouse) -> None:
    warehouse.replace_partition(ACCOUNT, DAY, campaigns(1, 2), run_id="run-1")

    profile = warehouse.profile_partition(ACCOUNT, date(2026, 11, 28))

    assert (
        profile.rows,
        profile.duplicated,
        profile.negative_metrics,
        profile.over_clicked,
        profile.without_attributes,
    ) == (0, OffendingCampaigns(), OffendingCampaigns(), OffendingCampaigns(), OffendingCampaigns())
    assert profile.preview.empty
    assert list(profile.preview.columns) == list(PREVIEW_COLUMNS)


def test_profile_finds_duplicates_and_negatives_that_a_drifted_schema_let_in(
    warehouse: Warehouse, warehouse_url: str
) -> None:
    warehouse.replace_partition(ACCOUNT, DAY, campaigns(1, 2, 3), run_id="run-1")
    with psycopg.connect(warehouse_url) as connection:
        for (constraint,) in connection.execute(
            "SELECT conname FROM pg_constraint "
            "WHERE conrelid = 'campaign_daily_metrics'::regclass AND contype IN ('p', 'c')"
        ).fetchall():
            connection.execute(
                psycopg.sql.SQL("ALTER TABLE campaign_daily_metrics DROP CONSTRAINT {}").format(
                    psycopg.sql.Identifier(constraint)
                )
            )
        # Two more rows of campaign_2 (one duplicated id), and a negative count on campaign_3 and campaign_4.
        connection.execute(
            """
            INSERT INTO campaign_daily_metrics (account_id, metrics_date, campaign_id, status, budget,
                                                impressions, clicks, conversions, loaded_at, loaded_by_run_id)
            SELECT account_id, metrics_date, campaign_id, status, budget, impressions, clicks, conversions,
                   loaded_at, 'drift'
            FROM campaign_daily_metrics WHERE campaign_id = 'campaign_2'
            UNION ALL
            SELECT account_id, metrics_date, campaign_id, status, budget, impressions, clicks, conversions,
                   loaded_at, 'drift'
            FROM campaign_daily_metrics WHERE campaign_id = 'campaign_2'
            UNION ALL
            SELECT account_id, metrics_date, 'campaign_4', status, budget, impressions, clicks, -1,
                   loaded_at, 'drift'
            FROM campaign_daily_metrics WHERE campaign_id = 'campaign_1'
            """
        )
        connection.execute("UPDATE campaign_daily_metrics SET impressions = -5 WHERE campaign_id = 'campaign_3'")

    profile = warehouse.profile_partition(ACCOUNT, DAY)

    assert profile.rows == 6
    assert profile.duplicated == OffendingCampaigns(count=1, sample=("campaign_2",))
    assert profile.negative_metrics == OffendingCampaigns(count=2, sample=("campaign_3", "campaign_4"))
    # campaign_3: 30 clicks against -5 impressions.
    assert profile.over_clicked == OffendingCampaigns(count=1, sample=("campaign_3",))
    # campaign_4's rows came in by hand, without an attributes row.
    assert profile.without_attributes == OffendingCampaigns(count=1, sample=("campaign_4",))


def test_profile_lists_campaigns_whose_attributes_row_is_missing(warehouse: Warehouse, warehouse_url: str) -> None:
    warehouse.replace_partition(ACCOUNT, DAY, campaigns(1, 2, 3, 4), run_id="run-1")
    with psycopg.connect(warehouse_url) as connection:
        connection.execute("DELETE FROM campaigns WHERE campaign_id IN ('campaign_2', 'campaign_3', 'campaign_4')")

    profile = warehouse.profile_partition(ACCOUNT, DAY, sample_size=2)

    assert profile.rows == 4
    assert profile.without_attributes == OffendingCampaigns(count=3, sample=("campaign_2", "campaign_3"))
    assert (profile.duplicated, profile.negative_metrics, profile.over_clicked) == (
        OffendingCampaigns(),
        OffendingCampaigns(),
        OffendingCampaigns(),
    )


def test_profile_needs_a_sample_of_at_least_one(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="sample_size must be at least 1, not 0."):
        warehouse.profile_partition(ACCOUNT, DAY, sample_size=0)
