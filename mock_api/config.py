"""The simulator's settings: fault settings (changeable at run time) and profiles.

The ``original`` profile holds the contract's default figures, ``fast`` turns
every fault off for tests, and ``chaos`` injects faults on every endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

Endpoint = Literal["token", "list", "sync"]
ENDPOINTS: tuple[Endpoint, ...] = ("token", "list", "sync")
ProfileName = Literal["original", "fast", "chaos"]


class EndpointFaults(BaseModel):
    """Faults injected into the admitted requests of one endpoint.

    One uniform draw per request decides: below ``error_rate`` the answer is a
    503, below ``error_rate + hang_rate`` the request hangs, else it proceeds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    error_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="Share of requests answered 503.")
    hang_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="Share of requests that never answer.")
    extra_latency_seconds: float = Field(default=0.0, ge=0.0, description="Delay added before every answer.")

    @model_validator(mode="after")
    def _rates_fit_in_one(self) -> EndpointFaults:
        if self.error_rate + self.hang_rate > 1.0:
            raise ValueError("error_rate + hang_rate must be at most 1.")
        return self


class FaultSettings(BaseModel):
    """Everything an operator may change while the simulator runs."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    token: EndpointFaults = Field(description="Faults of POST /auth/token.")
    list: EndpointFaults = Field(description="Faults of GET /api/campaigns.")
    sync: EndpointFaults = Field(description="Faults of POST /api/campaigns/{id}/sync.")
    rate_limit: int = Field(ge=1, description="Requests admitted per account per sliding window.")
    rate_window_seconds: float = Field(gt=0.0, description="Length of the sliding window.")
    token_lifetime_seconds: float = Field(gt=0.0, description="Lifetime of tokens issued from now on.")
    sync_latency_seconds: float = Field(ge=0.0, description="Time a successful sync takes.")
    hang_seconds: float = Field(ge=0.0, description="How long a hanging request waits before a 503.")

    def endpoint(self, name: Endpoint) -> EndpointFaults:
        """Return the faults of endpoint ``name``."""
        faults: EndpointFaults = getattr(self, name)
        return faults

    def patched(self, patch: FaultSettingsPatch) -> FaultSettings:
        """Return these settings with the fields present in ``patch`` replaced, validated again."""
        merged: dict[str, Any] = self.model_dump()
        for key, value in patch.model_dump(exclude_none=True).items():
            merged[key] = {**merged[key], **value} if key in ENDPOINTS else value
        return FaultSettings.model_validate(merged)


class EndpointFaultsPatch(BaseModel):
    """Partial :class:`EndpointFaults`; ``latency_seconds`` is accepted for ``extra_latency_seconds``."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float | None = None
    hang_rate: float | None = None
    extra_latency_seconds: float | None = Field(
        None, validation_alias=AliasChoices("extra_latency_seconds", "latency_seconds")
    )


class FaultSettingsPatch(BaseModel):
    """Partial :class:`FaultSettings`, the body of ``PUT /__admin/faults``."""

    model_config = ConfigDict(extra="forbid")

    token: EndpointFaultsPatch | None = None
    list: EndpointFaultsPatch | None = None
    sync: EndpointFaultsPatch | None = None
    rate_limit: int | None = None
    rate_window_seconds: float | None = None
    token_lifetime_seconds: float | None = None
    sync_latency_seconds: float | None = None
    hang_seconds: float | None = None


NO_FAULTS = EndpointFaults()

PROFILES: dict[ProfileName, FaultSettings] = {
    "original": FaultSettings(
        token=NO_FAULTS,
        list=EndpointFaults(error_rate=0.2, hang_rate=0.1),
        sync=NO_FAULTS,
        rate_limit=10,
        rate_window_seconds=60.0,
        token_lifetime_seconds=3600.0,
        sync_latency_seconds=2.0,
        hang_seconds=300.0,
    ),
    "fast": FaultSettings(
        token=NO_FAULTS,
        list=NO_FAULTS,
        sync=NO_FAULTS,
        rate_limit=1_000_000,
        rate_window_seconds=1.0,
        token_lifetime_seconds=3600.0,
        sync_latency_seconds=0.0,
        hang_seconds=30.0,
    ),
    "chaos": FaultSettings(
        token=EndpointFaults(error_rate=0.1, hang_rate=0.05, extra_latency_seconds=0.05),
        list=EndpointFaults(error_rate=0.2, hang_rate=0.05, extra_latency_seconds=0.05),
        sync=EndpointFaults(error_rate=0.1, hang_rate=0.05, extra_latency_seconds=0.05),
        rate_limit=20,
        rate_window_seconds=2.0,
        token_lifetime_seconds=5.0,
        sync_latency_seconds=0.2,
        hang_seconds=30.0,
    ),
}


@dataclass(frozen=True)
class SimulatorConfig:
    """What a simulator is started with; only ``faults`` may change afterwards.

    Attributes:
        faults: Initial fault settings (a profile with any overrides applied).
        seed: Seed of every data value and fault draw.
        campaign_count: Campaigns per account.
        account_count: Generated accounts ``acct-0001``.. added to the demo accounts.
        max_page_size: Largest accepted ``limit``.
        upstream_quirks: Reproduce the upstream simulator's quirks.
        admin: Serve the operator endpoints under ``/__admin/``.
        request_log_size: Most recent requests kept for ``/__admin/requests``.
        profile: Name of the profile the fault settings came from.
    """

    faults: FaultSettings
    seed: int = 0
    campaign_count: int = 100
    account_count: int = 0
    max_page_size: int = 100
    upstream_quirks: bool = False
    admin: bool = False
    request_log_size: int = 100_000
    profile: ProfileName = "original"

    def __post_init__(self) -> None:
        for name in ("campaign_count", "max_page_size", "request_log_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.account_count < 0:
            raise ValueError(f"account_count must be at least 0, got {self.account_count}.")
