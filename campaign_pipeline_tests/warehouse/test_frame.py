from __future__ import annotations

import json
import pickle
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from campaign_pipeline.warehouse.frame import (
    CAMPAIGN_ARROW_SCHEMA,
    CAMPAIGN_FRAME_COLUMNS,
    CAMPAIGN_FRAME_DTYPES,
    CampaignFrameBuilder,
    CampaignRecordError,
    FrameValidationError,
    campaigns_to_frame,
    empty_campaign_frame,
    frame_from_arrow,
    frame_to_arrow,
    validate_frame,
)

ACCOUNT = "acme-retail"
DAY = date(2026, 11, 27)


def record(number: int, **changes: Any) -> dict[str, Any]:
    return {
        "id": f"campaign_{number}",
        "name": f"Campaign {number}",
        "status": "active",
        "budget": 1100,
        "impressions": 4471,
        "clicks": 261,
        "conversions": 22,
        "created_at": "2026-11-27T21:36:11.736Z",
    } | changes


def frame_of(count: int = 3) -> pd.DataFrame:
    return campaigns_to_frame([record(n) for n in range(1, count + 1)], account_id=ACCOUNT, day=DAY)


def test_campaigns_to_frame_converts_every_field_with_the_canonical_dtypes() -> None:
    frame = campaigns_to_frame(
        [record(1), record(2, budget=99.5, created_at="2026-11-27T23:00:00+02:00", status="paused")],
        account_id=ACCOUNT,
        day=DAY,
    )

    assert list(frame.columns) == list(CAMPAIGN_FRAME_COLUMNS)
    assert dict(frame.dtypes) == dict(CAMPAIGN_FRAME_DTYPES)
    assert frame.to_dict("records") == [
        {
            "account_id": ACCOUNT,
            "metrics_date": DAY,
            "campaign_id": "campaign_1",
            "name": "Campaign 1",
            "status": "active",
            "budget": Decimal("1100.00"),
            "impressions": 4471,
            "clicks": 261,
            "conversions": 22,
            "created_at": pd.Timestamp("2026-11-27T21:36:11.736Z"),
        },
        {
            "account_id": ACCOUNT,
            "metrics_date": DAY,
            "campaign_id": "campaign_2",
            "name": "Campaign 2",
            "status": "paused",
            "budget": Decimal("99.50"),
            "impressions": 4471,
            "clicks": 261,
            "conversions": 22,
            "created_at": pd.Timestamp("2026-11-27T21:00:00Z"),
        },
    ]
    assert str(frame["budget"].iloc[1]) == "99.50"


def test_a_frame_built_page_by_page_equals_one_built_at_once() -> None:
    pages = [[record(3), record(1, budget=10.5)], [], [record(2, status="paused")]]
    builder = CampaignFrameBuilder(account_id=ACCOUNT, day=DAY)
    for page in pages:
        builder.add(page)

    frame = builder.frame()

    expected = campaigns_to_frame([record for page in pages for record in page], account_id=ACCOUNT, day=DAY)
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    assert frame["campaign_id"].tolist() == ["campaign_3", "campaign_1", "campaign_2"]
    assert dict(frame.dtypes) == dict(CAMPAIGN_FRAME_DTYPES)


def test_a_page_with_loosely_typed_fields_converts_to_the_same_values_as_exact_json_types() -> None:
    exact = campaigns_to_frame([record(1), record(2)], account_id=ACCOUNT, day=DAY)

    # A whole float count and a budget as text are accepted, one record at a time.
    loose = campaigns_to_frame([record(1), record(2, impressions=4471.0, budget="1100")], account_id=ACCOUNT, day=DAY)

    pd.testing.assert_frame_equal(loose, exact, check_exact=True)
    assert type(loose["impressions"].iloc[1]) is np.int64


