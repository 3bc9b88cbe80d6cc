"""Every limit, timeout, budget and deadline of the ad platform client, with its default."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class RetryBudget:
    """How much one call may spend retrying one class of failure.

    Attributes:
        retries: Retries allowed (attempts = retries + 1).
        seconds: Total seconds of waiting allowed before those retries.
    """

    retries: int
    seconds: float


@dataclass(frozen=True)
class ClientConfig:
    """Settings of :class:`~campaign_pipeline.ad_platform.client.AdPlatformClient`.

    The defaults fit the platform's contract: 10 requests per 60 s per
    account, a 2 s sync, hangs that never end, tokens valid for an hour.

    Attributes:
        connect_timeout_seconds: Longest wait for a TCP connection.
        read_timeout_seconds: Longest silence while waiting for an answer; this
            is what detects a hung request, so it must exceed the 2 s sync.
        hang_detection_multiplier: Once an endpoint has answered a few times,
            its requests wait this many times its slowest recent successful
            answer (at most ``read_timeout_seconds``) before they count as hung
            (see :mod:`.hangs`); ``None`` always waits ``read_timeout_seconds``.
        hang_detection_floor_seconds: Shortest wait that hang detection sets.
        page_size: Campaigns asked for per page (the largest the platform accepts).
        max_pages: Pages after which a list that still has more is declared endless.
        rate_limit: Requests the platform admits per account per window.
        rate_window_seconds: Length of the platform's sliding window.
        limiter_safety_margin_seconds: Added to the window, because the platform
            counts a request when it arrives, a little after its slot was taken.
        page_workers: Pages of one listing in flight at once (page 1 first,
            alone: it tells how many pages follow). 1 fetches page after page.
        sync_workers: Campaign syncs in flight at once. A full window of
            ``rate_limit`` syncs sent together needs ``rate_limit`` workers;
            fewer still saturate the window when ``rate_limit`` is small.
        transient_retry: Budget for 5xx, connection errors, timeouts and hangs.
        rate_limited_retry: Budget for 429s (seconds: the waits the platform asked for).
        token_retry: Budget for 401s on bearer calls (each retry uses a new token).
        backoff_base_seconds: Ceiling of the first backoff; it doubles per retry.
        backoff_cap_seconds: Largest single backoff.
        default_retry_after_seconds: Wait after a 429 that names none; ``None``
            means one window, after which the window is surely free.
        call_deadline_seconds: Longest one call may take across its retries,
            counted from its first attempt.
        partition_deadline_seconds: Longest one partition (one client) may take;
            counted from its first request.
        token_refresh_margin_seconds: How long before expiry a token is replaced.
    """

    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 30.0
    hang_detection_multiplier: float | None = 1.5
    hang_detection_floor_seconds: float = 2.0
    page_size: int = 100
    max_pages: int = 1000
    rate_limit: int = 10
    rate_window_seconds: float = 60.0
    limiter_safety_margin_seconds: float = 0.25
    page_workers: int = 4
    sync_workers: int = 8
    transient_retry: RetryBudget = field(default_factory=lambda: RetryBudget(retries=8, seconds=300.0))
    rate_limited_retry: RetryBudget = field(default_factory=lambda: RetryBudget(retries=5, seconds=600.0))
    token_retry: RetryBudget = field(default_factory=lambda: RetryBudget(retries=2, seconds=0.0))
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 8.0
    default_retry_after_seconds: float | None = None
    call_deadline_seconds: float = 900.0
    partition_deadline_seconds: float = 3600.0
    token_refresh_margin_seconds: float = 60.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, RetryBudget):
                _check_budget(item.name, value)
            elif item.name == "hang_detection_multiplier":
                continue
            elif isinstance(value, int) and not isinstance(value, bool):
                if value < 1:
                    raise ValueError(f"ClientConfig.{item.name} must be at least 1, not {value}.")
            elif isinstance(value, float):
                _check_seconds(item.name, value, allow_zero=item.name == "limiter_safety_margin_seconds")
        if self.hang_detection_multiplier is not None and not (
            math.isfinite(self.hang_detection_multiplier) and self.hang_detection_multiplier > 1
        ):
            raise ValueError(
                "ClientConfig.hang_detection_multiplier must be a number greater than 1 or None, "
                f"not {self.hang_detection_multiplier}."
            )
        if self.read_timeout_seconds > self.call_deadline_seconds:
            raise ValueError(
                "ClientConfig.read_timeout_seconds must not exceed call_deadline_seconds "
                f"({self.read_timeout_seconds:g} > {self.call_deadline_seconds:g})."
            )

    @property
    def rate_limit_default_wait_seconds(self) -> float:
        """Wait after a 429 that names none."""
        if self.default_retry_after_seconds is None:
            return self.rate_window_seconds
        return self.default_retry_after_seconds


def _check_seconds(name: str, value: float, *, allow_zero: bool) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else "more than 0"
        raise ValueError(f"ClientConfig.{name} must be a finite number of seconds, {bound}, not {value}.")


def _check_budget(name: str, budget: RetryBudget) -> None:
    if budget.retries < 0 or not math.isfinite(budget.seconds) or budget.seconds < 0:
        raise ValueError(f"ClientConfig.{name} must allow 0 or more retries and 0 or more seconds, not {budget}.")
