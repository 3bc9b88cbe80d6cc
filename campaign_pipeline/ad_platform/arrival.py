"""When did the platform count a request? An estimate from the answers, for dating rate-limit slots.

The platform counts a request against the window when the request reaches
its limiter, somewhere between our sending and its answer. A slot stamped at
sending is right while both sides keep up; but when the platform queues
requests (or the machine between is starved of CPU, as with sixteen runs
starting on two cores), a request sent at ``t`` can be counted seconds later,
and the request the limiter admits one window after ``t`` then arrives less
than a window after it: a 429.

So every slot is dated again once its request ends, at the latest moment the
platform can have counted it:

- answered: the answer's time minus the quickest answer seen before from
  that endpoint with that status (a quick 503 says nothing about a sync's 2 s) (what the platform does after counting, such as the 2 s of a
  ``sync``, takes at least that long; a platform serving a burst in order
  answers its least delayed requests first, so the quickest is learned at
  once). The first answer of an endpoint says nothing yet about how its time
  splits, so that slot is dated at the answer itself;
- unanswered (a timeout, a dropped connection): the sending time plus the
  largest delay that answers of the last window showed beyond their
  endpoint's quickest; when answers come back on time, that is the sending
  time itself.

Without queueing a slot keeps its sending time, so a saturated window loses
nothing.
"""

from __future__ import annotations

import threading
from collections import deque


class ArrivalEstimator:
    """Estimates the latest moment the platform can have counted each request of one account.

    Every moment passed in is on one monotonic clock.

    Args:
        horizon_seconds: How far back answers count for the delay of an
            unanswered request (the rate-limit window).
    """

    def __init__(self, horizon_seconds: float) -> None:
        self._horizon_seconds = horizon_seconds
        self._lock = threading.Lock()
        self._quickest: dict[str, float] = {}
        # (answered at, delay beyond the endpoint's quickest answer), oldest first.
        self._delays: deque[tuple[float, float]] = deque()

    def answered(self, endpoint: str, sent_at: float, answered_at: float) -> float:
        """Record an answer; return the latest moment the platform can have counted its request."""
        latency = max(0.0, answered_at - sent_at)
        with self._lock:
            known = self._quickest.get(endpoint)
            quickest = latency if known is None else min(known, latency)
            self._quickest[endpoint] = quickest
            self._delays.append((answered_at, latency - quickest))
            self._forget_before(answered_at - self._horizon_seconds)
        if known is None:
            return answered_at
        return max(sent_at, answered_at - quickest)

    def unanswered(self, sent_at: float, now: float) -> float:
        """Return the moment to date a request that got no answer by ``now``: its sending plus the recent delay."""
        with self._lock:
            self._forget_before(now - self._horizon_seconds)
            delay = max((delay for _, delay in self._delays), default=0.0)
        return min(now, sent_at + delay)

    def _forget_before(self, moment: float) -> None:
        while self._delays and self._delays[0][0] < moment:
            self._delays.popleft()
