"""Reproducible fault decisions.

A request's fate is a pure function of (seed, endpoint, account, request key,
attempt number of that key), so it does not depend on how requests of
different accounts interleave, and the same seed replays the same faults.
"""

from __future__ import annotations

from collections import Counter
from enum import Enum

from mock_api.config import EndpointFaults
from mock_api.dataset import unit_draw


class Outcome(Enum):
    """What the simulator does with an admitted request."""

    PROCEED = "proceed"
    ERROR = "error"
    HANG = "hang"


def fault_draw(seed: int, endpoint: str, account_id: str, request_key: str, attempt: int) -> float:
    """Return the uniform draw in [0, 1) deciding the fate of one request."""
    return unit_draw(seed, "fault", endpoint, account_id, request_key, attempt)


def decide(draw: float, faults: EndpointFaults) -> Outcome:
    """Map a draw to an outcome: [0, error_rate) errs, the next ``hang_rate`` hangs, the rest proceeds."""
    if draw < faults.error_rate:
        return Outcome.ERROR
    if draw < faults.error_rate + faults.hang_rate:
        return Outcome.HANG
    return Outcome.PROCEED


class AttemptCounter:
    """Counts the attempts at each (endpoint, account, request key), starting at 1."""

    def __init__(self) -> None:
        self._attempts: Counter[tuple[str, str, str]] = Counter()

    def next(self, endpoint: str, account_id: str, request_key: str) -> int:
        """Record one more attempt and return its number."""
        key = (endpoint, account_id, request_key)
        self._attempts[key] += 1
        return self._attempts[key]

    def reset(self) -> None:
        """Forget every attempt."""
        self._attempts.clear()