def test_a_bad_record_fails_the_page_that_brings_it() -> None:
    builder = CampaignFrameBuilder(account_id=ACCOUNT, day=DAY)
    builder.add([record(1)])

    with pytest.raises(CampaignRecordError, match="campaign 'campaign_2' field 'created_at'"):
        builder.add([record(2, created_at="yesterday")])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"name": json.loads('"Sale \\ud83d"')},
            "campaign 'campaign_2' field 'name': not Unicode text: a lone surrogate '\\ud83d' at character 5",
        ),
        (
            {"id": json.loads('"c\\udc00"')},
            "campaign '?' field 'id': not Unicode text: a lone surrogate '\\udc00' at character 1",
        ),
    ],
)
def test_a_lone_surrogate_in_json_text_is_named_not_an_arrow_error(changes: dict[str, Any], message: str) -> None:
    # JSON allows an unpaired "\\ud83d" (what a serializer cutting an emoji in half writes); UTF-8 cannot hold it.
    with pytest.raises(CampaignRecordError) as excinfo:
        campaigns_to_frame([record(1), record(2, **changes), record(3)], account_id=ACCOUNT, day=DAY)

    assert str(excinfo.value) == message


def test_frame_survives_a_parquet_round_trip_exactly(tmp_path: Path) -> None:
    frame = campaigns_to_frame(
        [record(1, name="Ünïcode 🚀 \"q\" \\ \t\n"), record(2, budget="0.07"), record(3, budget=12_345_678.9)],
        account_id=ACCOUNT,
        day=DAY,
    )
    frame.to_parquet(tmp_path / "frame.parquet", index=False)

    restored = pd.read_parquet(tmp_path / "frame.parquet")

    pd.testing.assert_frame_equal(restored, frame, check_exact=True)
    assert dict(restored.dtypes) == dict(CAMPAIGN_FRAME_DTYPES)
    validate_frame(restored, account_id=ACCOUNT, day=DAY)


def test_empty_frame_has_the_canonical_columns_and_dtypes_and_is_valid() -> None:
    frame = empty_campaign_frame()

    assert list(frame.columns) == list(CAMPAIGN_FRAME_COLUMNS)
    assert dict(frame.dtypes) == dict(CAMPAIGN_FRAME_DTYPES)
    assert len(frame) == 0
    pd.testing.assert_frame_equal(campaigns_to_frame([], account_id=ACCOUNT, day=DAY), frame)
    assert frame_to_arrow(frame, account_id=ACCOUNT, day=DAY).schema == CAMPAIGN_ARROW_SCHEMA


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"clicks": "261"}, "campaign 'campaign_2' field 'clicks': expected a whole number, got str"),
        ({"clicks": True}, "campaign 'campaign_2' field 'clicks': expected a whole number, got bool"),
        ({"impressions": 1.5}, "campaign 'campaign_2' field 'impressions': expected a whole number, got a fraction"),
        ({"conversions": 2**63}, "campaign 'campaign_2' field 'conversions': out of the 64-bit integer range"),
        ({"budget": None}, "campaign 'campaign_2' field 'budget': expected a number, got NoneType"),
        ({"budget": "lots"}, "campaign 'campaign_2' field 'budget': expected a number, got text that is not one"),
        ({"budget": 1.005}, "campaign 'campaign_2' field 'budget': does not fit decimal(18, 2)"),
        (
            {"created_at": "0001-01-01T00:00:00+01:00"},
            "campaign 'campaign_2' field 'created_at': timestamp is outside the years 1 to 9999 in UTC",
        ),
        (
            {"created_at": "9999-12-31T23:59:59-01:00"},
            "campaign 'campaign_2' field 'created_at': timestamp is outside the years 1 to 9999 in UTC",
        ),
        ({"budget": 10**16}, "campaign 'campaign_2' field 'budget': does not fit decimal(18, 2)"),
        ({"name": 7}, "campaign 'campaign_2' field 'name': expected text, got int"),
        ({"created_at": "yesterday"}, "campaign 'campaign_2' field 'created_at': expected an ISO-8601 timestamp"),
        (
            {"created_at": "2026-11-27T21:36:11"},
            "campaign 'campaign_2' field 'created_at': timestamp has no UTC offset",
        ),
    ],
)
def test_conversion_errors_name_the_campaign_and_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(CampaignRecordError) as excinfo:
        campaigns_to_frame([record(1), record(2, **changes)], account_id=ACCOUNT, day=DAY)

    assert str(excinfo.value) == message
    assert (excinfo.value.campaign_id, excinfo.value.field) == ("campaign_2", next(iter(changes)))


