"""Data-quality checks of one account-day in the warehouse.

They run inside the load asset, against what PostgreSQL holds after the
commit, so each partition's materialization carries its own verdict without
a second step (and without Dagster's preview API for partitioned checks).
The figures are computed in PostgreSQL (:meth:`Warehouse.profile_partition`),
so a large account-day is not read back.
"""

from __future__ import annotations

import dagster as dg

from campaign_pipeline.warehouse.writer import OffendingCampaigns, PartitionProfile

ASSET = "campaign_daily_metrics"
# Offending campaign ids each check shows.
CHECK_SAMPLE_SIZE = 5

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
    dg.AssetCheckSpec(
        "campaigns_have_attributes",
        asset=ASSET,
        description="Every campaign with metrics has its row in campaigns (no foreign key enforces it).",
    ),
]


def evaluate_partition_checks(profile: PartitionProfile, *, platform_total: int) -> list[dg.AssetCheckResult]:
    """Evaluate every check on ``profile``, what the warehouse holds for one account-day."""
    return [
        dg.AssetCheckResult(
            check_name="row_count_matches_platform_total",
            passed=profile.rows == platform_total,
            metadata={"rows": profile.rows, "platform_total": platform_total},
        ),
        _ids_result("campaign_ids_unique", profile.duplicated, dg.AssetCheckSeverity.ERROR),
        _ids_result("metrics_non_negative", profile.negative_metrics, dg.AssetCheckSeverity.ERROR),
        _ids_result("clicks_within_impressions", profile.over_clicked, dg.AssetCheckSeverity.WARN),
        _ids_result("campaigns_have_attributes", profile.without_attributes, dg.AssetCheckSeverity.ERROR),
    ]


def _ids_result(name: str, offending: OffendingCampaigns, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        passed=offending.count == 0,
        severity=severity,
        metadata={"offending_campaigns": offending.count, "sample": ", ".join(offending.sample) or "none"},
    )
