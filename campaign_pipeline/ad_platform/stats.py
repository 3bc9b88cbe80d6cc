"""Counters of one client (one partition), for logs and run metadata."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import Any


class ClientStats:
    """Thread-safe counters of the requests, retries and waits of one client.

    Endpoints are named by their template (``POST /api/campaigns/{id}/sync``),
    so the counters stay small however many campaigns an account has.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str]] = Counter()
        self._retries: Counter[str] = Counter()
        self._seconds: defaultdict[str, float] = defaultdict(float)
        self._counts: Counter[str] = Counter()
        self._max_attempts = 0

    def record_request(self, endpoint: str, result: str, *, bytes_sent: int, bytes_received: int) -> None:
        """Count one request of ``endpoint`` that ended in ``result`` (a status code or ``timeout``...)."""
        with self._lock:
            self._requests[endpoint, result] += 1
            self._counts["bytes_sent"] += bytes_sent
            self._counts["bytes_received"] += bytes_received

    def record_retry(self, retry_class: str, wait_seconds: float) -> None:
        """Count one retry of class ``retry_class`` after a backoff of ``wait_seconds``."""
        with self._lock:
            self._retries[retry_class] += 1
            self._seconds["backoff_wait_seconds"] += wait_seconds

    def record_limiter_wait(self, seconds: float) -> None:
        """Count one admission by the rate limiter after ``seconds`` of waiting."""
        with self._lock:
            self._counts["limiter_admissions"] += 1
            if seconds > 0:
                self._counts["limiter_waits"] += 1
                self._seconds["limiter_wait_seconds"] += seconds

    def record_limiter_restamp(self) -> None:
        """Count one slot stamped again at sending, because its request left late (a starved thread)."""
        with self._lock:
            self._counts["limiter_restamps"] += 1

    def record_limiter_redate(self) -> None:
        """Count one slot dated later once its request ended, because the platform may have counted it late."""
        with self._lock:
            self._counts["limiter_redates"] += 1

    def record_limiter_lapse(self) -> None:
        """Count one slot that left the window before its request was sent, so a new one was taken."""
        with self._lock:
            self._counts["limiter_lapses"] += 1

    def record_early_hang(self) -> None:
        """Count one request taken for hung before the configured read timeout (see ``hangs.py``)."""
        with self._lock:
            self._counts["hangs_detected_early"] += 1

    def record_token_fetch(self) -> None:
        """Count one token obtained from the platform."""
        with self._lock:
            self._counts["token_fetches"] += 1

    def record_call(self, attempts: int, *, succeeded: bool) -> None:
        """Count one finished call (all attempts of one request)."""
        with self._lock:
            self._counts["calls_succeeded" if succeeded else "calls_failed"] += 1
            self._max_attempts = max(self._max_attempts, attempts)

    def requests_by_endpoint(self) -> dict[str, dict[str, int]]:
        """Return ``{endpoint: {result: count}}``."""
        with self._lock:
            table: dict[str, dict[str, int]] = {}
            for (endpoint, result), count in sorted(self._requests.items()):
                table.setdefault(endpoint, {})[result] = count
            return table

    def as_metadata(self) -> dict[str, Any]:
        """Return every counter as plain ints, floats and dicts, for run metadata."""
        requests_by_endpoint = self.requests_by_endpoint()
        with self._lock:
            return {
                "requests_total": sum(self._requests.values()),
                "requests_by_endpoint": requests_by_endpoint,
                "rate_limited_total": sum(n for (_, result), n in self._requests.items() if result == "429"),
                "retries_total": sum(self._retries.values()),
                "retries_by_class": dict(sorted(self._retries.items())),
                "calls_succeeded": self._counts["calls_succeeded"],
                "calls_failed": self._counts["calls_failed"],
                "max_attempts_per_call": self._max_attempts,
                "token_fetches": self._counts["token_fetches"],
                "limiter_admissions": self._counts["limiter_admissions"],
                "limiter_waits": self._counts["limiter_waits"],
                "limiter_wait_seconds": round(self._seconds["limiter_wait_seconds"], 3),
                "limiter_restamps": self._counts["limiter_restamps"],
                "limiter_lapses": self._counts["limiter_lapses"],
                "limiter_redates": self._counts["limiter_redates"],
                "hangs_detected_early": self._counts["hangs_detected_early"],
                "backoff_wait_seconds": round(self._seconds["backoff_wait_seconds"], 3),
                "bytes_sent": self._counts["bytes_sent"],
                "bytes_received": self._counts["bytes_received"],
            }