def test_missing_fields_and_ids_are_named() -> None:
    incomplete = record(2)
    del incomplete["status"]
    with pytest.raises(CampaignRecordError, match=r"^campaign 'campaign_2' field 'status': missing$"):
        campaigns_to_frame([incomplete], account_id=ACCOUNT, day=DAY)
    with pytest.raises(CampaignRecordError, match=r"^campaign '\?' field 'id': expected text, got int$"):
        campaigns_to_frame([record(1, id=1)], account_id=ACCOUNT, day=DAY)


def test_a_valid_frame_passes_and_converts_to_the_arrow_schema() -> None:
    table = frame_to_arrow(frame_of(3), account_id=ACCOUNT, day=DAY)

    assert table.schema == CAMPAIGN_ARROW_SCHEMA
    assert table.column("budget").to_pylist() == [Decimal("1100.00")] * 3
    assert table.column("created_at").to_pylist() == [datetime(2026, 11, 27, 21, 36, 11, 736000, timezone.utc)] * 3


def with_values(frame: pd.DataFrame, column: str, values: dict[int, Any]) -> pd.DataFrame:
    changed = frame.copy()
    for position, value in values.items():
        changed.loc[position, column] = value
    return changed


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.drop(columns=["clicks"]), "column 'clicks' violates 'required column'"),
        (lambda f: f.assign(extra=1), "column 'extra' violates 'unexpected column'"),
        (lambda f: f.astype({"clicks": "float64"}), "column 'clicks' violates 'dtype int64 (found float64)'"),
        (
            lambda f: f.astype({"metrics_date": "datetime64[s]"}),
            "column 'metrics_date' violates 'dtype date32[day][pyarrow] (found datetime64[s])'",
        ),
        (
            lambda f: f.astype({"created_at": "datetime64[ns, UTC]"}),
            "column 'created_at' violates 'dtype datetime64[us, UTC] (found datetime64[ns, UTC])'",
        ),
        (lambda f: f.astype({"campaign_id": object}), "column 'campaign_id' violates 'dtype string (found object)'"),
        (lambda f: with_values(f, "name", {1: None}), "column 'name' violates 'not null': campaign_2"),
        (lambda f: with_values(f, "campaign_id", {2: None}), "column 'campaign_id' violates 'not null': row 2"),
        (lambda f: with_values(f, "budget", {0: None}), "column 'budget' violates 'not null': campaign_1"),
        (
            lambda f: with_values(f, "name", {0: "nul\x00inside"}),
            "column 'name' violates 'no NUL character': campaign_1",
        ),
        (
            lambda f: with_values(f, "created_at", {3: pd.NaT}),
            "column 'created_at' violates 'not null': campaign_4",
        ),
        (lambda f: with_values(f, "metrics_date", {6: None}), "column 'metrics_date' violates 'not null': campaign_7"),
        (
            lambda f: with_values(f, "name", {1: "é" * 10_001, 7: "x" * 10_001}),
            "column 'name' violates 'at most 10,000 characters': campaign_2, campaign_8",
        ),
        (
            lambda f: with_values(f, "campaign_id", {9: "c" * 256}),
            f"column 'campaign_id' violates 'at most 255 characters': '{'c' * 64}'...",
        ),
        (
            lambda f: with_values(f, "budget", {1: Decimal("1.005"), 2: 2.5}),
            "column 'budget' violates 'decimal(18, 2)': campaign_2, campaign_3",
        ),
        (
            lambda f: with_values(f, "budget", {0: Decimal("-0.01")}),
            "column 'budget' violates 'non-negative': campaign_1",
        ),
        (
            lambda f: with_values(f, "clicks", {2: -1, 8: -5}),
            "column 'clicks' violates 'non-negative': campaign_3, campaign_9",
        ),
        (
            lambda f: with_values(f, "conversions", {n: -1 for n in range(8)}),
            "column 'conversions' violates 'non-negative': campaign_1, campaign_2, campaign_3, campaign_4, "
            "campaign_5 and 3 more",
        ),
        (
            lambda f: with_values(f, "campaign_id", {4: "campaign_1"}),
            "column 'campaign_id' violates 'unique (account_id, metrics_date, campaign_id)': campaign_1",
        ),
        (
            lambda f: with_values(f, "account_id", {3: "globex"}),
            "column 'account_id' violates 'belongs to account acme-retail': campaign_4",
        ),
        (
            lambda f: with_values(f, "metrics_date", {5: date(2026, 11, 26)}),
            "column 'metrics_date' violates 'belongs to day 2026-11-27': campaign_6",
        ),
    ],
)
def test_validation_errors_name_the_column_the_rule_and_a_sample_of_ids(mutate, message: str) -> None:
    with pytest.raises(FrameValidationError) as excinfo:
        validate_frame(mutate(frame_of(10)), account_id=ACCOUNT, day=DAY)

    assert str(excinfo.value) == message


