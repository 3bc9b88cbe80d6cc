"""A fake monotonic clock whose sleep advances time instantly and records each wait."""

from __future__ import annotations

import threading


class FakeClock:
    """Monotonic time that moves only when someone sleeps on it.

    Call the instance for the time; pass :meth:`sleep` where a sleep function
    is injected. ``sleeps`` lists every requested wait, in order.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
