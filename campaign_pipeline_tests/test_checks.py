"""The data-quality checks' verdicts from a partition profile (no database: the profile is given)."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from campaign_pipeline.checks import CAMPAIGN_DAILY_METRICS_CHECKS, evaluate_partition_checks
from campaign_pipeline.warehouse.writer import PREVIEW_COLUMNS, OffendingCampaigns, PartitionProfile


def profile(rows: int = 3, **offending: OffendingCampaigns) -> PartitionProfile:
    names = ("duplicated", "negative_metrics", "over_clicked", "without_attributes")
    rules = dict.fromkeys(names, OffendingCampaigns())
    return PartitionProfile(rows=rows, preview=pd.DataFrame(columns=list(PREVIEW_COLUMNS)), **(rules | offending))


def verdicts(results: list[dg.AssetCheckResult]) -> dict[str, tuple]:
    return {
        result.check_name: (
            result.passed,
            result.severity,
            {key: getattr(value, "value", value) for key, value in result.metadata.items()},
        )
        for result in results
    }


def test_a_clean_day_passes_every_check() -> None:
    results = evaluate_partition_checks(profile(rows=3), platform_total=3)

    assert [result.check_name for result in results] == [spec.name for spec in CAMPAIGN_DAILY_METRICS_CHECKS]
    assert verdicts(results) == {
        "row_count_matches_platform_total": (True, dg.AssetCheckSeverity.ERROR, {"rows": 3, "platform_total": 3}),
        "campaign_ids_unique": (True, dg.AssetCheckSeverity.ERROR, {"offending_campaigns": 0, "sample": "none"}),
        "metrics_non_negative": (True, dg.AssetCheckSeverity.ERROR, {"offending_campaigns": 0, "sample": "none"}),
        "clicks_within_impressions": (True, dg.AssetCheckSeverity.WARN, {"offending_campaigns": 0, "sample": "none"}),
        "campaigns_have_attributes": (True, dg.AssetCheckSeverity.ERROR, {"offending_campaigns": 0, "sample": "none"}),
    }


def test_each_broken_rule_fails_its_check_with_the_count_and_a_sample() -> None:
    results = evaluate_partition_checks(
        profile(
            rows=4,
            duplicated=OffendingCampaigns(1, ("c_2",)),
            negative_metrics=OffendingCampaigns(7, ("c_1", "c_3")),
            over_clicked=OffendingCampaigns(2, ("c_4", "c_5")),
            without_attributes=OffendingCampaigns(3, ("c_6", "c_7", "c_8")),
        ),
        platform_total=3,
    )

    assert verdicts(results) == {
        "row_count_matches_platform_total": (False, dg.AssetCheckSeverity.ERROR, {"rows": 4, "platform_total": 3}),
        "campaign_ids_unique": (False, dg.AssetCheckSeverity.ERROR, {"offending_campaigns": 1, "sample": "c_2"}),
        "metrics_non_negative": (False, dg.AssetCheckSeverity.ERROR, {"offending_campaigns": 7, "sample": "c_1, c_3"}),
        "clicks_within_impressions": (
            False,
            dg.AssetCheckSeverity.WARN,
            {"offending_campaigns": 2, "sample": "c_4, c_5"},
        ),
        "campaigns_have_attributes": (
            False,
            dg.AssetCheckSeverity.ERROR,
            {"offending_campaigns": 3, "sample": "c_6, c_7, c_8"},
        ),
    }
