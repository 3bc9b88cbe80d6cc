"""``AdPlatformResource``: the Dagster face of :mod:`campaign_pipeline.ad_platform`.

Accounts and their secrets: the account registry (``accounts.toml``) lists the
accounts and holds no secret; the credentials of every account are one JSON
object in the environment variable ``CAMPAIGN_PIPELINE_CREDENTIALS``::

    {"acme-retail": {"email": "...", "password": "..."}}

Definitions pass it as ``credentials=dagster.EnvVar("CAMPAIGN_PIPELINE_CREDENTIALS")``,
so it is read when a run starts, never at import, and the UI shows only the
variable's name. It is parsed only in :meth:`AdPlatformResource.get_client`,
and no ``repr``, log line or error shows it.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field, PrivateAttr

from campaign_pipeline.accounts import credentials_for, parse_credentials, validate_account_id
from campaign_pipeline.ad_platform import (
    AdPlatformClient,
    ClientConfig,
    PostgresSlidingWindowLimiter,
    RateLimiter,
    RetryBudget,
    SlidingWindowLimiter,
)
from campaign_pipeline.ad_platform.client import Logger
from campaign_pipeline.database import libpq_url

DEFAULTS = ClientConfig()
PARTITION_TAG = "dagster/partition"


class AdPlatformResource(dg.ConfigurableResource):
    """The ad platform: builds one :class:`AdPlatformClient` per account-day.

    The rate limiter is shared by every client the resource builds; with
    ``limiter_url`` it lives in PostgreSQL and is shared by every run, so two
    runs of one account (an asset backfill launched from the UI bypasses the
    per-account run limit) still share the account's window.
    """

    base_url: str = Field(description="Base URL of the ad platform, e.g. https://ads.example.com.")
    credentials: str = Field(
        repr=False,
        description="JSON object of every account's login: pass EnvVar('CAMPAIGN_PIPELINE_CREDENTIALS').",
    )
    rate_limit: int = Field(default=DEFAULTS.rate_limit, gt=0, description="Requests per account per window.")
    rate_window_seconds: float = Field(
        default=DEFAULTS.rate_window_seconds, gt=0, description="The platform's sliding window, in seconds."
    )
    limiter_safety_margin_seconds: float = Field(
        default=DEFAULTS.limiter_safety_margin_seconds,
        ge=0,
        description="Added to the window: the platform counts a request when it arrives.",
    )
    limiter_url: str | None = Field(
        default=None,
        repr=False,
        description="PostgreSQL URL holding the shared rate-limit windows; unset: one window per run process.",
    )
    page_size: int = Field(default=DEFAULTS.page_size, gt=0, description="Campaigns asked for per page.")
    sync_workers: int = Field(default=DEFAULTS.sync_workers, gt=0, description="Campaign syncs in flight at once.")
    connect_timeout_seconds: float = Field(default=DEFAULTS.connect_timeout_seconds, gt=0)
    read_timeout_seconds: float = Field(
        default=DEFAULTS.read_timeout_seconds, gt=0, description="Silence after which a request counts as hung."
    )
    hang_detection_multiplier: float | None = Field(
        default=DEFAULTS.hang_detection_multiplier,
        gt=1,
        description="Requests wait this many times their endpoint's slowest recent answer before they count as "
        "hung (at most read_timeout_seconds); None: always read_timeout_seconds.",
    )
    hang_detection_floor_seconds: float = Field(
        default=DEFAULTS.hang_detection_floor_seconds, gt=0, description="Shortest wait that hang detection sets."
    )
    call_deadline_seconds: float = Field(
        default=DEFAULTS.call_deadline_seconds, gt=0, description="Longest one request may take across its retries."
    )
    partition_deadline_seconds: float = Field(
        default=DEFAULTS.partition_deadline_seconds, gt=0, description="Longest one account-day may take."
    )
    transient_retries: int = Field(
        default=DEFAULTS.transient_retry.retries,
        ge=0,
        description="Retries of one call after 5xx answers, timeouts and hangs.",
    )
    backoff_base_seconds: float = Field(
        default=DEFAULTS.backoff_base_seconds, gt=0, description="Ceiling of the first backoff; it doubles per retry."
    )
    backoff_cap_seconds: float = Field(
        default=DEFAULTS.backoff_cap_seconds, gt=0, description="Largest single backoff."
    )
    token_refresh_margin_seconds: float = Field(
        default=DEFAULTS.token_refresh_margin_seconds, gt=0, description="How long before expiry a token is replaced."
    )

    _limiter: RateLimiter | None = PrivateAttr(default=None)
    _log_context: dict[str, str] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Build the shared limiter, and note the run and partition for log lines."""
        self._limiter = self._build_limiter()
        run = context.run
        if run is not None:
            if run.tags.get(PARTITION_TAG):
                self._log_context["partition"] = run.tags[PARTITION_TAG]
            self._log_context["run"] = run.run_id

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Close the shared limiter."""
        if self._limiter is not None:
            self._limiter.close()
            self._limiter = None

    def client_config(self) -> ClientConfig:
        """Return the client settings these fields describe."""
        return ClientConfig(
            connect_timeout_seconds=self.connect_timeout_seconds,
            read_timeout_seconds=self.read_timeout_seconds,
            hang_detection_multiplier=self.hang_detection_multiplier,
            hang_detection_floor_seconds=self.hang_detection_floor_seconds,
            page_size=self.page_size,
            rate_limit=self.rate_limit,
            rate_window_seconds=self.rate_window_seconds,
            limiter_safety_margin_seconds=self.limiter_safety_margin_seconds,
            sync_workers=self.sync_workers,
            call_deadline_seconds=self.call_deadline_seconds,
            partition_deadline_seconds=self.partition_deadline_seconds,
            token_refresh_margin_seconds=self.token_refresh_margin_seconds,
            transient_retry=RetryBudget(retries=self.transient_retries, seconds=DEFAULTS.transient_retry.seconds),
            backoff_base_seconds=self.backoff_base_seconds,
            backoff_cap_seconds=self.backoff_cap_seconds,
        )

    def get_client(self, account_id: str, *, logger: Logger | None = None) -> AdPlatformClient:
        """Return a client for ``account_id``; use it as a context manager.

        Raises:
            AccountConfigError: the account id is invalid, or the credentials
                are malformed or have no entry for it (the message names the
                account, never a secret).
        """
        validate_account_id(account_id)
        credentials = credentials_for(parse_credentials(self.credentials), account_id)
        if self._limiter is None:
            self._limiter = self._build_limiter()
        return AdPlatformClient(
            self.base_url,
            account_id,
            credentials,
            config=self.client_config(),
            limiter=self._limiter,
            logger=logger,
            log_context=self._log_context,
        )

    def _build_limiter(self) -> RateLimiter:
        if self.limiter_url:
            return PostgresSlidingWindowLimiter(
                libpq_url(self.limiter_url),
                limit=self.rate_limit,
                window_seconds=self.rate_window_seconds,
                safety_margin_seconds=self.limiter_safety_margin_seconds,
            )
        return SlidingWindowLimiter(
            self.rate_limit, self.rate_window_seconds, safety_margin_seconds=self.limiter_safety_margin_seconds
        )
