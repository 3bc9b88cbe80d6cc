"""The campaign frame: one row per campaign of one account-day, as the platform reported it.

It is the DataFrame passed between the asset that pulls from the platform and the
asset that loads the warehouse, stored as Parquet in between, so every dtype is
chosen to survive a Parquet round trip unchanged:

- ids and text: ``string[pyarrow]``;
- ``metrics_date``: an Arrow ``date32`` column;
- ``budget``: :class:`decimal.Decimal` objects with two decimal places (object
  dtype). Parquet stores them as ``decimal128`` and pandas reads them back as
  ``Decimal``; an Arrow decimal dtype would come back as object, and a float
  would not be exact;
- metrics: ``int64``;
- ``created_at``: ``datetime64[us, UTC]`` (PostgreSQL keeps microseconds).

:func:`validate_frame` checks a frame before anything is written, and
:func:`frame_to_arrow` turns a valid frame into the Arrow table that is loaded.
Errors name the column, the rule and a few campaign ids, never other row data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

CAMPAIGN_FRAME_COLUMNS: tuple[str, ...] = (
    "account_id",
    "metrics_date",
    "campaign_id",
    "name",
    "status",
    "budget",
    "impressions",
    "clicks",
    "conversions",
    "created_at",
)
KEY_COLUMNS: tuple[str, ...] = ("account_id", "metrics_date", "campaign_id")
TEXT_COLUMNS: tuple[str, ...] = ("account_id", "campaign_id", "name", "status")
METRIC_COLUMNS: tuple[str, ...] = ("impressions", "clicks", "conversions")

TEXT_DTYPE = pd.StringDtype("pyarrow")
DATE_DTYPE = pd.ArrowDtype(pa.date32())
TIMESTAMP_DTYPE = pd.DatetimeTZDtype("us", "UTC")
BUDGET_PRECISION, BUDGET_SCALE = 18, 2

CAMPAIGN_FRAME_DTYPES: Mapping[str, Any] = {
    "account_id": TEXT_DTYPE,
    "metrics_date": DATE_DTYPE,
    "campaign_id": TEXT_DTYPE,
    "name": TEXT_DTYPE,
    "status": TEXT_DTYPE,
    "budget": np.dtype(object),
    "impressions": np.dtype(np.int64),
    "clicks": np.dtype(np.int64),
    "conversions": np.dtype(np.int64),
    "created_at": TIMESTAMP_DTYPE,
}

CAMPAIGN_ARROW_SCHEMA = pa.schema(
    [
        ("account_id", pa.large_string()),
        ("metrics_date", pa.date32()),
        ("campaign_id", pa.large_string()),
        ("name", pa.large_string()),
        ("status", pa.large_string()),
        ("budget", pa.decimal128(BUDGET_PRECISION, BUDGET_SCALE)),
        ("impressions", pa.int64()),
        ("clicks", pa.int64()),
        ("conversions", pa.int64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)

# Ids sit in primary-key indexes, whose entries PostgreSQL caps at about 2,700
# bytes (a longer id would fail the load after the whole sync); a name of
# megabytes is a broken answer, not a campaign (the longest seen is 5,000).
MAX_TEXT_CHARS: Mapping[str, int] = {"account_id": 255, "campaign_id": 255, "name": 10_000, "status": 64}

SAMPLE_SIZE = 5
_SHOWN_ID_LENGTH = 64
_MAX_BUDGET = Decimal(10) ** (BUDGET_PRECISION - BUDGET_SCALE)
_CENT = Decimal(1).scaleb(-BUDGET_SCALE)
_INT64_LIMIT = 2**63


class FrameValidationError(ValueError):
    """A frame breaks a rule; nothing was written.

    Attributes:
        column: The column that breaks the rule.
        rule: The rule, e.g. ``"non-negative"``.
        sample_ids: Up to :data:`SAMPLE_SIZE` campaign ids (or ``"row N"``) of
            offending rows; empty for rules about the whole column.
        offending_rows: How many rows break the rule.
    """

    def __init__(
        self, column: str, rule: str, sample_ids: Sequence[str] = (), offending_rows: int | None = None
    ) -> None:
        self.column = column
        self.rule = rule
        self.sample_ids = tuple(sample_ids)
        self.offending_rows = len(self.sample_ids) if offending_rows is None else offending_rows
        message = f"column {column!r} violates {rule!r}"
        if self.sample_ids:
            message += ": " + ", ".join(self.sample_ids)
            if self.offending_rows > len(self.sample_ids):
                message += f" and {self.offending_rows - len(self.sample_ids)} more"
        super().__init__(message)

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return type(self), (self.column, self.rule, self.sample_ids, self.offending_rows)


class CampaignRecordError(ValueError):
    """A campaign record from the platform cannot be converted to a frame row.

    Attributes:
        campaign_id: The record's ``id`` (``"?"`` when the id itself is unusable).
        field: The record field that failed.
        reason: What is wrong with it; never the value of a text field.
    """

    def __init__(self, campaign_id: str, field: str, reason: str) -> None:
        self.campaign_id = campaign_id
        self.field = field
        self.reason = reason
        super().__init__(f"campaign {campaign_id!r} field {field!r}: {reason}")

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return type(self), (self.campaign_id, self.field, self.reason)


def empty_campaign_frame() -> pd.DataFrame:
    """Return a campaign frame with no rows and the canonical dtypes."""
    return pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in CAMPAIGN_FRAME_DTYPES.items()})


def campaigns_to_frame(records: Sequence[Mapping[str, Any]], *, account_id: str, day: date) -> pd.DataFrame:
    """Build the campaign frame of one account-day from the platform's campaign records.

    Args:
        records: Campaign dicts as the API returns them (``id``, ``name``,
            ``status``, ``budget``, ``impressions``, ``clicks``, ``conversions``,
            ``created_at``).
        account_id: The account the records belong to.
        day: The day the metrics describe.

    Returns:
        A frame with :data:`CAMPAIGN_FRAME_COLUMNS` and :data:`CAMPAIGN_FRAME_DTYPES`,
        in the order of ``records``.

    Raises:
        CampaignRecordError: A field is missing or has the wrong type; the message
            names the campaign id and the field.
    """
    builder = CampaignFrameBuilder(account_id=account_id, day=day)
    builder.add(records)
    return builder.frame()


class CampaignFrameBuilder:
    """Builds the campaign frame of one account-day from records added a page at a time.

    Converting each page as it arrives does the work while the next pages are
    still in flight (100,000 campaigns: 0.3 s of conversion) instead of after
    the last one.

    Args:
        account_id: The account the records belong to.
        day: The day the metrics describe.
    """

    def __init__(self, *, account_id: str, day: date) -> None:
        self._account_id = account_id
        self._day = day
        self._columns: dict[str, list[Any]] = {name: [] for name in ("campaign_id", *_FIELD_CONVERTERS)}

    def add(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Convert and append ``records`` (see :func:`campaigns_to_frame`).

        Raises:
            CampaignRecordError: A field is missing or has the wrong type.
        """
        converted = _convert_exact_records(records)
        if converted is None:
            converted = {name: [] for name in self._columns}
            for record in records:
                campaign_id = _convert("?", "id", record, _text)
                converted["campaign_id"].append(campaign_id)
                for field, converter in _FIELD_CONVERTERS.items():
                    converted[field].append(_convert(campaign_id, field, record, converter))
        for name, values in converted.items():
            self._columns[name].extend(values)

    def frame(self) -> pd.DataFrame:
        """Return the frame of every record added so far, in the order they were added.

        Raises:
            CampaignRecordError: A text field holds a lone UTF-16 surrogate (JSON
                allows ``"\\ud83d"``, as a serializer cutting an emoji in half writes),
                which is not Unicode text and cannot be stored.
        """
        rows = len(self._columns["campaign_id"])
        try:
            return frame_from_columns(
                {**self._columns, "account_id": [self._account_id] * rows, "metrics_date": [self._day] * rows}
            )
        except UnicodeEncodeError:
            # Looked for only once Arrow refused: checking every string up front would cost every load.
            raise self._first_unencodable_text() from None

    def _first_unencodable_text(self) -> CampaignRecordError:
        columns = {"id": self._columns["campaign_id"], "name": self._columns["name"], "status": self._columns["status"]}
        for row, campaign_id in enumerate(columns["id"]):
            for field, column in columns.items():
                try:
                    column[row].encode("utf-8")
                except UnicodeEncodeError as error:
                    reason = f"not Unicode text: a lone surrogate {column[row][error.start]!r} at character {error.start}"
                    return CampaignRecordError("?" if field == "id" else campaign_id, field, reason)
        return CampaignRecordError("?", "?", "text Arrow cannot encode as UTF-8")


