"""Data-quality checks of one account-day in the warehouse.

They run inside the load asset, against what PostgreSQL holds after the
commit, so each partition's materialization carries its own verdict without
a second step (and without Dagster's preview API for partitioned checks).
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

ASSET = "campaign_daily_metrics"
METRICS = ("impressions", "clicks", "conversions")
SAMPLE = 5

CAMPAIGN_DAILY_METRICS_CHECKS = [
    dg.AssetCheckSpec(
        "row_count_matches_platform_total",
        asset=ASSET,
        description="The warehouse holds one row per campaign the platform reported for the account-day.",
    ),
    dg.AssetCheckSpec("campaign_ids_unique", asset=ASSET, description="No campaign appears twice in the account-day."),
    dg.AssetCheckSpec("metrics_non_negative", asset=ASSET, description="Impressions, clicks and conversions are >= 0."),
    dg.AssetCheckSpec(
        "clicks_within_impressions",
        asset=ASSET,
        description="Clicks do not exceed impressions (a warning: the platform's numbers, not ours).",
    ),
]


def evaluate_partition_checks(stored: pd.DataFrame, *, platform_total: int) -> list[dg.AssetCheckResult]:
    """Evaluate every check on ``stored``, the rows the warehouse holds for one account-day."""
    duplicated = stored.loc[stored["campaign_id"].duplicated(keep=False), "campaign_id"]
    negative = stored.loc[(stored.loc[:, list(METRICS)] < 0).any(axis=1), "campaign_id"]
    over_clicked = stored.loc[stored["clicks"] > stored["impressions"], "campaign_id"]
    return [
        dg.AssetCheckResult(
            check_name="row_count_matches_platform_total",
            passed=len(stored) == platform_total,
            metadata={"rows": len(stored), "platform_total": platform_total},
        ),
        _ids_result("campaign_ids_unique", duplicated, dg.AssetCheckSeverity.ERROR),
        _ids_result("metrics_non_negative", negative, dg.AssetCheckSeverity.ERROR),
        _ids_result("clicks_within_impressions", over_clicked, dg.AssetCheckSeverity.WARN),
    ]


def _ids_result(name: str, offending: pd.Series, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    ids = sorted(set(offending.astype(str)))
    return dg.AssetCheckResult(
        check_name=name,
        passed=not ids,
        severity=severity,
        metadata={"offending_campaigns": len(ids), "sample": ", ".join(ids[:SAMPLE]) or "none"},
    )
