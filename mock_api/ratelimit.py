"""A sliding-window rate limiter: at most ``limit`` admitted requests per key in any ``window`` seconds."""

from __future__ import annotations

import math
from collections import deque


class SlidingWindowLimiter:
    """Admits a request when fewer than ``limit`` admitted requests of its key arrived in the last ``window``.

    Refused requests are not recorded, so hammering a full window does not
    extend it. Times come from the caller (a monotonic clock), which keeps
    the limiter pure and testable without sleeping.
    """

    def __init__(self) -> None:
        self._arrivals: dict[str, deque[float]] = {}

    def admit(self, key: str, now: float, limit: int, window: float) -> int | None:
        """Record and admit a request of ``key`` arriving at ``now``, or refuse it.

        Args:
            key: The rate-limit key (the account).
            now: Arrival time, in seconds of a monotonic clock.
            limit: Requests admitted per window.
            window: Window length in seconds.

        Returns:
            ``None`` when admitted; otherwise the whole seconds (at least 1)
            until the oldest admitted request leaves the window.
        """
        arrivals = self._arrivals.setdefault(key, deque())
        horizon = now - window
        while arrivals and arrivals[0] <= horizon:
            arrivals.popleft()
        if len(arrivals) < limit:
            arrivals.append(now)
            return None
        oldest_in_window = arrivals[len(arrivals) - limit]
        return max(1, math.ceil(oldest_in_window + window - now))

    def reset(self) -> None:
        """Forget every arrival."""
        self._arrivals.clear()
