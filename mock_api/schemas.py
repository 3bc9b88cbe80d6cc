"""Bodies of the contract, as the published OpenAPI schema describes them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Campaign(BaseModel):
    """One campaign with its metrics for the requested day."""

    id: str = Field(examples=["campaign_1"])
    name: str = Field(examples=["Campaign 1"])
    status: Literal["active", "paused", "completed"]
    budget: int | float = Field(ge=0, description="Integer or at most two decimals.", examples=[1100])
    impressions: int = Field(ge=0)
    clicks: int = Field(ge=0, description="Never more than impressions.")
    conversions: int = Field(ge=0, description="Never more than clicks.")
    created_at: str = Field(description="ISO-8601 with milliseconds and Z.", examples=["2024-11-27T21:36:11.736Z"])


class Pagination(BaseModel):
    """Where a page sits in the list."""

    page: int = Field(ge=1)
    limit: int = Field(ge=1)
    total: int = Field(ge=0, description="Number of campaigns of the account.")
    has_more: bool


class CampaignPage(BaseModel):
    """One page of ``GET /api/campaigns``."""

    data: list[Campaign]
    pagination: Pagination


class TokenResponse(BaseModel):
    """A new access token."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int | float = Field(gt=0, description="Lifetime in seconds.", examples=[3600])
    issued_at: int = Field(description="Unix seconds.")


class SyncRequest(BaseModel):
    """Body of ``POST /api/campaigns/{campaign_id}/sync``; must repeat the path's id."""

    model_config = ConfigDict(extra="ignore")

    campaign_id: str = Field(examples=["campaign_1"])


class SyncResult(BaseModel):
    """Outcome of a sync."""

    success: Literal[True]
    campaign_id: str
    synced_at: str = Field(description="ISO-8601 with milliseconds and Z.")
    message: str


class Health(BaseModel):
    """Liveness of the simulator."""

    status: Literal["ok"]
    timestamp: str = Field(description="ISO-8601 with milliseconds and Z.")
    uptime: float = Field(ge=0, description="Seconds since start.")


class ErrorBody(BaseModel):
    """Every refusal: a short ``error`` class and a human ``message``."""

    error: str = Field(examples=["Service temporarily unavailable"])
    message: str


class UnauthorizedBody(ErrorBody):
    """A 401: ``Unauthorized``, ``Invalid credentials`` or ``Token expired`` (with ``expired_at``)."""

    expired_at: str | None = Field(default=None, description="ISO-8601; only when error is 'Token expired'.")


class RateLimitedBody(ErrorBody):
    """A 429."""

    retry_after: int = Field(ge=1, description="Seconds until the window admits a request again.")
