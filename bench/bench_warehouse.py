"""Throughput of the warehouse load against raw COPY and pandas ``to_sql``, on one server.

Run ``.venv/bin/python -m bench.bench_warehouse [--rows N] [--url ADMIN_URL]``. Without a
URL it starts the embedded server in ``.campaign_pipeline/bench-pgdata`` and stops it at the
end; either way it works in a database it creates and drops. Figures, in rows per second:

- upsert: :meth:`Warehouse.replace_partition` of an N-row account-day into a table that
  already holds the first half of it: half the rows are new, half have changed metrics;
- next day: the load of the following day with the same N campaigns, the daily case: every
  metric row is new and every campaign row records the newer day;
- raw COPY: the same N rows into an empty table without index, once as binary COPY data
  (the writer's format) and once as CSV formatted by Arrow; the faster of the two is the
  baseline of the ratio;
- COPY into the target tables: the same N rows, all new, with binary COPY into empty copies of
  ``campaigns`` and ``campaign_daily_metrics`` (their keys, checks and fillfactor), nothing else.
  No aim: it is what this schema costs before any merging, for reading the upsert's ratio;
- to_sql: ``DataFrame.to_sql(method="multi")`` of a slice (100,000 rows by default).

A CHECKPOINT comes before the upsert's preload and before each raw COPY and target COPY, so that
no measurement pays for writing out the pages the one before dirtied (the URL's role must be
allowed CHECKPOINT: a superuser or a member of pg_checkpoint). None comes between the preload
and the upsert, as in the runs before checkpoints were added; one there, which makes the upsert
log each page it changes whole the first time, made no difference beyond noise in two A/B pairs.
The next day follows the checkpoints, as a daily load on a running server does. Peak memory is
the process's peak resident set over the whole run.
"""

from __future__ import annotations

import argparse
import resource
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import sqlalchemy
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from campaign_pipeline import database
from campaign_pipeline.warehouse.copy_data import binary_copy_chunks, csv_copy_chunks
from campaign_pipeline.warehouse.frame import CAMPAIGN_ARROW_SCHEMA, CAMPAIGN_FRAME_COLUMNS
from campaign_pipeline.warehouse.writer import Warehouse

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DATA_DIR = REPO_ROOT / ".campaign_pipeline" / "bench-pgdata"
ACCOUNT_ID = "bench_account"
DAY = date(2026, 11, 27)
RAW_TABLE = "raw_copy_campaigns"
RAW_FORMATS = ("binary", "csv")
TARGET_TABLES = ("campaign_daily_metrics", "campaigns")
TO_SQL_TABLE = "to_sql_campaigns"
TO_SQL_CHUNK_ROWS = 1_000

_RAW_TABLE_COLUMNS = sql.SQL(
    "account_id text, metrics_date date, campaign_id text, name text, status text, budget numeric(18, 2), "
    "impressions bigint, clicks bigint, conversions bigint, created_at timestamp"
)


def bench_frame(first_id: int, rows: int, *, version: int) -> pd.DataFrame:
    """Return a campaign frame of ``rows`` campaigns from ``first_id``; ``version`` shifts every metric."""
    ids = np.arange(first_id, first_id + rows, dtype=np.int64)
    id_text = pd.Series(ids).astype(str)
    created_at = datetime(2026, 1, 1, tzinfo=timezone.utc) + pd.to_timedelta(ids % 86_400_000, unit="ms")
    return pd.DataFrame(
        {
            "account_id": pd.array([ACCOUNT_ID] * rows, dtype="string[pyarrow]"),
            "metrics_date": pd.array([DAY] * rows, dtype=pd.ArrowDtype(pa.date32())),
            "campaign_id": ("campaign_" + id_text).astype("string[pyarrow]"),
            "name": ("Campaign " + id_text + " \"spring\" sale, ünïcode").astype("string[pyarrow]"),
            "status": pd.array(np.where(ids % 3 == 0, "paused", "active"), dtype="string[pyarrow]"),
            "budget": pd.Series([Decimal(int(cents)).scaleb(-2) for cents in ids * 37 % 10_000_000], dtype=object),
            "impressions": ids * 7 % 1_000_000 + version,
            "clicks": ids * 3 % 10_000 + version,
            "conversions": ids % 1_000 + version,
            "created_at": pd.Series(created_at, dtype="datetime64[us, UTC]"),
        },
        columns=list(CAMPAIGN_FRAME_COLUMNS),
    )


