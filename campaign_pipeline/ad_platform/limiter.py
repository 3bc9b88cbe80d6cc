"""Proactive per-account rate limiting that matches the platform's sliding window.

The platform admits ``limit`` requests per account in any ``window`` seconds,
counting each request at its arrival, whatever its outcome (a 503 counts, a
429 does not). A caller takes a slot before every request, so a fault-free
sync never sees a 429. Two implementations share one piece of arithmetic,
:func:`wait_before_admission`:

- :class:`SlidingWindowLimiter` holds the window in memory, for the threads of
  one process;
- :class:`PostgresSlidingWindowLimiter` holds it in PostgreSQL, for every
  process syncing the same account (Dagster runs several runs at once, and
  asset backfills bypass per-account run limits).

Both add a safety margin to the window: the platform counts a request when it
arrives, a little after the caller took its slot.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from psycopg_pool import ConnectionPool

POOL_MAX_SIZE = 4


class SlotWaitTooLong(Exception):
    """No slot opens within the caller's ``max_wait_seconds``.

    Attributes:
        next_slot_seconds: Seconds until the next slot opens.
    """

    def __init__(self, next_slot_seconds: float) -> None:
        super().__init__(f"the next rate-limit slot opens in {next_slot_seconds:.1f} s")
        self.next_slot_seconds = next_slot_seconds


class RateLimiter(Protocol):
    """Admits requests per account so that the platform's window is never exceeded."""

    def acquire(
        self,
        account_id: str,
        *,
        max_wait_seconds: float | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> float:
        """Block until a request of ``account_id`` may be sent; return the seconds slept (0 if none).

        Args:
            account_id: The account whose window the request counts against.
            max_wait_seconds: Longest acceptable wait.
            sleep: How to wait, instead of the limiter's own sleep (e.g. one
                that a cancelled sync interrupts by raising).

        Raises:
            SlotWaitTooLong: when no slot opens within ``max_wait_seconds``.
        """
        ...

    def defer(self, account_id: str, seconds: float) -> None:
        """Admit no request of ``account_id`` for ``seconds`` (the platform answered 429)."""
        ...

    def close(self) -> None:
        """Release the limiter's resources."""
        ...


def wait_before_admission(
    admitted: Sequence[float],
    now: float,
    *,
    limit: int,
    window_seconds: float,
    deferred_until: float | None = None,
) -> float:
    """Return how long a new request must wait before it may be admitted (0 when it may go now).

    Args:
        admitted: Admission times of earlier requests, oldest first.
        now: The current time, on the clock of ``admitted``.
        limit: Requests admitted per window.
        window_seconds: Window length, safety margin included.
        deferred_until: Time before which nothing is admitted (a 429's wait).
    """
    wait = max(0.0, deferred_until - now) if deferred_until is not None else 0.0
    in_window = [moment for moment in admitted if moment > now - window_seconds]
    if len(in_window) >= limit:
        wait = max(wait, in_window[len(in_window) - limit] + window_seconds - now)
    return wait


@dataclass
class _AccountWindow:
    admitted: deque[float] = field(default_factory=deque)
    deferred_until: float | None = None


class SlidingWindowLimiter:
    """In-process sliding-window limiter, shared by the threads of one process.

    Args:
        limit: Requests admitted per account per window.
        window_seconds: Window length in seconds.
        safety_margin_seconds: Added to the window (see the module docstring).
        clock: Monotonic clock, injectable for tests.
        sleep: Sleep function, injectable for tests.
    """

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        safety_margin_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        _check_limits(limit, window_seconds, safety_margin_seconds)
        self.limit = limit
        self.window_seconds = window_seconds + safety_margin_seconds
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._windows: dict[str, _AccountWindow] = {}

    def acquire(
        self,
        account_id: str,
        *,
        max_wait_seconds: float | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> float:
        """Block until a request of ``account_id`` may be sent; return the seconds slept (0 if none)."""
        started = self._clock()
        slept = False
        while True:
            with self._lock:
                now = self._clock()
                window = self._windows.setdefault(account_id, _AccountWindow())
                while window.admitted and window.admitted[0] <= now - self.window_seconds:
                    window.admitted.popleft()
                wait = wait_before_admission(
                    window.admitted,
                    now,
                    limit=self.limit,
                    window_seconds=self.window_seconds,
                    deferred_until=window.deferred_until,
                )
                if wait <= 0:
                    window.admitted.append(now)
                    return now - started if slept else 0.0
            _check_wait(wait, now - started, max_wait_seconds)
            (sleep or self._sleep)(wait)
            slept = True

    def defer(self, account_id: str, seconds: float) -> None:
        """Admit no request of ``account_id`` for ``seconds``."""
        with self._lock:
            window = self._windows.setdefault(account_id, _AccountWindow())
            until = self._clock() + seconds
            window.deferred_until = max(until, window.deferred_until or until)

    def close(self) -> None:
        """Nothing to release."""


class PostgresSlidingWindowLimiter:
    """Sliding-window limiter whose window lives in PostgreSQL, shared by every process.

    Each admission is a row (account, time from the database clock, so every
    process reads one clock). Taking a slot is a short transaction serialized
    per account by an advisory lock: read the window, and either insert the
    new admission or learn exactly when the next slot opens; the caller then
    sleeps outside the transaction. A 429's wait is a row per account that
    every process obeys. The schema ``ad_platform_rate_limit`` is created on
    first use.

    Args:
        url: libpq URL of the database (the warehouse's).
        limit: Requests admitted per account per window.
        window_seconds: Window length in seconds.
        safety_margin_seconds: Added to the window (see the module docstring).
        sleep: Sleep function, injectable for tests.
        pool_max_size: Most connections held at once.
    """

    def __init__(
        self,
        url: str,
        *,
        limit: int,
        window_seconds: float,
        safety_margin_seconds: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
        pool_max_size: int = POOL_MAX_SIZE,
    ) -> None:
        _check_limits(limit, window_seconds, safety_margin_seconds)
        self.limit = limit
        self.window_seconds = window_seconds + safety_margin_seconds
        self._sleep = sleep
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_max_size,
            kwargs={"autocommit": True},
            open=True,
            name="ad_platform_rate_limit",
        )
        try:
            self._create_schema()
        except BaseException:
            self._pool.close()
            raise

    def __repr__(self) -> str:
        return f"{type(self).__name__}(limit={self.limit}, window_seconds={self.window_seconds:g})"

    def acquire(
        self,
        account_id: str,
        *,
        max_wait_seconds: float | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> float:
        """Block until a request of ``account_id`` may be sent; return the seconds slept (0 if none)."""
        started = time.monotonic()
        slept = False
        while True:
            wait = self._try_admit(account_id)
            if wait <= 0:
                return time.monotonic() - started if slept else 0.0
            _check_wait(wait, time.monotonic() - started, max_wait_seconds)
            (sleep or self._sleep)(wait)
            slept = True

    def defer(self, account_id: str, seconds: float) -> None:
        """Admit no request of ``account_id``, in any process, for ``seconds``."""
        with self._pool.connection() as connection:
            connection.execute(
                """
                INSERT INTO ad_platform_rate_limit.deferrals AS d (account_id, deferred_until)
                VALUES (%s, clock_timestamp() + make_interval(secs => %s))
                ON CONFLICT (account_id)
                DO UPDATE SET deferred_until = greatest(d.deferred_until, excluded.deferred_until)
                """,
                (account_id, seconds),
            )

    def close(self) -> None:
        """Close the connection pool."""
        self._pool.close()

    def _try_admit(self, account_id: str) -> float:
        """Admit one request now and return 0, or return the seconds until a slot opens."""
        with self._pool.connection() as connection, connection.transaction():
            connection.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"ad_platform_rate_limit:{account_id}",)
            )
            row = connection.execute(
                """
                SELECT extract(epoch FROM clock_timestamp())::float8,
                       array(SELECT extract(epoch FROM admitted_at)::float8
                             FROM ad_platform_rate_limit.admissions WHERE account_id = %(account)s
                             ORDER BY admitted_at),
                       (SELECT extract(epoch FROM deferred_until)::float8
                        FROM ad_platform_rate_limit.deferrals WHERE account_id = %(account)s)
                """,
                {"account": account_id},
            ).fetchone()
            assert row is not None
            now, admitted, deferred_until = row
            connection.execute(
                """
                DELETE FROM ad_platform_rate_limit.admissions
                WHERE account_id = %s AND admitted_at <= to_timestamp(%s)
                """,
                (account_id, now - self.window_seconds),
            )
            wait = wait_before_admission(
                admitted,
                now,
                limit=self.limit,
                window_seconds=self.window_seconds,
                deferred_until=deferred_until,
            )
            if wait <= 0:
                connection.execute(
                    """
                    INSERT INTO ad_platform_rate_limit.admissions (account_id, admitted_at)
                    VALUES (%s, to_timestamp(%s))
                    """,
                    (account_id, now),
                )
            return wait

    def _create_schema(self) -> None:
        with self._pool.connection() as connection, connection.transaction():
            # Concurrent CREATE ... IF NOT EXISTS can still collide; the lock serializes set-up.
            connection.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("ad_platform_rate_limit:setup",)
            )
            connection.execute("CREATE SCHEMA IF NOT EXISTS ad_platform_rate_limit")
            connection.execute(
                """
                CREATE TABLE IF NOT EXISTS ad_platform_rate_limit.admissions (
                    account_id text NOT NULL,
                    admitted_at timestamptz NOT NULL
                )
                """
            )
            connection.execute(
                """
                CREATE INDEX IF NOT EXISTS admissions_by_account
                ON ad_platform_rate_limit.admissions (account_id, admitted_at)
                """
            )
            connection.execute(
                """
                CREATE TABLE IF NOT EXISTS ad_platform_rate_limit.deferrals (
                    account_id text PRIMARY KEY,
                    deferred_until timestamptz NOT NULL
                )
                """
            )


def _check_limits(limit: int, window_seconds: float, safety_margin_seconds: float) -> None:
    if limit < 1:
        raise ValueError(f"The rate limit must be at least 1 request per window, not {limit}.")
    if not window_seconds > 0:
        raise ValueError(f"The rate window must be longer than 0 s, not {window_seconds}.")
    if safety_margin_seconds < 0:
        raise ValueError(f"The limiter's safety margin must not be negative, not {safety_margin_seconds}.")


def _check_wait(wait: float, waited: float, max_wait_seconds: float | None) -> None:
    if max_wait_seconds is not None and waited + wait > max_wait_seconds:
        raise SlotWaitTooLong(wait)
