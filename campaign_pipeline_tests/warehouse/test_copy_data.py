from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pyarrow as pa

from campaign_pipeline.warehouse.copy_data import csv_copy_chunks


def test_strings_are_always_quoted_so_empty_stays_empty_and_null_stays_null() -> None:
    table = pa.table({"text": pa.array(['say "hi"', "", None, "a,b\nc\r\td\\e"], pa.large_string())})

    assert b"".join(csv_copy_chunks(table)) == b'"say ""hi"""\n""\n\n"a,b\nc\r\td\\e"\n'


def test_numbers_dates_and_zoned_timestamps_are_written_as_utc_wall_clock() -> None:
    paris = pa.array([datetime(2026, 11, 27, 21, 36, 11, 736000, timezone.utc)], pa.timestamp("us", tz="Europe/Paris"))
    table = pa.table(
        {
            "budget": pa.array([Decimal("1100.50")], pa.decimal128(18, 2)),
            "clicks": pa.array([261], pa.int64()),
            "day": pa.array([date(2026, 11, 27)], pa.date32()),
            "created_at": paris,
        }
    )

    assert b"".join(csv_copy_chunks(table)) == b"1100.50,261,2026-11-27,2026-11-27 21:36:11.736000\n"


def test_rows_are_split_into_chunks_of_at_most_the_given_size() -> None:
    table = pa.table({"n": pa.array(range(5), pa.int64())})

    chunks = list(csv_copy_chunks(table, rows_per_chunk=2))

    assert chunks == [b"0\n1\n", b"2\n3\n", b"4\n"]