def measure_upsert(warehouse: Warehouse, url: str, rows: int) -> dict[str, float | int]:
    """Preload the first half of a partition, then time replacing it with all ``rows``.

    ``url`` is the warehouse's database, for the CHECKPOINT before the preload.
    """
    half = rows // 2
    checkpoint(url)
    warehouse.replace_partition(ACCOUNT_ID, DAY, bench_frame(0, half, version=0), run_id="bench-preload")
    frame = bench_frame(0, rows, version=1)
    started = time.perf_counter()
    result = warehouse.replace_partition(ACCOUNT_ID, DAY, frame, run_id="bench-upsert")
    seconds = time.perf_counter() - started
    _check_counts("upsert", result.as_dict(), {"inserted": rows - half, "updated": half, "deleted": 0, "unchanged": 0})
    return {"seconds": seconds, "rows_per_second": rows / seconds}


def measure_next_day(warehouse: Warehouse, rows: int) -> dict[str, float | int]:
    """Time the load of the day after :func:`measure_upsert`'s, with the same ``rows`` campaigns.

    The daily case: every metric row is new, and every campaign row is rewritten to record
    the newer day its attributes are from.
    """
    next_day = DAY + timedelta(days=1)
    frame = bench_frame(0, rows, version=2)
    frame["metrics_date"] = pd.array([next_day] * rows, dtype=pd.ArrowDtype(pa.date32()))
    started = time.perf_counter()
    result = warehouse.replace_partition(ACCOUNT_ID, next_day, frame, run_id="bench-next-day")
    seconds = time.perf_counter() - started
    _check_counts(
        "next day",
        result.as_dict(),
        {"inserted": rows, "updated": 0, "deleted": 0, "unchanged": 0, "campaigns_written": rows},
    )
    return {"seconds": seconds, "rows_per_second": rows / seconds}


def _check_counts(load: str, counts: dict[str, int], expected: dict[str, int]) -> None:
    reported = {key: counts[key] for key in expected}
    if reported != expected:
        raise AssertionError(f"{load} reported {reported}, expected {expected}")


def measure_raw_copy(url: str, frame: pd.DataFrame, *, data_format: str) -> dict[str, float | int]:
    """Time COPY of ``frame`` into an empty table without index, as ``binary`` or ``csv`` COPY data.

    No validation and no merge: the Arrow conversion, the formatting and the COPY itself.
    """
    chunks = {"binary": binary_copy_chunks, "csv": csv_copy_chunks}[data_format]
    table_name = f"{RAW_TABLE}_{data_format}"
    with psycopg.connect(url) as connection:
        connection.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(table_name), _RAW_TABLE_COLUMNS))
        connection.commit()
        # Binary COPY data holds strings as UTF-8 bytes, taken in the client encoding.
        connection.execute("SET client_encoding = 'UTF8'")
        copy = sql.SQL("COPY {} FROM STDIN (FORMAT {})").format(sql.Identifier(table_name), sql.SQL(data_format))
        started = time.perf_counter()
        table = pa.Table.from_pandas(frame, schema=CAMPAIGN_ARROW_SCHEMA, preserve_index=False)
        _stream(connection, copy, chunks(table))
        connection.commit()
        seconds = time.perf_counter() - started
        _drop(connection, [table_name])
    return {"seconds": seconds, "rows_per_second": len(frame) / seconds}


def _stream(connection: psycopg.Connection, copy: sql.Composed, chunks: Iterable[bytes]) -> None:
    cursor = connection.cursor()
    # The queued writer sends one chunk while the next is being formatted, as the writer's staging does.
    with cursor.copy(copy, writer=QueuedLibpqWriter(cursor)) as stream:
        for chunk in chunks:
            stream.write(chunk)


def _drop(connection: psycopg.Connection, tables: list[str]) -> None:
    # Frees the tables' pages in the server and the OS before the next measurement.
    connection.execute(sql.SQL("DROP TABLE {}").format(sql.SQL(", ").join(map(sql.Identifier, tables))))
    connection.commit()


