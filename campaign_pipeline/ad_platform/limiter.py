"""Proactive per-account rate limiting that matches the platform's sliding window.

The platform admits ``limit`` requests per account in any ``window`` seconds,
counting each request at its arrival, whatever its outcome (a 503 counts, a
429 does not). A caller takes a slot before every request, so a fault-free
sync never sees a 429. Two implementations do the same arithmetic,
:func:`wait_before_admission`:

- :class:`SlidingWindowLimiter` holds the window in memory, for the threads of
  one process;
- :class:`PostgresSlidingWindowLimiter` holds it in PostgreSQL, for every
  process syncing the same account (Dagster runs several runs at once, and
  asset backfills bypass per-account run limits); it does the arithmetic in
  SQL, so that a slot costs one round trip.

Both add a safety margin to the window: the platform counts a request when it
arrives, a little after the caller took its slot. A caller starved of CPU (16
run processes starting at once on 2 cores) can send seconds after its slot,
and the request admitted one window after that slot then arrives less than a
window after it: a 429. So a slot is an :class:`Admission` that the caller
confirms just before sending (:meth:`Admission.before_send`); one taken more
than a quarter of the safety margin earlier is stamped again with the time of
sending.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from psycopg_pool import ConnectionPool

POOL_MAX_SIZE = 4
# A slot used later than this fraction of the safety margin after it was taken is stamped again.
RESTAMP_FRACTION_OF_MARGIN = 0.25


class SlotWaitTooLong(Exception):
    """No slot opens within the caller's ``max_wait_seconds``.

    Attributes:
        next_slot_seconds: Seconds until the next slot opens.
    """

    def __init__(self, next_slot_seconds: float) -> None:
        super().__init__(f"the next rate-limit slot opens in {next_slot_seconds:.1f} s")
        self.next_slot_seconds = next_slot_seconds


class Admission:
    """A slot of an account's window, taken for one request that is about to be sent.

    Args:
        waited_seconds: Seconds the caller slept for the slot (0 if none).
        taken_at: When the slot was taken, on ``clock``.
        restamp: Moves the slot to the current time minus the given seconds
            (never earlier than it is); returns False when the slot has
            already left the window (it may have been given to another
            request, so a new slot is needed).
        restamp_after_seconds: Delay after which the slot is stamped again.
        clock: Monotonic clock of ``taken_at``.
    """

    def __init__(
        self,
        waited_seconds: float,
        taken_at: float,
        restamp: Callable[[float], bool],
        *,
        restamp_after_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self.waited_seconds = waited_seconds
        self.taken_at = taken_at
        self.restamped = 0
        self.redated = 0
        self._restamp = restamp
        self._restamp_after_seconds = restamp_after_seconds
        self.clock = clock
        # A slot is dated again from the thread of whichever answer teaches a quicker one (arrival.py).
        self._dating = threading.Lock()

    def before_send(self) -> bool:
        """Call just before sending; return False when the slot lapsed and a new one must be taken.

        A slot stamped at admission but sent later would let the request
        admitted one window after the stamp arrive less than a window after
        this one. Past ``restamp_after_seconds`` the slot is stamped with now.
        """
        if self.clock() - self.taken_at <= self._restamp_after_seconds:
            return True
        if not self._restamp(0.0):
            return False
        self.taken_at = self.clock()
        self.restamped += 1
        return True

    def date_at(self, moment: float) -> bool:
        """Date the slot at ``moment`` (on the admission's clock), once its request ended; return whether it moved.

        ``moment`` is the latest time the platform can have counted the request
        (see :mod:`campaign_pipeline.ad_platform.arrival`); the slot moves
        there when that is later than its stamp by more than the re-stamp
        threshold, so that the request admitted one window later cannot arrive
        within a window of this one. Safe to call from any thread, any number
        of times: a slot never moves earlier.
        """
        with self._dating:
            if moment - self.taken_at <= self._restamp_after_seconds:
                return False
            if not self._restamp(max(0.0, self.clock() - moment)):
                return False
            self.taken_at = moment
            self.redated += 1
            return True


class RateLimiter(Protocol):
    """Admits requests per account so that the platform's window is never exceeded."""

    def admit(
        self,
        account_id: str,
        *,
        max_wait_seconds: float | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> Admission:
        """Block until a request of ``account_id`` may be sent; return its slot.

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


class _Restamper:
    """Moves one slot to ``age`` seconds before now through ``move(stamp, age) -> new stamp or None``."""

    def __init__(self, move: Callable[[Any, float], Any | None], stamp: Any) -> None:
        self._move = move
        self._stamp = stamp

    def __call__(self, age: float) -> bool:
        moved = self._move(self._stamp, age)
        if moved is None:
            return False
        self._stamp = moved
        return True


class _WindowLimiter:
    """What both limiters share: their limits, and taking a slot or sleeping until one opens.

    A subclass answers :meth:`_try_admit`: admit one request now, or say how long until it can be.
    """

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        safety_margin_seconds: float,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        _check_limits(limit, window_seconds, safety_margin_seconds)
        self.limit = limit
        self.window_seconds = window_seconds + safety_margin_seconds
        self.restamp_after_seconds = safety_margin_seconds * RESTAMP_FRACTION_OF_MARGIN
        self._clock = clock
        self._sleep = sleep

    def acquire(
        self,
        account_id: str,
        *,
        max_wait_seconds: float | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> float:
        """Take a slot for a request sent at once; return the seconds slept (0 if none)."""
        return self.admit(account_id, max_wait_seconds=max_wait_seconds, sleep=sleep).waited_seconds

    def admit(
        self,
        account_id: str,
        *,
        max_wait_seconds: float | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> Admission:
        """Block until a request of ``account_id`` may be sent; return its slot."""
        started = self._clock()
        slept = False
        while True:
            wait, slot = self._try_admit(account_id)
            if slot is not None:
                taken_at, restamp = slot
                return Admission(
                    taken_at - started if slept else 0.0,
                    taken_at,
                    restamp,
                    restamp_after_seconds=self.restamp_after_seconds,
                    clock=self._clock,
                )
            _check_wait(wait, self._clock() - started, max_wait_seconds)
            (sleep or self._sleep)(wait)
            slept = True

    def _try_admit(self, account_id: str) -> tuple[float, tuple[float, _Restamper] | None]:
        """Admit one request now: return (0, (when, on the clock, its restamper)); or (seconds to wait, None)."""
        raise NotImplementedError


@dataclass
class _AccountWindow:
    admitted: deque[float] = field(default_factory=deque)
    deferred_until: float | None = None


class SlidingWindowLimiter(_WindowLimiter):
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
        super().__init__(limit, window_seconds, safety_margin_seconds, clock=clock, sleep=sleep)
        self._lock = threading.Lock()
        self._windows: dict[str, _AccountWindow] = {}

    def _try_admit(self, account_id: str) -> tuple[float, tuple[float, _Restamper] | None]:
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
            if wait > 0:
                return wait, None
            window.admitted.append(now)
            return 0.0, (now, _Restamper(lambda stamp, age: self._restamp(window, stamp, age), now))

    def _restamp(self, window: _AccountWindow, stamp: float, age: float) -> float | None:
        with self._lock:
            now = self._clock()
            if stamp <= now - self.window_seconds or stamp not in window.admitted:
                return None
            moved = max(stamp, now - age)
            window.admitted.remove(stamp)
            bisect.insort(window.admitted, moved)
            return moved

    def defer(self, account_id: str, seconds: float) -> None:
        """Admit no request of ``account_id`` for ``seconds``."""
        with self._lock:
            window = self._windows.setdefault(account_id, _AccountWindow())
            until = self._clock() + seconds
            window.deferred_until = max(until, window.deferred_until or until)

    def close(self) -> None:
        """Nothing to release."""


class PostgresSlidingWindowLimiter(_WindowLimiter):
    """Sliding-window limiter whose window lives in PostgreSQL, shared by every process.

    Each admission is a row (account, time from the database clock, so every
    process reads one clock). Taking a slot is one call of the function
    ``ad_platform_rate_limit.admit_v1``: one round trip, one transaction
    serialized per account by an advisory lock, that either inserts the new
    admission or answers exactly when the next slot opens; the caller then
    sleeps outside the transaction. A 429's wait is a row per account that
    every process obeys. The schema and its functions are created on first use.

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
        super().__init__(limit, window_seconds, safety_margin_seconds, clock=time.monotonic, sleep=sleep)
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_max_size,
            kwargs={"autocommit": True},
            configure=_configure_connection,
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

    def _try_admit(self, account_id: str) -> tuple[float, tuple[float, _Restamper] | None]:
        # The slot's stamp is the database's clock, the one every process reads.
        with self._pool.connection() as connection:
            row = connection.execute(
                "SELECT wait_seconds, slot FROM ad_platform_rate_limit.admit_v1(%s::text, %s::integer, %s::float8)",
                (account_id, self.limit, self.window_seconds),
            ).fetchone()
        assert row is not None
        wait, stamp = row
        if stamp is None:
            return wait, None
        return 0.0, (self._clock(), _Restamper(lambda old, age: self._restamp(account_id, old, age), stamp))

    def _restamp(self, account_id: str, stamp: datetime, age: float) -> datetime | None:
        """Move the admission ``stamp`` to ``age`` seconds before the database's now; None when it left the window."""
        with self._pool.connection() as connection:
            row = connection.execute(
                "SELECT ad_platform_rate_limit.restamp_v2(%s::text, %s::timestamptz, %s::float8, %s::float8)",
                (account_id, stamp, self.window_seconds, age),
            ).fetchone()
        assert row is not None
        return row[0]

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
            for signature, definition in _FUNCTIONS.items():
                exists = connection.execute("SELECT to_regprocedure(%s) IS NOT NULL", (signature,)).fetchone()
                if exists != (True,):
                    connection.execute(definition)


# Versioned names: a changed function gets a new name, so that processes of the
# old and the new code can share one database during a deploy. Both take the
# per-account advisory lock of every earlier version of the limiter.
_FUNCTIONS = {
    "ad_platform_rate_limit.admit_v1(text,integer,double precision)": """
        CREATE FUNCTION ad_platform_rate_limit.admit_v1(account text, max_admissions integer, window_seconds float8)
        RETURNS TABLE (wait_seconds float8, slot timestamptz)
        LANGUAGE plpgsql AS $$
        DECLARE
            now_at timestamptz;
            window_length interval := make_interval(secs => window_seconds);
            opens_at timestamptz;
            nth_latest timestamptz;
        BEGIN
            PERFORM pg_advisory_xact_lock(hashtextextended('ad_platform_rate_limit:' || account, 0));
            now_at := clock_timestamp();
            DELETE FROM ad_platform_rate_limit.admissions AS a
            WHERE a.account_id = account AND a.admitted_at <= now_at - window_length;
            SELECT d.deferred_until INTO opens_at
            FROM ad_platform_rate_limit.deferrals AS d WHERE d.account_id = account;
            -- The window is full when it holds max_admissions: the next slot opens when the
            -- max_admissions-th latest admission leaves it (wait_before_admission in Python).
            SELECT a.admitted_at INTO nth_latest
            FROM ad_platform_rate_limit.admissions AS a WHERE a.account_id = account
            ORDER BY a.admitted_at DESC OFFSET max_admissions - 1 LIMIT 1;
            opens_at := greatest(opens_at, nth_latest + window_length);
            IF opens_at > now_at THEN
                RETURN QUERY SELECT extract(epoch FROM opens_at - now_at)::float8, NULL::timestamptz;
            ELSE
                INSERT INTO ad_platform_rate_limit.admissions (account_id, admitted_at) VALUES (account, now_at);
                RETURN QUERY SELECT 0::float8, now_at;
            END IF;
        END
        $$
    """,
    "ad_platform_rate_limit.restamp_v2(text,timestamp with time zone,double precision,double precision)": """
        CREATE FUNCTION ad_platform_rate_limit.restamp_v2(
            account text, stamp timestamptz, window_seconds float8, age_seconds float8
        )
        RETURNS timestamptz
        LANGUAGE plpgsql AS $$
        DECLARE
            now_at timestamptz;
            moved timestamptz;
        BEGIN
            PERFORM pg_advisory_xact_lock(hashtextextended('ad_platform_rate_limit:' || account, 0));
            now_at := clock_timestamp();
            -- Once out of the window the slot may already count as free for another request.
            -- A slot only ever moves later.
            -- Two slots can share a stamp: move exactly one of them.
            UPDATE ad_platform_rate_limit.admissions AS a
            SET admitted_at = greatest(a.admitted_at, now_at - make_interval(secs => age_seconds))
            WHERE a.ctid = (
                SELECT b.ctid FROM ad_platform_rate_limit.admissions AS b
                WHERE b.account_id = account AND b.admitted_at = stamp
                  AND b.admitted_at > now_at - make_interval(secs => window_seconds)
                LIMIT 1
            )
            RETURNING a.admitted_at INTO moved;
            RETURN moved;
        END
        $$
    """,
}


def _configure_connection(connection: Any) -> None:
    # An admission is committed without waiting for its WAL to reach disk (0.5 ms a slot
    # against 0.2 ms here). Other sessions see it at once all the same; only a crash of the
    # database server can forget the last fraction of a second of admissions, which at
    # worst costs a 429 that the client obeys. The warehouse's own writes stay synchronous.
    connection.execute("SET synchronous_commit = off")


def _check_limits(limit: int, window_seconds: float, safety_margin_seconds: float) -> None:
    if limit < 1:
        raise ValueError(f"The rate limit must be at least 1 request per window, not {limit}.")
    if not (math.isfinite(window_seconds) and window_seconds > 0):
        raise ValueError(f"The rate window must be a finite number of seconds above 0, not {window_seconds}.")
    if not (math.isfinite(safety_margin_seconds) and safety_margin_seconds >= 0):
        raise ValueError(
            f"The limiter's safety margin must be a finite number of seconds, 0 or more, not {safety_margin_seconds}."
        )


def _check_wait(wait: float, waited: float, max_wait_seconds: float | None) -> None:
    if max_wait_seconds is not None and waited + wait > max_wait_seconds:
        raise SlotWaitTooLong(wait)
