"""Dagster resources: thin, typed wrappers that build the plain-Python clients."""

from campaign_pipeline.resources.ad_platform import AdPlatformResource
from campaign_pipeline.resources.warehouse import WarehouseResource

__all__ = ["AdPlatformResource", "WarehouseResource"]