def measure_target_copy(url: str, frame: pd.DataFrame, *, run_id: str = "bench-target-copy") -> dict[str, float | int]:
    """Time binary COPY of ``frame`` into empty copies of the two tables a load writes.

    Each copy has its table's columns, primary key, checks and storage options (fillfactor).
    Every row goes to both, as in a load of a day whose campaigns are all new, with the
    columns a load adds (``loaded_at``, ``loaded_by_run_id``, ``attributes_as_of``) filled
    client-side; no validation, no staging, no merge.
    """
    with psycopg.connect(url) as connection:
        copies = {}
        for table_name in TARGET_TABLES:
            copy_name = f"target_copy_{table_name}"
            (options,) = connection.execute(
                "SELECT coalesce(reloptions, '{}') FROM pg_class WHERE oid = %s::regclass", (table_name,)
            ).fetchone()
            storage = [
                sql.SQL("{} = {}").format(sql.Identifier(name), sql.Literal(value))
                for name, value in (option.split("=", 1) for option in options)
            ]
            connection.execute(
                sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL){}").format(
                    sql.Identifier(copy_name),
                    sql.Identifier(table_name),
                    sql.SQL(" WITH ({})").format(sql.SQL(", ").join(storage)) if storage else sql.SQL(""),
                )
            )
            copies[table_name] = copy_name
        connection.commit()
        connection.execute("SET client_encoding = 'UTF8'")
        started = time.perf_counter()
        table = pa.Table.from_pandas(frame, schema=CAMPAIGN_ARROW_SCHEMA, preserve_index=False)
        (loaded_at,) = connection.execute("SELECT now()").fetchone()
        added = {
            "loaded_at": pa.repeat(pa.scalar(loaded_at, pa.timestamp("us", tz="UTC")), table.num_rows),
            "loaded_by_run_id": pa.repeat(pa.scalar(run_id, pa.large_string()), table.num_rows),
            "attributes_as_of": pa.repeat(pa.scalar(DAY, pa.date32()), table.num_rows),
        }
        for table_name, copy_name in copies.items():
            columns = [
                name
                for (name,) in connection.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                    "AND NOT attisdropped ORDER BY attnum",
                    (copy_name,),
                )
            ]
            rows = pa.Table.from_arrays(
                [table.column(name) if name in table.column_names else added[name] for name in columns], names=columns
            )
            copy = sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(sql.Identifier(copy_name))
            _stream(connection, copy, binary_copy_chunks(rows))
        connection.commit()
        seconds = time.perf_counter() - started
        _drop(connection, list(copies.values()))
    return {"seconds": seconds, "rows_per_second": len(frame) / seconds}


