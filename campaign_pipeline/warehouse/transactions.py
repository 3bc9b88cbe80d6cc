"""Whole-transaction retries over a connection pool when the connection to PostgreSQL is lost."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

T = TypeVar("T")

# 57P01 admin_shutdown (pg_terminate_backend, a fast shutdown), 57P02 crash_shutdown,
# 57P03 cannot_connect_now (the server is starting or stopping).
_SERVER_GONE_STATES = frozenset({"57P01", "57P02", "57P03"})


class CommitOutcomeUnknown(psycopg.OperationalError):
    """The connection was lost while COMMIT was in flight: the transaction may or may not have committed."""


def is_connection_lost(error: psycopg.Error, *, connection_broken: bool) -> bool:
    """Return whether ``error`` means the session ended, as opposed to a failed statement.

    A statement timeout, a deadlock or a constraint violation leave the session
    alive and are not retried: running the same work again would fail the same way.

    Args:
        error: The error the driver raised.
        connection_broken: Whether the connection is closed or broken afterwards.
    """
    if not isinstance(error, psycopg.OperationalError):
        return False
    state = error.sqlstate or ""
    return connection_broken or state.startswith("08") or state in _SERVER_GONE_STATES


class TransactionRunner:
    """Runs a unit of work in one transaction on a pooled connection, retrying it whole.

    A retry happens only when the connection was lost. Lost before COMMIT was
    sent, nothing was committed and the work is simply run again on a fresh
    connection. Lost during COMMIT, the outcome is unknown: the work is run
    again only if it is idempotent (running it twice leaves the same state as
    once); otherwise, or when no retry is left, :class:`CommitOutcomeUnknown`
    is raised.

    Args:
        pool: Where connections come from; a broken connection returned to it is discarded.
        retries: How many times one unit of work may be run again.
        retry_delay_seconds: Wait before the first retry, doubled for each next one.
        sleep: Called to wait; tests pass a recorder.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        retries: int,
        retry_delay_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if retries < 0:
            raise ValueError(f"transaction_retries must be 0 or more, not {retries}.")
        self._pool = pool
        self._retries = retries
        self._retry_delay_seconds = retry_delay_seconds
        self._sleep = sleep

    def run(self, work: Callable[[psycopg.Connection], T], *, description: str, idempotent: bool) -> T:
        """Run ``work(connection)`` inside one transaction and commit it; return its result.

        Args:
            work: Issues the statements; must not commit or roll back itself.
            description: What the work does, for log lines (no row data).
            idempotent: Whether running the work twice leaves the same state as once.

        Raises:
            CommitOutcomeUnknown: The connection was lost during COMMIT of work that is not
                idempotent, or of the last retry.
            psycopg.Error: Any other failure, or a lost connection after the last retry.
        """
        attempt = 0
        while True:
            committing = False
            connection: psycopg.Connection | None = None
            try:
                with self._pool.connection() as connection:
                    with connection.transaction():
                        result = work(connection)
                        committing = True
                return result
            except psycopg.OperationalError as error:
                # No connection at all means the pool already spent its own timeout reconnecting.
                if connection is None:
                    raise
                broken = connection.closed or connection.broken
                if not is_connection_lost(error, connection_broken=broken):
                    raise
                if committing and (not idempotent or attempt >= self._retries):
                    raise CommitOutcomeUnknown(
                        f"The connection was lost while committing {description}; "
                        "it may or may not have been committed."
                    ) from error
                if attempt >= self._retries:
                    raise
                attempt += 1
                delay = self._retry_delay_seconds * 2 ** (attempt - 1)
                log.warning(
                    "Lost the database connection during %s (%s); running the whole transaction again "
                    "in %.1f s (retry %d of %d).",
                    description,
                    type(error).__name__,
                    delay,
                    attempt,
                    self._retries,
                )
                self._sleep(delay)
