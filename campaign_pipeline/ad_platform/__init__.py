"""The ad platform client: plain Python, no Dagster.

Start at :class:`~campaign_pipeline.ad_platform.client.AdPlatformClient`.
"""

from campaign_pipeline.ad_platform.client import AdPlatformClient, SyncReport
from campaign_pipeline.ad_platform.config import ClientConfig, RetryBudget
from campaign_pipeline.ad_platform.errors import (
    AdPlatformError,
    AuthenticationError,
    DeadlineExceeded,
    FatalResponseError,
    InvalidResponseError,
    PaginationError,
    RetryBudgetExhausted,
    is_retriable_error,
)
from campaign_pipeline.ad_platform.limiter import PostgresSlidingWindowLimiter, RateLimiter, SlidingWindowLimiter
from campaign_pipeline.ad_platform.pagination import CampaignPage

__all__ = [
    "AdPlatformClient",
    "AdPlatformError",
    "AuthenticationError",
    "CampaignPage",
    "ClientConfig",
    "DeadlineExceeded",
    "FatalResponseError",
    "InvalidResponseError",
    "PaginationError",
    "PostgresSlidingWindowLimiter",
    "RateLimiter",
    "RetryBudget",
    "RetryBudgetExhausted",
    "SlidingWindowLimiter",
    "SyncReport",
    "is_retriable_error",
]
