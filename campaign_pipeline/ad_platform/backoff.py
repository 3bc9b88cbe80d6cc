"""Pure wait arithmetic: exponential backoff with full jitter, and ``Retry-After`` parsing."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any


def full_jitter_backoff(attempt: int, *, base_seconds: float, cap_seconds: float, rng: random.Random) -> float:
    """Return the wait before retry number ``attempt`` (1-based).

    The wait is uniform in ``[0, min(cap, base * 2 ** (attempt - 1))]`` ("full
    jitter"), which spreads the retries of many callers that failed together.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be at least 1, got {attempt}.")
    exponent = min(attempt - 1, 62)
    ceiling = min(cap_seconds, base_seconds * 2.0**exponent)
    return rng.uniform(0.0, ceiling)


def parse_retry_after(header: str | None, body: Any, now: datetime) -> float | None:
    """Return the seconds a rate-limited caller is asked to wait, or ``None`` if it is not told.

    The ``Retry-After`` header wins over the body's ``retry_after`` field. The
    header holds either seconds or an HTTP-date; a date in the past means no
    wait. The platform's own simulator sends only the body field.

    Args:
        header: The ``Retry-After`` header value, if any.
        body: The decoded JSON body, if any.
        now: The current time, timezone-aware, for HTTP-dates.
    """
    from_header = _seconds_from_header(header, now) if header is not None else None
    if from_header is not None:
        return from_header
    if isinstance(body, Mapping):
        return _non_negative_seconds(body.get("retry_after"))
    return None


def _seconds_from_header(header: str, now: datetime) -> float | None:
    text = header.strip()
    seconds = _non_negative_seconds(text)
    if seconds is not None:
        return seconds
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


def _non_negative_seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return max(0.0, float(value))
