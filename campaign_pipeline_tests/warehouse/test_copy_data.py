from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import psycopg
import pyarrow as pa
import pytest

from campaign_pipeline.warehouse.copy_data import binary_copy_chunks, csv_copy_chunks


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


BINARY_EDGE_ROWS = {
    "text": ['say "hi"', "", "a,b\nc\r\td\\e", "ünï 🚀", "x" * 5_000],
    "budget": [Decimal("0.00"), Decimal("0.01"), Decimal("9999999999999999.99"), Decimal("-7.05"), Decimal("100.00")],
    "clicks": [0, -1, 2**63 - 1, -(2**63), 261],
    "created_at": [
        datetime(1, 1, 1, tzinfo=timezone.utc),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
        datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=timezone.utc),
        datetime(2026, 11, 27, 21, 36, 11, 736001, tzinfo=timezone.utc),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
    ],
    "day": [date(1, 1, 1), date(1969, 12, 31), date(1999, 12, 31), date(2000, 1, 1), date(9999, 12, 31)],
}


def binary_edge_table() -> pa.Table:
    return pa.table(
        {
            "text": pa.array(BINARY_EDGE_ROWS["text"], pa.large_string()),
            "budget": pa.array(BINARY_EDGE_ROWS["budget"], pa.decimal128(18, 2)),
            "clicks": pa.array(BINARY_EDGE_ROWS["clicks"], pa.int64()),
            "created_at": pa.array(BINARY_EDGE_ROWS["created_at"], pa.timestamp("us", tz="UTC")),
            "day": pa.array(BINARY_EDGE_ROWS["day"], pa.date32()),
        }
    )


def test_binary_rows_reach_postgres_exactly_as_given(warehouse_url: str) -> None:
    table = binary_edge_table()
    # A slice starts inside the Arrow buffers: offsets must be honoured.
    table = pa.concat_tables([table.slice(0, 2), table.slice(2)])

    with psycopg.connect(warehouse_url) as connection:
        connection.execute(
            "CREATE TEMPORARY TABLE t "
            "(text text, budget numeric(18, 2), clicks bigint, created_at timestamptz, day date)"
        )
        connection.execute("SELECT set_config('client_encoding', 'UTF8', true)")
        with connection.cursor().copy("COPY t FROM STDIN (FORMAT binary)") as copy:
            for chunk in binary_copy_chunks(table, rows_per_chunk=2):
                copy.write(chunk)
        rows = connection.execute("SELECT text, budget, budget::text, clicks, created_at, day FROM t").fetchall()

    expected = list(zip(*BINARY_EDGE_ROWS.values(), strict=True))
    assert [(text, budget, clicks, created_at, day) for text, budget, _, clicks, created_at, day in rows] == expected
    assert [shown for _, _, shown, _, _, _ in rows] == [str(budget) for budget in BINARY_EDGE_ROWS["budget"]]


def test_binary_data_is_header_then_chunks_of_rows_then_trailer() -> None:
    table = pa.table({"n": pa.array([1, 2, 3], pa.int64()), "s": pa.array(["ab", "", "c"], pa.large_string())})

    chunks = list(binary_copy_chunks(table, rows_per_chunk=2))

    def row(n: int, s: bytes) -> bytes:
        return b"\x00\x02" + b"\x00\x00\x00\x08" + n.to_bytes(8, "big") + len(s).to_bytes(4, "big") + s

    assert chunks == [
        b"PGCOPY\n\xff\r\n\x00" + bytes(8),
        row(1, b"ab") + row(2, b""),
        row(3, b"c"),
        b"\xff\xff",
    ]


@pytest.mark.parametrize(
    "column",
    [
        pa.array([1, None], pa.int64()),
        pa.array([1.5], pa.float64()),
        pa.array([Decimal("1")], pa.decimal128(18, 0)),
        pa.array([1], pa.int32()),
    ],
    ids=["null", "float", "18 digits before the point", "int32"],
)
def test_binary_data_refuses_nulls_and_types_it_does_not_encode(column: pa.Array) -> None:
    with pytest.raises(ValueError, match="'c' has"):
        list(binary_copy_chunks(pa.table({"c": column})))
