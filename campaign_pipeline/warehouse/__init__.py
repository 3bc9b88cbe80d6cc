"""The campaign warehouse: plain Python over psycopg 3, with no Dagster import."""

from campaign_pipeline.warehouse.frame import (
    CAMPAIGN_FRAME_COLUMNS,
    CampaignRecordError,
    FrameValidationError,
    campaigns_to_frame,
    empty_campaign_frame,
    validate_frame,
)
from campaign_pipeline.warehouse.migrate import MigrationError
from campaign_pipeline.warehouse.transactions import CommitOutcomeUnknown
from campaign_pipeline.warehouse.writer import CampaignFailure, LoadResult, PartitionLoadError, Warehouse

__all__ = [
    "CAMPAIGN_FRAME_COLUMNS",
    "CampaignFailure",
    "CampaignRecordError",
    "CommitOutcomeUnknown",
    "FrameValidationError",
    "LoadResult",
    "MigrationError",
    "PartitionLoadError",
    "Warehouse",
    "campaigns_to_frame",
    "empty_campaign_frame",
    "validate_frame",
]