def frame_from_columns(columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """Return a campaign frame with the canonical dtypes from already converted Python values."""
    data = {
        "account_id": pd.array(columns["account_id"], dtype=TEXT_DTYPE),
        "metrics_date": pd.array(columns["metrics_date"], dtype=DATE_DTYPE),
        "campaign_id": pd.array(columns["campaign_id"], dtype=TEXT_DTYPE),
        "name": pd.array(columns["name"], dtype=TEXT_DTYPE),
        "status": pd.array(columns["status"], dtype=TEXT_DTYPE),
        "budget": pd.Series(list(columns["budget"]), dtype=object),
        **{name: np.asarray(columns[name], dtype=np.int64) for name in METRIC_COLUMNS},
        "created_at": pd.Series(list(columns["created_at"]), dtype=TIMESTAMP_DTYPE),
    }
    return pd.DataFrame(data, columns=list(CAMPAIGN_FRAME_COLUMNS))


def frame_from_arrow(table: pa.Table) -> pd.DataFrame:
    """Return a campaign frame with the canonical dtypes from a table of :data:`CAMPAIGN_ARROW_SCHEMA`."""
    table = table.select(list(CAMPAIGN_FRAME_COLUMNS)).cast(CAMPAIGN_ARROW_SCHEMA)
    extension_dtypes = {pa.large_string(): TEXT_DTYPE, pa.date32(): DATE_DTYPE}
    data = {
        name: table.column(name).to_pandas(types_mapper=extension_dtypes.get) for name in CAMPAIGN_FRAME_COLUMNS
    }
    return pd.DataFrame(data, columns=list(CAMPAIGN_FRAME_COLUMNS)).astype(dict(CAMPAIGN_FRAME_DTYPES))


def validate_frame(frame: pd.DataFrame, *, account_id: str | None = None, day: date | None = None) -> None:
    """Check that ``frame`` is a loadable campaign frame, optionally of one account-day.

    Rules, checked in this order: the column set, each column's dtype, no
    missing values, no NUL character in text (PostgreSQL text cannot hold
    one), text no longer than :data:`MAX_TEXT_CHARS`, budget fits ``numeric(18, 2)``, budget and metrics non-negative, one
    row per (account_id, metrics_date, campaign_id), and every row belongs to
    ``account_id`` and ``day`` when given.

    Raises:
        FrameValidationError: The first rule broken, with a sample of campaign ids.
    """
    frame_to_arrow(frame, account_id=account_id, day=day)


def frame_to_arrow(frame: pd.DataFrame, *, account_id: str | None = None, day: date | None = None) -> pa.Table:
    """Validate ``frame`` (see :func:`validate_frame`) and return it as an Arrow table.

    Returns:
        A table with :data:`CAMPAIGN_ARROW_SCHEMA`.

    Raises:
        FrameValidationError: The first rule broken.
    """
    _check_columns(frame)
    _check_dtypes(frame)
    ids = frame["campaign_id"]
    # Checks run on Arrow arrays: each is one pass in C++ over a buffer; offending
    # rows are looked for only once a cheap test says there are some.
    arrays = {
        field.name: pa.array(frame[field.name], type=field.type, from_pandas=True)
        for field in CAMPAIGN_ARROW_SCHEMA
        if field.name != "budget"
    }
    budget = _budget_array_or_none(frame["budget"])
    for column in CAMPAIGN_FRAME_COLUMNS:
        if column == "budget" and budget is None:
            _reject(column, "not null", frame[column].isna(), ids)
        elif (array := budget if column == "budget" else arrays[column]).null_count:
            _reject(column, "not null", array.is_null(), ids)
    for column in TEXT_COLUMNS:
        text = arrays[column]
        if _may_hold_nul(text):
            _reject(column, "no NUL character", pc.match_substring(text, "\x00"), ids)
        limit = MAX_TEXT_CHARS[column]
        # A character takes at least one byte: only a value of more bytes can be too long.
        if len(text) and pc.max(pc.binary_length(text)).as_py() > limit:
            _reject(column, f"at most {limit:,} characters", pc.greater(pc.utf8_length(text), limit), ids)
    if budget is None:
        budget = _budget_array(frame["budget"], ids)
    _reject("budget", "non-negative", pc.less(budget, 0), ids)
    for column in METRIC_COLUMNS:
        _reject(column, "non-negative", frame[column] < 0, ids)
    # Unique campaign ids make the keys unique; only otherwise is the full key hashed.
    if not ids.is_unique:
        duplicated = frame.duplicated(subset=list(KEY_COLUMNS), keep="first")
        _reject("campaign_id", "unique (account_id, metrics_date, campaign_id)", duplicated, ids)
    if account_id is not None:
        other_account = pc.not_equal(arrays["account_id"], pa.scalar(account_id, pa.large_string()))
        _reject("account_id", f"belongs to account {account_id}", other_account, ids)
    if day is not None:
        other_day = pc.not_equal(arrays["metrics_date"], pa.scalar(day, pa.date32()))
        _reject("metrics_date", f"belongs to day {day.isoformat()}", other_day, ids)
    columns = [budget if field.name == "budget" else arrays[field.name] for field in CAMPAIGN_ARROW_SCHEMA]
    return pa.Table.from_arrays(columns, schema=CAMPAIGN_ARROW_SCHEMA)


def _check_columns(frame: pd.DataFrame) -> None:
    present = [str(name) for name in frame.columns]
    for column in CAMPAIGN_FRAME_COLUMNS:
        if column not in present:
            raise FrameValidationError(column, "required column")
    for column in present:
        if column not in CAMPAIGN_FRAME_COLUMNS:
            raise FrameValidationError(column, "unexpected column")
    if len(present) != len(set(present)):
        duplicate = next(name for name in present if present.count(name) > 1)
        raise FrameValidationError(duplicate, "appears once")


def _check_dtypes(frame: pd.DataFrame) -> None:
    for column, expected in CAMPAIGN_FRAME_DTYPES.items():
        actual = frame[column].dtype
        matches = isinstance(actual, pd.StringDtype) if column in TEXT_COLUMNS else actual == expected
        if not matches:
            raise FrameValidationError(column, f"dtype {expected} (found {actual})")


def _budget_array_or_none(budget: pd.Series) -> pa.Array | None:
    try:
        return pa.array(budget, type=pa.decimal128(BUDGET_PRECISION, BUDGET_SCALE), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _budget_array(budget: pd.Series, ids: pd.Series) -> pa.Array:
    converted = _budget_array_or_none(budget)
    if converted is None:
        rule = f"decimal({BUDGET_PRECISION}, {BUDGET_SCALE})"
        _reject("budget", rule, [not _fits_budget(value) for value in budget], ids)
        raise FrameValidationError("budget", rule)
    return converted


def _may_hold_nul(text: pa.ChunkedArray | pa.Array) -> bool:
    # The value buffers of a chunk can hold bytes of values outside it: a zero byte
    # anywhere only sends the column to the exact, per-value test.
    chunks = text.chunks if isinstance(text, pa.ChunkedArray) else [text]
    for chunk in chunks:
        data = chunk.buffers()[2]
        if data is not None and data.size and np.frombuffer(data, dtype=np.uint8).min() == 0:
            return True
    return False


def _fits_budget(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        return False
    if isinstance(value, Decimal) and not value.is_finite():
        return False
    exact = Decimal(value)
    return abs(exact) < _MAX_BUDGET and exact == exact.quantize(_CENT)


def _reject(
    column: str, rule: str, offending: pd.Series | pa.Array | pa.ChunkedArray | list[bool], ids: pd.Series
) -> None:
    if isinstance(offending, (pa.Array, pa.ChunkedArray)):
        if not pc.any(offending).as_py():
            return
        offending = offending.to_numpy(zero_copy_only=False)
    positions = np.flatnonzero(np.asarray(offending, dtype=bool))
    if len(positions):
        sample = [_describe_row(ids, int(position)) for position in positions[:SAMPLE_SIZE]]
        raise FrameValidationError(column, rule, sample, offending_rows=len(positions))


def _describe_row(ids: pd.Series, position: int) -> str:
    campaign_id = ids.iloc[position]
    if pd.isna(campaign_id):
        return f"row {position}"
    text = str(campaign_id)
    if len(text) > _SHOWN_ID_LENGTH:
        return repr(text[:_SHOWN_ID_LENGTH]) + "..."
    return text if text.isprintable() and "," not in text else repr(text)


def _convert_exact_records(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]] | None:
    """Convert records whose fields all have the JSON types the contract names, a column at a time.

    The platform's records normally do (the client checked their types), and a
    column at a time takes half the time of a record at a time. Returns None
    when any field is missing or of another type or fails to convert, so that
    the per-record conversion can name the campaign and the field.
    """
    try:
        columns = {
            name: [record[field] for record in records]
            for name, field in (("campaign_id", "id"), *((field, field) for field in _FIELD_CONVERTERS))
        }
    except (KeyError, TypeError):
        return None
    text = (columns["campaign_id"], columns["name"], columns["status"], columns["created_at"])
    if not all(type(value) is str for column in text for value in column):
        return None
    counts = (columns[name] for name in METRIC_COLUMNS)
    if not all(type(value) is int and -_INT64_LIMIT <= value < _INT64_LIMIT for column in counts for value in column):
        return None
    try:
        columns["budget"] = [_budget(value) for value in columns["budget"]]
        columns["created_at"] = [_timestamp(value) for value in columns["created_at"]]
    except (TypeError, ValueError):
        return None
    return columns


def _convert(campaign_id: str, field: str, record: Mapping[str, Any], converter: Callable[[Any], Any]) -> Any:
    if field not in record:
        raise CampaignRecordError(campaign_id, field, "missing")
    try:
        return converter(record[field])
    except (TypeError, ValueError) as exc:
        raise CampaignRecordError(campaign_id, field, str(exc)) from None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a whole number, got {type(value).__name__}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ValueError("expected a whole number, got a fraction")
    if not -_INT64_LIMIT <= value < _INT64_LIMIT:
        raise ValueError("out of the 64-bit integer range")
    return int(value)


def _budget(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    try:
        # str() first: Decimal(0.1) would keep the binary float's 55 digits.
        amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError("expected a number, got text that is not one") from None
    if not _fits_budget(amount):
        raise ValueError(f"does not fit decimal({BUDGET_PRECISION}, {BUDGET_SCALE})")
    return amount.quantize(_CENT)


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO-8601 timestamp, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("expected an ISO-8601 timestamp") from None
    if parsed.tzinfo is None:
        raise ValueError("timestamp has no UTC offset")
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("timestamp is outside the years 1 to 9999 in UTC") from None


_FIELD_CONVERTERS: Mapping[str, Callable[[Any], Any]] = {
    "name": _text,
    "status": _text,
    "budget": _budget,
    "impressions": _count,
    "clicks": _count,
    "conversions": _count,
    "created_at": _timestamp,
}
