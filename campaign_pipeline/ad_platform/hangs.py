"""How long to wait for an answer before a request counts as hung, learned from the answers seen.

A hung request never answers; only a timeout ends it. The configured read
timeout has to allow for the slowest answer the platform might ever give (30 s
by default), yet the contract's slow endpoint answers in about 2 s. Waiting
the full timeout for every hang puts a hang that falls in an account-day's
last window straight onto its wall time, once per retry.

So each endpoint's successful answers are remembered, and once a few have
been seen a request of that endpoint is given ``multiplier`` times the
slowest of the recent ones (never less than a floor, never more than the
configured timeout). An answer slower than that is taken for a hang and
retried like one. If the platform slows down as a whole, every request ends
this way, and two rules bring back the configured timeout so that the slower
answers are seen and learned: a call whose last attempts all ended early
waits the configured timeout on its next one (the client counts them, see
:data:`EARLY_TIMEOUTS_IN_A_ROW`), and an endpoint whose recent attempts ended
early half of the time waits it on all of them. A slowdown costs a few
retries, never the call. The endpoint rule looks at many attempts, because
the last few of an account-day are mostly the retries of its unluckiest
campaigns, which may well all hang.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

ANSWERS_REMEMBERED = 32
ATTEMPTS_REMEMBERED = 30
# Early timeouts among an endpoint's recent attempts at which it waits the configured timeout again.
SUSPICIOUS_SHARE = 0.5
# Early timeouts of one call in a row after which its next attempt waits the configured timeout.
EARLY_TIMEOUTS_IN_A_ROW = 3


@dataclass(frozen=True)
class ReadTimeout:
    """The read timeout of one attempt.

    Attributes:
        seconds: How long to wait for the answer.
        early: Whether it was learned from the answers and is shorter than the configured timeout.
    """

    seconds: float
    early: bool


class HangDetector:
    """Per-endpoint read timeouts learned from the latencies of successful answers (thread-safe).

    Args:
        multiplier: Factor on the slowest recent successful answer.
        floor_seconds: Shortest learned timeout.
        min_answers: Successful answers of an endpoint needed before its timeout is learned.
    """

    def __init__(self, *, multiplier: float, floor_seconds: float, min_answers: int = 5) -> None:
        if not multiplier > 1:
            raise ValueError(f"The hang detection multiplier must be greater than 1, not {multiplier}.")
        if not floor_seconds > 0:
            raise ValueError(f"The hang detection floor must be greater than 0 s, not {floor_seconds}.")
        self._multiplier = multiplier
        self._floor_seconds = floor_seconds
        self._min_answers = min_answers
        self._lock = threading.Lock()
        self._answers: dict[str, deque[float]] = {}
        self._early_timeouts: dict[str, deque[bool]] = {}

    def read_timeout(self, endpoint: str, configured_seconds: float) -> ReadTimeout:
        """Return the read timeout of the next attempt at ``endpoint``, at most ``configured_seconds``."""
        with self._lock:
            answers = self._answers.get(endpoint)
            attempts = self._early_timeouts.get(endpoint, ())
            if answers is None or len(answers) < self._min_answers:
                return ReadTimeout(configured_seconds, early=False)
            if sum(attempts) >= SUSPICIOUS_SHARE * ATTEMPTS_REMEMBERED:
                return ReadTimeout(configured_seconds, early=False)
            learned = max(self._floor_seconds, self._multiplier * max(answers))
        if learned >= configured_seconds:
            return ReadTimeout(configured_seconds, early=False)
        return ReadTimeout(learned, early=True)

    def answered(self, endpoint: str, seconds: float) -> None:
        """Record a successful answer of ``endpoint`` that took ``seconds``."""
        with self._lock:
            self._answers.setdefault(endpoint, deque(maxlen=ANSWERS_REMEMBERED)).append(seconds)
            self._attempt(endpoint, early_timeout=False)

    def ended(self, endpoint: str, *, early_timeout: bool) -> None:
        """Record an attempt at ``endpoint`` without a successful answer; ``early_timeout``: a learned timeout ended it."""
        with self._lock:
            self._attempt(endpoint, early_timeout=early_timeout)

    def _attempt(self, endpoint: str, *, early_timeout: bool) -> None:
        self._early_timeouts.setdefault(endpoint, deque(maxlen=ATTEMPTS_REMEMBERED)).append(early_timeout)