def test_text_is_limited_in_characters_not_bytes() -> None:
    frame = with_values(frame_of(3), "name", {0: "é" * 10_000, 1: "🚀" * 10_000})

    table = frame_to_arrow(frame, account_id=ACCOUNT, day=DAY)

    assert table.column("name").to_pylist()[:2] == ["é" * 10_000, "🚀" * 10_000]


def test_a_nul_outside_the_rows_of_a_slice_is_not_theirs() -> None:
    whole = with_values(frame_of(10), "name", {9: "nul\x00inside"})
    head = whole.iloc[:5].reset_index(drop=True)

    assert frame_to_arrow(head, account_id=ACCOUNT, day=DAY).num_rows == 5
    with pytest.raises(FrameValidationError, match="no NUL character"):
        validate_frame(whole.iloc[5:].reset_index(drop=True), account_id=ACCOUNT, day=DAY)


def test_validation_error_carries_its_parts_and_never_row_values() -> None:
    frame = with_values(frame_of(10), "clicks", {n: -1 for n in range(7)})
    frame["name"] = "secret name " + frame["campaign_id"]

    with pytest.raises(FrameValidationError) as excinfo:
        validate_frame(frame)

    error = excinfo.value
    assert (error.column, error.rule, error.offending_rows) == ("clicks", "non-negative", 7)
    assert error.sample_ids == ("campaign_1", "campaign_2", "campaign_3", "campaign_4", "campaign_5")
    assert "secret name" not in str(error)


def test_unprintable_or_long_ids_are_shown_quoted_and_cut() -> None:
    frame = frame_of(2)
    frame["campaign_id"] = pd.array(["line\nbreak", "x" * 100], dtype="string[pyarrow]")
    frame["clicks"] = np.array([-1, -1])

    with pytest.raises(FrameValidationError) as excinfo:
        validate_frame(frame)

    assert str(excinfo.value) == f"column 'clicks' violates 'non-negative': 'line\\nbreak', '{'x' * 64}'..."


def test_keys_repeated_across_accounts_or_days_are_unique() -> None:
    frame = pd.concat(
        [frame_of(2), campaigns_to_frame([record(1)], account_id="globex", day=DAY)], ignore_index=True
    )

    validate_frame(frame)
    with pytest.raises(FrameValidationError, match="belongs to account acme-retail"):
        validate_frame(frame, account_id=ACCOUNT)


def test_arrow_table_turns_back_into_the_same_frame() -> None:
    frame = with_values(frame_of(4), "name", {1: "ünïcödé\nline", 2: ""})

    for original in (frame, empty_campaign_frame()):
        table = frame_to_arrow(original)
        pd.testing.assert_frame_equal(frame_from_arrow(table), original, check_exact=True)
        shuffled = table.select(list(reversed(CAMPAIGN_FRAME_COLUMNS)))
        pd.testing.assert_frame_equal(frame_from_arrow(shuffled), original, check_exact=True)


def test_any_pandas_string_dtype_is_accepted_for_text() -> None:
    frame = frame_of(2).astype({"name": "string[python]", "status": "str"})

    table = frame_to_arrow(frame, account_id=ACCOUNT, day=DAY)

    assert table.column("name").type == pa.large_string()
    assert table.column("status").to_pylist() == ["active", "active"]


def test_errors_survive_pickling_between_processes() -> None:
    errors = [
        FrameValidationError("clicks", "non-negative", ["campaign_3"], offending_rows=4),
        CampaignRecordError("campaign_2", "budget", "does not fit decimal(18, 2)"),
    ]

    for error in errors:
        restored = pickle.loads(pickle.dumps(error))
        assert (type(restored), str(restored), vars(restored)) == (type(error), str(error), vars(error))
