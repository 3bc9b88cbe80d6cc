"""The loading report says whether COPY alone into the target tables is below the aim from the run's own figures."""

from __future__ import annotations

from typing import Any

import pytest

from bench import results


def loading_figures(*, target_copy_vs_raw_copy: float) -> dict[str, Any]:
    copy = {"seconds": 1.0, "rows_per_second": 1_000_000.0}
    return {
        "rows": 1_000_000,
        "upsert": {"seconds": 5.0, "rows_per_second": 200_000.0},
        "raw_copy": copy | {"format": "binary"},
        "raw_copy_by_format": {"binary": copy},
        "upsert_vs_raw_copy": 0.2,
        "to_sql": {"seconds": 10.0, "rows_per_second": 10_000.0, "rows": 100_000},
        "peak_rss_bytes": 600 * 2**20,
        "target_copy": {"seconds": 1 / target_copy_vs_raw_copy, "rows_per_second": 1_000_000 * target_copy_vs_raw_copy},
        "target_copy_vs_raw_copy": target_copy_vs_raw_copy,
        "upsert_vs_target_copy": 0.2 / target_copy_vs_raw_copy,
        "next_day": {"seconds": 6.0, "rows_per_second": 166_667.0},
    }


@pytest.mark.parametrize(("ratio", "word", "noted"), [(0.2, "below", True), (0.5, "within", False)])
def test_the_schema_reference_is_called_below_or_within_the_aim_by_its_value(ratio: float, word: str, noted: bool) -> None:
    figures = loading_figures(target_copy_vs_raw_copy=ratio)

    section = "\n".join(results.loading_section(figures))
    notes = "\n".join(results._loading_notes(figures))

    assert f"{ratio:.2f}x of raw COPY ({word} the 0.4x aim before any validation or merging)" in section
    assert ("into empty copies of the two target tables reaches only" in notes) is noted


def test_figures_of_runs_without_the_reference_still_make_a_report() -> None:
    figures = loading_figures(target_copy_vs_raw_copy=0.2)
    for key in ("target_copy", "target_copy_vs_raw_copy", "upsert_vs_target_copy", "next_day"):
        del figures[key]

    assert "For scale" not in "\n".join(results.loading_section(figures))
    assert "target tables" not in "\n".join(results._loading_notes(figures))