def measure_to_sql(url: str, frame: pd.DataFrame) -> dict[str, float | int]:
    """Time ``frame.to_sql(method="multi")`` through SQLAlchemy's psycopg 3 dialect."""
    engine = sqlalchemy.create_engine(database.libpq_url(url).replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        started = time.perf_counter()
        frame.to_sql(TO_SQL_TABLE, engine, index=False, method="multi", chunksize=TO_SQL_CHUNK_ROWS)
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    return {"seconds": seconds, "rows_per_second": len(frame) / seconds}


def checkpoint(url: str) -> None:
    """Write out every dirty page, so that the next measurement does not pay for the last one's."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CHECKPOINT")


def peak_rss_bytes() -> int:
    """Return this process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(rows: int = 1_000_000, url: str | None = None, *, to_sql_rows: int = 100_000) -> dict:
    """Run the measurements in a fresh database and return the figures.

    Args:
        rows: Rows of the partition for the upsert and raw COPY.
        url: Admin URL of the server; the embedded server when None.
        to_sql_rows: Rows of the ``to_sql`` slice, scaled to rows per second.
    """
    with _bench_database(url) as bench_url:
        # The later a load comes in the run, the slower it tends to be on this kind of machine,
        # whatever it does (up to 1.5x at the fourth); the upsert and the reference it is
        # compared with come first. Raw COPY, without index, barely moves.
        with Warehouse(bench_url, application_name="bench_warehouse") as warehouse:
            warehouse.migrate()
            upsert = measure_upsert(warehouse, bench_url, rows)
            frame = bench_frame(0, rows, version=1)
            checkpoint(bench_url)
            target_copy = measure_target_copy(bench_url, frame)
            raw_copies = {}
            for data_format in RAW_FORMATS:
                checkpoint(bench_url)
                raw_copies[data_format] = measure_raw_copy(bench_url, frame, data_format=data_format)
            del frame
            next_day = measure_next_day(warehouse, rows)
        to_sql = measure_to_sql(bench_url, bench_frame(0, min(to_sql_rows, rows), version=1))
    fastest = max(raw_copies, key=lambda data_format: raw_copies[data_format]["rows_per_second"])
    raw_copy = raw_copies[fastest] | {"format": fastest}
    return {
        "rows": rows,
        "upsert": upsert,
        "next_day": next_day,
        "raw_copy": raw_copy,
        "raw_copy_by_format": raw_copies,
        "target_copy": target_copy,
        "to_sql": to_sql | {"rows": min(to_sql_rows, rows)},
        "upsert_vs_raw_copy": upsert["rows_per_second"] / raw_copy["rows_per_second"],
        "upsert_vs_to_sql": upsert["rows_per_second"] / to_sql["rows_per_second"],
        "target_copy_vs_raw_copy": target_copy["rows_per_second"] / raw_copy["rows_per_second"],
        "upsert_vs_target_copy": upsert["rows_per_second"] / target_copy["rows_per_second"],
        "peak_rss_bytes": peak_rss_bytes(),
    }


@contextmanager
def _bench_database(admin_url: str | None) -> Iterator[str]:
    embedded = admin_url is None
    admin_url = database.start_embedded_server(BENCH_DATA_DIR) if embedded else database.libpq_url(admin_url)
    name = f"bench_warehouse_{uuid.uuid4().hex[:8]}"
    database.ensure_database(admin_url, name)
    try:
        yield database.with_database(admin_url, name)
    finally:
        database.drop_database(admin_url, name)
        if embedded:
            database.stop_embedded_server(BENCH_DATA_DIR)


def format_report(figures: dict) -> str:
    """Return the figures of :func:`run` as the lines the command prints."""
    upsert, raw_copy, to_sql = figures["upsert"], figures["raw_copy"], figures["to_sql"]
    return "\n".join(
        [
            f"partition upsert, {figures['rows']:,} rows (half new, half changed): "
            f"{upsert['rows_per_second']:,.0f} rows/s ({upsert['seconds']:.2f} s)",
            f"next day, the same {figures['rows']:,} campaigns (every metric row new, every campaign re-dated): "
            f"{figures['next_day']['rows_per_second']:,.0f} rows/s ({figures['next_day']['seconds']:.2f} s)",
            *(
                f"raw COPY into an empty unindexed table, {data_format}: {copy['rows_per_second']:,.0f} rows/s "
                f"({copy['seconds']:.2f} s)"
                for data_format, copy in figures["raw_copy_by_format"].items()
            ),
            f"COPY into empty copies of the two target tables (keys, checks, fillfactor), every row new: "
            f"{figures['target_copy']['rows_per_second']:,.0f} rows/s ({figures['target_copy']['seconds']:.2f} s), "
            f"{figures['target_copy_vs_raw_copy']:.2f}x of raw COPY",
            f"to_sql(method='multi'), {to_sql['rows']:,} rows: {to_sql['rows_per_second']:,.0f} rows/s "
            f"({to_sql['seconds']:.2f} s)",
            f"upsert / raw COPY ({raw_copy['format']}, the faster): {figures['upsert_vs_raw_copy']:.2f}x "
            "(aim >= 0.4x)",
            f"upsert / COPY into the target tables: {figures['upsert_vs_target_copy']:.2f}x (no aim: the schema's own cost)",
            f"upsert / to_sql: {figures['upsert_vs_to_sql']:.1f}x (aim >= 10x)",
            f"peak memory (RSS): {figures['peak_rss_bytes'] / 2**30:.2f} GiB (aim <= 1.5 GB)",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_warehouse", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the partition (default 1,000,000)")
    parser.add_argument("--to-sql-rows", type=int, default=100_000, help="rows of the to_sql slice (default 100,000)")
    parser.add_argument("--url", help="admin URL of a PostgreSQL server (default: the embedded server)")
    args = parser.parse_args(argv)
    print(format_report(run(args.rows, args.url, to_sql_rows=args.to_sql_rows)))


if __name__ == "__main__":
    main()
