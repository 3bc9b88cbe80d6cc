from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from campaign_pipeline.warehouse.transactions import CommitOutcomeUnknown, TransactionRunner, is_connection_lost


@pytest.mark.parametrize(
    ("error", "broken", "lost"),
    [
        (psycopg.errors.AdminShutdown("terminated"), False, True),
        (psycopg.errors.CrashShutdown("crash"), False, True),
        (psycopg.errors.ConnectionFailure("gone"), False, True),
        (psycopg.OperationalError("server closed the connection unexpectedly"), True, True),
        (psycopg.OperationalError("could not receive data"), False, False),
        (psycopg.errors.QueryCanceled("statement timeout"), False, False),
        (psycopg.errors.DeadlockDetected("deadlock"), False, False),
        (psycopg.errors.UniqueViolation("duplicate key"), True, False),
    ],
)
def test_only_a_lost_session_counts_as_a_lost_connection(error: psycopg.Error, broken: bool, lost: bool) -> None:
    assert is_connection_lost(error, connection_broken=broken) is lost


@pytest.fixture
def pool(warehouse_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(warehouse_url, min_size=1, max_size=2, open=True) as opened:
        with opened.connection() as connection:
            connection.execute("CREATE TABLE events (id serial PRIMARY KEY, note text NOT NULL)")
        yield opened


def terminate(pool: ConnectionPool, victim: psycopg.Connection) -> None:
    """End ``victim``'s server session from another connection, waiting until it is gone."""
    with psycopg.connect(pool.conninfo, autocommit=True) as killer:
        assert killer.execute("SELECT pg_terminate_backend(%s, 5000)", (victim.info.backend_pid,)).fetchone()[0]


def notes(pool: ConnectionPool) -> list[str]:
    with pool.connection() as connection:
        return [note for (note,) in connection.execute("SELECT note FROM events ORDER BY id")]


class Work:
    """Inserts a row; terminates its own session on the attempts listed, before or after the insert."""

    def __init__(self, pool: ConnectionPool, *, kill_on: set[int], kill_after_insert: bool = False) -> None:
        self.pool = pool
        self.kill_on = kill_on
        self.kill_after_insert = kill_after_insert
        self.attempts = 0

    def __call__(self, connection: psycopg.Connection) -> int:
        self.attempts += 1
        if self.attempts in self.kill_on and not self.kill_after_insert:
            terminate(self.pool, connection)
        connection.execute("INSERT INTO events (note) VALUES (%s)", (f"attempt {self.attempts}",))
        if self.attempts in self.kill_on and self.kill_after_insert:
            terminate(self.pool, connection)
        return self.attempts


def test_a_connection_lost_before_commit_reruns_the_whole_transaction(pool: ConnectionPool) -> None:
    sleeps: list[float] = []
    runner = TransactionRunner(pool, retries=2, retry_delay_seconds=0.5, sleep=sleeps.append)
    work = Work(pool, kill_on={1, 2})

    assert runner.run(work, description="test work", idempotent=False) == 3

    assert sleeps == [0.5, 1.0]
    assert notes(pool) == ["attempt 3"]


def test_retries_are_bounded(pool: ConnectionPool) -> None:
    sleeps: list[float] = []
    runner = TransactionRunner(pool, retries=1, retry_delay_seconds=0.25, sleep=sleeps.append)
    work = Work(pool, kill_on={1, 2, 3})

    with pytest.raises(psycopg.OperationalError):
        runner.run(work, description="test work", idempotent=True)

    assert (work.attempts, sleeps) == (2, [0.25])
    assert notes(pool) == []


def test_a_connection_lost_during_commit_is_retried_only_when_idempotent(pool: ConnectionPool) -> None:
    runner = TransactionRunner(pool, retries=2, retry_delay_seconds=0, sleep=lambda _: None)

    risky = Work(pool, kill_on={1}, kill_after_insert=True)
    with pytest.raises(CommitOutcomeUnknown, match="while committing test work; it may or may not"):
        runner.run(risky, description="test work", idempotent=False)
    assert risky.attempts == 1

    safe = Work(pool, kill_on={1}, kill_after_insert=True)
    assert runner.run(safe, description="test work", idempotent=True) == 2
    assert notes(pool) == ["attempt 2"]


def test_a_connection_lost_during_the_last_retrys_commit_says_the_outcome_is_unknown(pool: ConnectionPool) -> None:
    runner = TransactionRunner(pool, retries=1, retry_delay_seconds=0, sleep=lambda _: None)
    work = Work(pool, kill_on={1, 2}, kill_after_insert=True)

    with pytest.raises(CommitOutcomeUnknown, match="while committing test work; it may or may not"):
        runner.run(work, description="test work", idempotent=True)

    assert work.attempts == 2


def test_a_failing_statement_is_not_retried_and_rolls_back(pool: ConnectionPool) -> None:
    runner = TransactionRunner(pool, retries=2, retry_delay_seconds=0, sleep=lambda _: None)
    attempts = []

    def work(connection: psycopg.Connection) -> None:
        attempts.append(1)
        connection.execute("INSERT INTO events (note) VALUES ('kept?')")
        connection.execute("INSERT INTO events (note) VALUES (NULL)")

    with pytest.raises(psycopg.errors.NotNullViolation):
        runner.run(work, description="test work", idempotent=True)

    assert len(attempts) == 1
    assert notes(pool) == []


def test_negative_retries_are_refused(pool: ConnectionPool) -> None:
    with pytest.raises(ValueError, match="^transaction_retries must be 0 or more, not -1.$"):
        TransactionRunner(pool, retries=-1, retry_delay_seconds=0)
