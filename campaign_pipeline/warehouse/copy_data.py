"""COPY payloads built from Arrow tables by Arrow's C++ CSV writer, without a Python loop per row."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

ROWS_PER_CHUNK = 50_000

_CSV_OPTIONS = pa_csv.WriteOptions(include_header=False, quoting_style="needed")


def csv_copy_chunks(table: pa.Table, *, rows_per_chunk: int = ROWS_PER_CHUNK) -> Iterator[bytes]:
    """Yield ``table`` as ``COPY ... FROM STDIN (FORMAT csv)`` data, a chunk of rows at a time.

    Every string is quoted, so an empty string stays an empty string and a
    null (written unquoted and empty) stays NULL; quotes, backslashes, tabs,
    newlines and carriage returns inside a string travel unchanged. Timestamps
    with a time zone are written as UTC wall-clock times without an offset,
    for a ``timestamp`` column that the SQL turns back into ``timestamptz``.

    Args:
        table: Columns in the order of the ``COPY`` column list.
        rows_per_chunk: Rows per yielded chunk; bounds the memory of the payload.
    """
    table = _without_time_zones(table)
    for batch in table.to_batches(max_chunksize=rows_per_chunk):
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(batch, sink, _CSV_OPTIONS)
        yield sink.getvalue().to_pybytes()


def _without_time_zones(table: pa.Table) -> pa.Table:
    # Arrow formats zoned timestamps through a time-zone lookup per value: ~2 s per
    # million rows here, against ~0.1 s for the same instants written as UTC.
    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            utc = pc.cast(table.column(index), pa.timestamp(field.type.unit))
            table = table.set_column(index, field.name, utc)
    return table
