"""What the operator endpoints report: counters and a bounded log of requests."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

UNAUTHENTICATED = "(unauthenticated)"
CLIENT_CLOSED_STATUS = 499


@dataclass(slots=True)
class RequestRecord:
    """One request as the log shows it; never holds a header or a body.

    Attributes:
        method: HTTP method.
        path: Path and query string (neither carries a secret).
        endpoint: ``token``, ``list``, ``sync``, ``health`` or ``other``.
        arrived_at: Unix time of arrival.
        arrived_monotonic: Arrival on the monotonic clock the rate limiter uses.
        account: Account the request was attributed to, once known.
        status: Status sent; 499 when the client gave up on a hanging request.
        finished_at: Unix time the answer was sent or the client left.
        hung: Whether the request was chosen to hang.
    """

    method: str
    path: str
    endpoint: str
    arrived_at: float
    arrived_monotonic: float
    account: str = UNAUTHENTICATED
    status: int | None = None
    finished_at: float | None = None
    hung: bool = False


class RequestStats:
    """Counts requests by account, endpoint and status, plus the totals tests ask about."""

    def __init__(self, log_size: int) -> None:
        self._log: deque[RequestRecord] = deque(maxlen=log_size)
        self._by_key: Counter[tuple[str, str, int | None]] = Counter()
        self.rate_limited = 0
        self.hangs = 0
        self.tokens_issued = 0

    def finish(self, record: RequestRecord) -> None:
        """Count a finished request and append it to the log."""
        self._by_key[(record.account, record.endpoint, record.status)] += 1
        self._log.append(record)

    def counters(self) -> dict[str, Any]:
        """Return the counters as JSON-ready data."""
        requests: dict[str, dict[str, dict[str, int]]] = {}
        for (account, endpoint, status), count in sorted(self._by_key.items(), key=str):
            requests.setdefault(account, {}).setdefault(endpoint, {})[str(status)] = count
        return {
            "requests": requests,
            "total_requests": sum(self._by_key.values()),
            "rate_limited": self.rate_limited,
            "hangs": self.hangs,
            "tokens_issued": self.tokens_issued,
        }

    def log(self) -> list[dict[str, Any]]:
        """Return the finished requests, in the order they arrived.

        A request is logged when it finishes (a hang after many a later request),
        and the log keeps the last ``log_size`` to finish.
        """
        return [asdict(record) for record in sorted(self._log, key=lambda record: record.arrived_monotonic)]

    def reset(self) -> None:
        """Forget every count and logged request."""
        self._log.clear()
        self._by_key.clear()
        self.rate_limited = 0
        self.hangs = 0
        self.tokens_issued = 0
