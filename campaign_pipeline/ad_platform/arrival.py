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

- answered: the answer's time minus the quickest answer seen from that
  endpoint with that status (a quick 503 says nothing about a sync's 2 s):
  what the platform does after counting, such as the 2 s of a ``sync``, takes
  at least that long. The first answer of an endpoint says nothing yet about
  how its time splits, so that slot is dated at the answer itself;
- unanswered (a timeout, a dropped connection): the sending time plus the
  largest delay that answers of the last window showed beyond their
  endpoint's quickest; when answers come back on time, that is the sending
  time itself.

A burst sent while the platform lags is delayed as a whole, so its quickest
answer is late too, and the slots dated by it are dated too early. When a
later answer of the endpoint is quicker, the slots of the last window dated
by the slower quickest are dated again by the new one (``date_slot`` of
:meth:`ArrivalEstimator.answered`), which only ever moves a slot later. The
first window of a run is the one at risk: its requests are sent at once, into
a platform that is still catching up, and the next window opens a full window
later, long after its answers came back.

Without queueing a slot keeps its sending time, so a saturated window loses
nothing.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Answer:
    kind: str
    sent_at: float
    answered_at: float
    dated_at: float
    date_slot: Callable[[float], None] | None

    @property
    def latency(self) -> float:
        return max(0.0, self.answered_at - self.sent_at)


class ArrivalEstimator:
    """Estimates the latest moment the platform can have counted each request of one account.

    Every moment passed in is on one monotonic clock. Thread-safe.

    Args:
        horizon_seconds: How long an answer counts, for the delay of an
            unanswered request and for dating its slot again (the rate-limit
            window).
    """

    def __init__(self, horizon_seconds: float) -> None:
        self._horizon_seconds = horizon_seconds
        self._lock = threading.Lock()
        self._quickest: dict[str, float] = {}
        # Answers of the last horizon, oldest first.
        self._answers: deque[_Answer] = deque()

    def answered(
        self,
        endpoint: str,
        sent_at: float,
        answered_at: float,
        date_slot: Callable[[float], None] | None = None,
    ) -> float:
        """Record an answer; return the latest moment the platform can have counted its request.

        Args:
            endpoint: What the answer's time is compared with (endpoint and status).
            sent_at: When the request was sent.
            answered_at: When its answer came back.
            date_slot: Dates the request's slot again, at a later moment, when a
                quicker answer of ``endpoint`` shows that the platform counted it
                later than the returned moment. It is called without any lock of
                the estimator held, possibly from another thread.
        """
        answer = _Answer(endpoint, sent_at, answered_at, answered_at, date_slot)
        with self._lock:
            self._forget_before(answered_at - self._horizon_seconds)
            known = self._quickest.get(endpoint)
            quickest = answer.latency if known is None else min(known, answer.latency)
            moved = []
            if known is not None:
                answer.dated_at = max(sent_at, answered_at - quickest)
                if quickest < known:
                    moved = self._date_again(endpoint, quickest)
            self._quickest[endpoint] = quickest
            self._answers.append(answer)
        for date_again, moment in moved:
            date_again(moment)
        return answer.dated_at

    def unanswered(self, sent_at: float, now: float) -> float:
        """Return the moment to date a request that got no answer by ``now``: its sending plus the recent delay."""
        with self._lock:
            self._forget_before(now - self._horizon_seconds)
            delay = max((answer.latency - self._quickest[answer.kind] for answer in self._answers), default=0.0)
        return min(now, sent_at + delay)

    def _date_again(self, endpoint: str, quickest: float) -> list[tuple[Callable[[float], None], float]]:
        """Date again the recent answers of ``endpoint`` by a new ``quickest``, where that is later."""
        moved = []
        for answer in self._answers:
            if answer.kind != endpoint or answer.date_slot is None:
                continue
            moment = max(answer.sent_at, answer.answered_at - quickest)
            if moment > answer.dated_at:
                answer.dated_at = moment
                moved.append((answer.date_slot, moment))
        return moved

    def _forget_before(self, moment: float) -> None:
        while self._answers and self._answers[0].answered_at < moment:
            self._answers.popleft()
