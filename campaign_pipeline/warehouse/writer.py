"""How campaign rows reach PostgreSQL: the :class:`Warehouse` writer and its bookkeeping tables.

A partition is one account-day. :meth:`Warehouse.replace_partition` makes the
database hold exactly the frame's rows for it: the frame is validated, streamed
with COPY into a temporary table, and merged in one transaction that inserts
new rows, rewrites changed rows only and deletes the rows the platform no
longer returns. Readers see the old day or the new day, never a mix.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, ClassVar

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pa_compute
import pyarrow.csv as pa_csv
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter
from psycopg_pool import ConnectionPool

from campaign_pipeline.settings import postgres_url_problem, redact_url
from campaign_pipeline.warehouse.copy_data import binary_copy_chunks
from campaign_pipeline.warehouse.frame import (
    CAMPAIGN_FRAME_COLUMNS,
    empty_campaign_frame,
    frame_from_arrow,
    frame_to_arrow,
)
from campaign_pipeline.warehouse.migrate import apply_migrations, load_migrations
from campaign_pipeline.warehouse.transactions import CommitOutcomeUnknown, TransactionRunner

log = logging.getLogger(__name__)

STAGING_TABLE = "campaign_staging"
# The frame's columns but the partition's own two, which the merges take as parameters.
STAGING_COLUMNS: tuple[str, ...] = tuple(
    column for column in CAMPAIGN_FRAME_COLUMNS if column not in ("account_id", "metrics_date")
)
# Lets the merge's hash joins over a large staged partition stay in memory.
_LOAD_WORK_MEM = "256MB"

_CREATE_STAGING = """
    CREATE TEMPORARY TABLE campaign_staging (
        campaign_id text COLLATE "C" NOT NULL,
        name        text NOT NULL,
        status      text NOT NULL,
        budget      numeric(18, 2) NOT NULL,
        impressions bigint NOT NULL,
        clicks      bigint NOT NULL,
        conversions bigint NOT NULL,
        created_at  timestamptz NOT NULL
    ) ON COMMIT DROP
"""

_MERGE_CAMPAIGNS = """
    MERGE INTO campaigns AS c
    USING campaign_staging AS s
    ON c.account_id = %(account_id)s AND c.campaign_id = s.campaign_id
    WHEN MATCHED AND (
        c.attributes_as_of < %(day)s
        OR (c.attributes_as_of = %(day)s
            AND (c.name, c.status, c.budget, c.created_at)
                IS DISTINCT FROM (s.name, s.status, s.budget, s.created_at))
    ) THEN
        UPDATE SET name = s.name, status = s.status, budget = s.budget,
                   created_at = s.created_at, attributes_as_of = %(day)s,
                   loaded_at = now(), loaded_by_run_id = %(run_id)s
    WHEN NOT MATCHED THEN
        INSERT (account_id, campaign_id, name, status, budget, created_at,
                attributes_as_of, loaded_at, loaded_by_run_id)
        VALUES (%(account_id)s, s.campaign_id, s.name, s.status, s.budget, s.created_at,
                %(day)s, now(), %(run_id)s)
"""

_DELETE_STALE_METRICS = """
    DELETE FROM campaign_daily_metrics AS m
    WHERE m.account_id = %(account_id)s
      AND m.metrics_date = %(day)s
      AND NOT EXISTS (SELECT FROM campaign_staging AS s WHERE s.campaign_id = m.campaign_id)
"""

_COUNT_PARTITION = """
    SELECT count(*) FROM campaign_daily_metrics WHERE account_id = %(account_id)s AND metrics_date = %(day)s
"""

_RECORD_LOAD = """
    INSERT INTO partition_loads (load_id, account_id, metrics_date, run_id, inserted, updated, deleted,
                                 unchanged, campaigns_written, loaded_at)
    VALUES (%(load_id)s, %(account_id)s, %(day)s, %(run_id)s, %(inserted)s, %(updated)s, %(deleted)s,
            %(unchanged)s, %(campaigns_written)s, now())
"""

_RECORDED_LOAD = """
    SELECT inserted, updated, deleted, unchanged, campaigns_written FROM partition_loads WHERE load_id = %(load_id)s
"""

_MERGE_METRICS = """
    MERGE INTO campaign_daily_metrics AS m
    USING campaign_staging AS s
    ON m.account_id = %(account_id)s AND m.metrics_date = %(day)s AND m.campaign_id = s.campaign_id
    WHEN MATCHED AND (m.status, m.budget, m.impressions, m.clicks, m.conversions)
                     IS DISTINCT FROM (s.status, s.budget, s.impressions, s.clicks, s.conversions) THEN
        UPDATE SET status = s.status, budget = s.budget, impressions = s.impressions, clicks = s.clicks,
                   conversions = s.conversions, loaded_at = now(), loaded_by_run_id = %(run_id)s
    WHEN NOT MATCHED THEN
        INSERT (account_id, metrics_date, campaign_id, status, budget, impressions, clicks, conversions,
                loaded_at, loaded_by_run_id)
        VALUES (%(account_id)s, %(day)s, s.campaign_id, s.status, s.budget, s.impressions, s.clicks,
                s.conversions, now(), %(run_id)s)
"""

# COPY takes no bind parameters: psycopg binds them client-side, as quoted literals.
# Arrow parses the CSV in C++ (100,000 rows: 0.65 s in all, against 0.9 s for rows
# fetched as Python objects); account and day are the caller's, not read back.
# created_at travels as microseconds since the epoch, free of DateStyle and TimeZone.
_READ_PARTITION = """
    COPY (
        SELECT m.campaign_id, c.name, m.status, m.budget, m.impressions, m.clicks, m.conversions,
               (extract(epoch FROM c.created_at) * 1000000)::bigint
        FROM campaign_daily_metrics AS m
        JOIN campaigns AS c USING (account_id, campaign_id)
        WHERE m.account_id = %(account_id)s AND m.metrics_date = %(day)s
        ORDER BY m.campaign_id
    ) TO STDOUT (FORMAT csv, ENCODING 'UTF8')
"""
_READ_COLUMN_TYPES: dict[str, pa.DataType] = {
    "campaign_id": pa.large_string(),
    "name": pa.large_string(),
    "status": pa.large_string(),
    "budget": pa.decimal128(18, 2),
    "impressions": pa.int64(),
    "clicks": pa.int64(),
    "conversions": pa.int64(),
    "created_at": pa.int64(),
}

# The checks' figures of one account-day, computed where the rows are, instead of reading the day
# back (100,000 rows: 0.45 s and a second copy in memory). A rule's offending campaigns are
# listed only when the first scan says there are some; count(*) OVER () counts them all before LIMIT.
_PROFILE_COUNTS = """
    SELECT count(*),
           count(*) > count(DISTINCT campaign_id),
           coalesce(bool_or(impressions < 0 OR clicks < 0 OR conversions < 0), false),
           coalesce(bool_or(clicks > impressions), false),
           EXISTS (
               SELECT FROM campaign_daily_metrics AS m
               WHERE m.account_id = %(account_id)s AND m.metrics_date = %(day)s
                 AND NOT EXISTS (SELECT FROM campaigns AS c
                                 WHERE c.account_id = m.account_id AND c.campaign_id = m.campaign_id)
           )
    FROM campaign_daily_metrics WHERE account_id = %(account_id)s AND metrics_date = %(day)s
"""
_OFFENDING_CAMPAIGNS = {
    "duplicated": """
        SELECT campaign_id, count(*) OVER () FROM campaign_daily_metrics
        WHERE account_id = %(account_id)s AND metrics_date = %(day)s
        GROUP BY campaign_id HAVING count(*) > 1
        ORDER BY campaign_id LIMIT %(sample)s
    """,
    "negative_metrics": """
        SELECT campaign_id, count(*) OVER () FROM (
            SELECT DISTINCT campaign_id FROM campaign_daily_metrics
            WHERE account_id = %(account_id)s AND metrics_date = %(day)s
              AND (impressions < 0 OR clicks < 0 OR conversions < 0)
        ) AS offending
        ORDER BY campaign_id LIMIT %(sample)s
    """,
    "over_clicked": """
        SELECT campaign_id, count(*) OVER () FROM (
            SELECT DISTINCT campaign_id FROM campaign_daily_metrics
            WHERE account_id = %(account_id)s AND metrics_date = %(day)s AND clicks > impressions
        ) AS offending
        ORDER BY campaign_id LIMIT %(sample)s
    """,
    "without_attributes": """
        SELECT campaign_id, count(*) OVER () FROM (
            SELECT DISTINCT m.campaign_id FROM campaign_daily_metrics AS m
            WHERE m.account_id = %(account_id)s AND m.metrics_date = %(day)s
              AND NOT EXISTS (SELECT FROM campaigns AS c
                              WHERE c.account_id = m.account_id AND c.campaign_id = m.campaign_id)
        ) AS offending
        ORDER BY campaign_id LIMIT %(sample)s
    """,
}
_PREVIEW = """
    SELECT m.campaign_id, c.name, m.status, m.impressions, m.clicks, m.conversions
    FROM campaign_daily_metrics AS m
    JOIN campaigns AS c USING (account_id, campaign_id)
    WHERE m.account_id = %(account_id)s AND m.metrics_date = %(day)s
    ORDER BY m.campaign_id LIMIT %(rows)s
"""
PREVIEW_COLUMNS: tuple[str, ...] = ("campaign_id", "name", "status", "impressions", "clicks", "conversions")

_RECORD_FAILURES = """
    INSERT INTO campaign_sync_failures AS f (account_id, metrics_date, campaign_id, reason, attempts,
                                             first_seen, last_seen, run_id)
    SELECT %(account_id)s, %(day)s, failure.campaign_id, failure.reason, failure.attempts, now(), now(), %(run_id)s
    FROM unnest(%(campaign_ids)s::text[], %(reasons)s::text[], %(attempts)s::integer[])
         AS failure (campaign_id, reason, attempts)
    ON CONFLICT (account_id, metrics_date, campaign_id) DO UPDATE
    SET reason = EXCLUDED.reason, attempts = f.attempts + EXCLUDED.attempts,
        last_seen = EXCLUDED.last_seen, run_id = EXCLUDED.run_id
"""

# A value left out (None) keeps the stored one while the same run reports; a new run starts afresh.
_UPDATE_PROGRESS = """
    INSERT INTO partition_progress AS p (account_id, metrics_date, run_id, phase, pages_fetched,
                                         campaigns_total, campaigns_synced, updated_at)
    VALUES (%(account_id)s, %(day)s, %(run_id)s, %(phase)s, COALESCE(%(pages_fetched)s::integer, 0),
            %(campaigns_total)s::integer, COALESCE(%(campaigns_synced)s::integer, 0), now())
    ON CONFLICT (account_id, metrics_date) DO UPDATE
    SET run_id = EXCLUDED.run_id,
        phase = EXCLUDED.phase,
        pages_fetched = CASE WHEN %(pages_fetched)s::integer IS NULL AND p.run_id = EXCLUDED.run_id
                             THEN p.pages_fetched ELSE EXCLUDED.pages_fetched END,
        campaigns_total = CASE WHEN %(campaigns_total)s::integer IS NULL AND p.run_id = EXCLUDED.run_id
                               THEN p.campaigns_total ELSE EXCLUDED.campaigns_total END,
        campaigns_synced = CASE WHEN %(campaigns_synced)s::integer IS NULL AND p.run_id = EXCLUDED.run_id
                                THEN p.campaigns_synced ELSE EXCLUDED.campaigns_synced END,
        updated_at = EXCLUDED.updated_at
"""


class PartitionLoadError(RuntimeError):
    """A partition load failed: rolled back, or, when the connection was lost during its last COMMIT, unknown.

    The message names the error class, SQLSTATE, table, column and constraint,
    never row values (PostgreSQL's own detail can quote a whole failing row).

    Attributes:
        sqlstate: The SQLSTATE code, or None when the connection failed.
        error_class: The driver's exception class, e.g. ``psycopg.errors.CheckViolation``.
        outcome_unknown: The load may have committed; ``partition_loads`` holds
            a row of ``load_id`` if it did. Loading the partition again is safe.
    """

    def __init__(
        self,
        message: str,
        *,
        sqlstate: str | None = None,
        error_class: type[psycopg.Error] = psycopg.Error,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.error_class = error_class
        self.outcome_unknown = outcome_unknown

    @classmethod
    def from_error(
        cls, account_id: str, day: date, error: psycopg.Error, *, load_id: uuid.UUID | None = None
    ) -> PartitionLoadError:
        """Describe ``error``, raised while loading the account-day, without its message or detail."""
        partition = f"{account_id} {day.isoformat()}"
        if isinstance(error, CommitOutcomeUnknown):
            cause = error.__cause__ if isinstance(error.__cause__, psycopg.Error) else error
            recorded = f" (if it was, partition_loads has a row of load_id {load_id})" if load_id else ""
            return cls(
                f"Loading {partition}: the connection was lost while committing, so the load may or may not "
                f"have been committed{recorded}; loading it again is safe: {describe_database_error(cause)}",
                sqlstate=cause.sqlstate,
                error_class=type(cause),
                outcome_unknown=True,
            )
        return cls(
            f"Loading {partition} failed and was rolled back: {describe_database_error(error)}",
            sqlstate=error.sqlstate,
            error_class=type(error),
        )


def describe_database_error(error: psycopg.Error) -> str:
    """Return the class, SQLSTATE and location of ``error``, without its message or detail."""
    diag = error.diag
    where = [
        f"{label} {value}"
        for label, value in (
            ("SQLSTATE", error.sqlstate),
            ("table", diag.table_name),
            ("column", diag.column_name),
            ("constraint", diag.constraint_name),
        )
        if value
    ]
    return type(error).__name__ + (f" ({', '.join(where)})" if where else "")


@dataclass(frozen=True)
class LoadResult:
    """What one :meth:`Warehouse.replace_partition` did to the partition's metric rows.

    Attributes:
        inserted: Campaign rows the day did not have.
        updated: Rows whose values changed; only these were rewritten.
        deleted: Rows of campaigns the platform no longer returned for the day.
        unchanged: Rows left untouched (they keep their ``loaded_at`` and run id).
        campaigns_written: Rows of ``campaigns`` inserted or updated with newer attributes.
    """

    inserted: int
    updated: int
    deleted: int
    unchanged: int
    campaigns_written: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counts by name, e.g. for run metadata."""
        return asdict(self)


@dataclass(frozen=True)
class CampaignFailure:
    """A campaign whose sync keeps failing for an account-day.

    Attributes:
        reason: The last failure's reason.
        attempts: Failed attempts so far, over all runs.
        first_seen: When the first failure was recorded.
        last_seen: When the last failure was recorded.
        run_id: The run that recorded the last failure.
    """

    reason: str
    attempts: int
    first_seen: datetime
    last_seen: datetime
    run_id: str


@dataclass(frozen=True)
class OffendingCampaigns:
    """The campaigns of an account-day that break one rule.

    Attributes:
        count: How many distinct campaigns break it.
        sample: The first of them by campaign id (at most the sample size asked for).
    """

    count: int = 0
    sample: tuple[str, ...] = ()


@dataclass(frozen=True)
class PartitionProfile:
    """What the warehouse holds for one account-day, as the data-quality checks and the UI's preview need it.

    Attributes:
        rows: Metric rows of the account-day.
        duplicated: Campaigns with more than one row.
        negative_metrics: Campaigns with negative impressions, clicks or conversions.
        over_clicked: Campaigns with more clicks than impressions.
        without_attributes: Campaigns with metric rows but no row in ``campaigns`` (no foreign key
            enforces it, and the reads join the two tables, so such rows would not be read back).
        preview: The first rows by campaign id, with :data:`PREVIEW_COLUMNS`.
    """

    rows: int
    duplicated: OffendingCampaigns
    negative_metrics: OffendingCampaigns
    over_clicked: OffendingCampaigns
    without_attributes: OffendingCampaigns
    preview: pd.DataFrame


class Warehouse:
    """The campaign warehouse in one PostgreSQL database, reached through a connection pool.

    Every public method is one transaction on a pooled connection, so one
    instance can serve many threads. A transaction whose connection is lost is
    run again whole, up to ``transaction_retries`` times (see
    :class:`~campaign_pipeline.warehouse.transactions.TransactionRunner`).
    Use :meth:`shared` for the one pool a process should have.

    Args:
        url: libpq URL of the database, e.g. ``postgresql://user:password@host:5432/warehouse``.
        min_connections: Connections the pool keeps open.
        max_connections: Most connections the pool opens.
        statement_timeout_seconds: Longest a statement may run before PostgreSQL cancels it.
        transaction_retries: Times a transaction is run again after its connection was lost.
        application_name: Shown in ``pg_stat_activity``.
        retry_delay_seconds: Wait before the first retry, doubled for each next one.
    """

    _shared: ClassVar[dict[tuple[Any, ...], Warehouse]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()
    _closes_shared_at_exit: ClassVar[bool] = False

    def __init__(
        self,
        url: str,
        *,
        min_connections: int = 1,
        max_connections: int = 4,
        statement_timeout_seconds: float = 300,
        transaction_retries: int = 2,
        application_name: str = "campaign_pipeline",
        retry_delay_seconds: float = 0.5,
    ) -> None:
        if not statement_timeout_seconds > 0:
            raise ValueError(f"statement_timeout_seconds must be greater than 0, not {statement_timeout_seconds}.")
        # Checked before the pool opens: its workers would log libpq's complaint, which can quote the password.
        problem = postgres_url_problem(url)
        if problem is not None:
            raise ValueError(f"The warehouse URL {redact_url(url)} is not one libpq can read: {problem}.")
        self._url = url
        self._application_name = application_name
        self._statement_timeout_ms = max(1, round(statement_timeout_seconds * 1000))
        self._pool = ConnectionPool(
            url,
            min_size=min_connections,
            max_size=max_connections,
            kwargs={"application_name": application_name},
            configure=self._configure_connection,
            check=ConnectionPool.check_connection,
            name=application_name,
            open=True,
        )
        self._transactions = TransactionRunner(
            self._pool, retries=transaction_retries, retry_delay_seconds=retry_delay_seconds
        )
        self._migrated = False
        self._migrate_lock = threading.Lock()

    @classmethod
    def shared(cls, url: str, **options: Any) -> Warehouse:
        """Return this process's writer for ``url`` and ``options``, creating it on first use.

        One pool per process: every caller with the same URL and options gets the
        same instance. A child process started by ``fork`` gets its own.
        """
        key = (os.getpid(), url, tuple(sorted(options.items())))
        with cls._shared_lock:
            warehouse = cls._shared.get(key)
            if warehouse is None or warehouse.closed:
                warehouse = cls._shared[key] = cls(url, **options)
            if not Warehouse._closes_shared_at_exit:
                atexit.register(cls.close_shared)
                Warehouse._closes_shared_at_exit = True
        return warehouse

    @classmethod
    def close_shared(cls) -> None:
        """Close the shared writers this process created."""
        with cls._shared_lock:
            mine = [key for key in cls._shared if key[0] == os.getpid()]
            for key in mine:
                cls._shared.pop(key).close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._pool.closed

    def close(self) -> None:
        """Close the pool and its connections."""
        self._pool.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Warehouse({redact_url(self._url)!r})"

    def migrate(self) -> list[str]:
        """Apply the schema migrations not yet applied; return their versions (empty if none)."""
        with psycopg.connect(
            self._url, autocommit=True, application_name=self._application_name, connect_timeout=30
        ) as connection:
            applied = apply_migrations(connection, load_migrations())
        for version in applied:
            log.info("Applied warehouse migration %s.", version)
        return applied

    def ensure_migrated(self) -> None:
        """Run :meth:`migrate` once for this writer; later calls return at once."""
        with self._migrate_lock:
            if not self._migrated:
                self.migrate()
                self._migrated = True

    def replace_partition(self, account_id: str, day: date, frame: pd.DataFrame, *, run_id: str) -> LoadResult:
        """Make the account-day hold exactly the rows of ``frame``, in one transaction.

        New campaigns are inserted, changed rows rewritten, unchanged rows left
        alone (so a rerun writes nothing), and rows of campaigns absent from
        ``frame`` deleted. Campaign attributes are updated unless a later day
        has already been loaded. Loads of one account take turns through an
        advisory lock, as they share the account's ``campaigns`` rows.

        Retrying is safe even when the outcome of a lost COMMIT is unknown: the
        load is idempotent, since running it again converges to the same rows.
        Each load records its counts in ``partition_loads`` in its own
        transaction, so a retry that finds them reports them instead of the
        nothing a second merge would do.

        Args:
            account_id: The account.
            day: The day.
            frame: A campaign frame of that account-day (see ``frame.validate_frame``).
            run_id: Recorded in ``loaded_by_run_id`` of the rows this load writes.

        Returns:
            The counts of inserted, updated, deleted and unchanged rows.

        Raises:
            FrameValidationError: ``frame`` breaks a rule; nothing was written.
            PartitionLoadError: The database refused the load and nothing was
                written, or the connection was lost during the last COMMIT
                (``outcome_unknown``).
        """
        staged = frame_to_arrow(frame, account_id=account_id, day=day).select(list(STAGING_COLUMNS))
        # Staged in key order, the merges add index entries left to right instead of at random
        # leaf pages (Arrow compares strings by bytes, as the key's COLLATE "C" does). The next
        # day of 1,000,000 campaigns: 8.1 s against 10.4 s, means of six runs; sorting costs 0.1 s.
        staged = staged.take(pa_compute.sort_indices(staged, [("campaign_id", "ascending")]))
        params = {"account_id": account_id, "day": day, "run_id": run_id, "load_id": uuid.uuid4()}
        committed_before: list[bool] = []

        def load(connection: psycopg.Connection) -> LoadResult:
            self._lock_account(connection, account_id)
            # Run again after a COMMIT whose answer was lost, the load finds its own row if that
            # COMMIT took effect: its counts are the load's, where merging again finds nothing to do.
            recorded = connection.execute(_RECORDED_LOAD, params).fetchone()
            if recorded is not None:
                committed_before.append(True)
                return LoadResult(*recorded)
            connection.execute("SELECT set_config('work_mem', %s, true)", (_LOAD_WORK_MEM,))
            self._stage(connection, staged)
            campaigns_written = self._merge_campaigns(connection, params)
            rows_before = self._count_partition(connection, params)
            merged = self._merge_metrics(connection, params)
            # The merge only added rows, so the partition grew by the inserted ones; every
            # other row there before that no staged row matched is stale. Counting is two
            # index range scans, where looking for stale rows is a join over both sides.
            inserted = self._count_partition(connection, params) - rows_before
            stale = rows_before - (staged.num_rows - inserted)
            deleted = self._delete_stale_metrics(connection, params) if stale else 0
            updated = merged - inserted
            result = LoadResult(inserted, updated, deleted, staged.num_rows - inserted - updated, campaigns_written)
            connection.execute(_RECORD_LOAD, {**params, **result.as_dict()})
            return result

        try:
            result = self._transactions.run(load, description=f"the load of {account_id} {day}", idempotent=True)
        except psycopg.Error as error:
            # The driver's message can quote a failing row; the replacement names only where it failed.
            raise PartitionLoadError.from_error(account_id, day, error, load_id=params["load_id"]) from None
        if committed_before:
            log.info("The load of %s %s had committed before the connection was lost.", account_id, day)
        log.info("Loaded %s %s: %s.", account_id, day, result.as_dict())
        return result

    def read_partition(self, account_id: str, day: date) -> pd.DataFrame:
        """Return the account-day as a campaign frame, sorted by campaign id.

        ``status`` and ``budget`` are the day's; ``name`` and ``created_at`` are
        the campaign's latest known attributes.
        """
        def read(connection: psycopg.Connection) -> bytes:
            with connection.cursor().copy(_READ_PARTITION, {"account_id": account_id, "day": day}) as copy:
                return b"".join(copy)

        data = self._transactions.run(read, description="a read", idempotent=True)
        if not data:
            return empty_campaign_frame()
        table = pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(column_names=list(_READ_COLUMN_TYPES)),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=_READ_COLUMN_TYPES, strings_can_be_null=False, quoted_strings_can_be_null=False
            ),
        )
        rows = table.num_rows
        created_at = table.column("created_at").cast(pa.timestamp("us", tz="UTC"))
        table = table.set_column(table.schema.get_field_index("created_at"), "created_at", created_at)
        table = table.append_column("account_id", pa.array([account_id] * rows, pa.large_string()))
        table = table.append_column("metrics_date", pa.array([day] * rows, pa.date32()))
        return frame_from_arrow(table)

    def profile_partition(
        self, account_id: str, day: date, *, sample_size: int = 5, preview_rows: int = 5
    ) -> PartitionProfile:
        """Return the account-day's row count, the campaigns that break each check's rule, and a preview.

        Computed in PostgreSQL in one transaction: the rows are not read back.

        Args:
            account_id: The account.
            day: The day.
            sample_size: Most offending campaign ids returned per rule.
            preview_rows: Rows of the preview.

        Raises:
            ValueError: ``sample_size`` is below 1 (the counts come with the sample).
        """
        if sample_size < 1:
            raise ValueError(f"sample_size must be at least 1, not {sample_size}.")
        params = {"account_id": account_id, "day": day, "sample": sample_size, "rows": preview_rows}

        def profile(connection: psycopg.Connection) -> PartitionProfile:
            rows, *flags = connection.execute(_PROFILE_COUNTS, params).fetchone()
            offending = {}
            for rule, flagged in zip(_OFFENDING_CAMPAIGNS, flags, strict=True):
                found = connection.execute(_OFFENDING_CAMPAIGNS[rule], params).fetchall() if flagged else []
                offending[rule] = OffendingCampaigns(
                    count=found[0][1] if found else 0, sample=tuple(campaign_id for campaign_id, _ in found)
                )
            preview = pd.DataFrame(connection.execute(_PREVIEW, params).fetchall(), columns=list(PREVIEW_COLUMNS))
            return PartitionProfile(rows=rows, preview=preview, **offending)

        return self._transactions.run(profile, description="a read", idempotent=True)

    def partition_row_count(self, account_id: str, day: date) -> int:
        """Return how many metric rows the account-day holds."""
        rows = self._read(
            "SELECT count(*) FROM campaign_daily_metrics WHERE account_id = %s AND metrics_date = %s",
            (account_id, day),
        )
        return int(rows[0][0])

    def synced_campaign_ids(self, account_id: str, day: date) -> set[str]:
        """Return the campaigns already synced for the account-day."""
        rows = self._read(
            "SELECT campaign_id FROM campaign_sync_progress WHERE account_id = %s AND metrics_date = %s",
            (account_id, day),
        )
        return {campaign_id for (campaign_id,) in rows}

    def record_campaign_synced(
        self, account_id: str, day: date, campaign_id: str, *, run_id: str, synced_at: datetime
    ) -> None:
        """Record that a campaign of the account-day was synced; recording it again updates the time."""
        self._write(
            """
            INSERT INTO campaign_sync_progress (account_id, metrics_date, campaign_id, synced_at, run_id)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (account_id, metrics_date, campaign_id) DO UPDATE
            SET synced_at = EXCLUDED.synced_at, run_id = EXCLUDED.run_id
            """,
            (account_id, day, campaign_id, synced_at, run_id),
            description=f"recording a synced campaign of {account_id} {day}",
        )

    def reset_sync_progress(self, account_id: str, day: date) -> int:
        """Forget which campaigns of the account-day were synced; return how many were."""
        return self._write(
            "DELETE FROM campaign_sync_progress WHERE account_id = %s AND metrics_date = %s",
            (account_id, day),
            description=f"resetting the sync progress of {account_id} {day}",
        )

    def record_campaign_failures(
        self, account_id: str, day: date, failures: Mapping[str, tuple[str, int]], *, run_id: str
    ) -> None:
        """Add failed sync attempts to the ledger of the account-day.

        Args:
            account_id: The account.
            day: The day.
            failures: Reason of the last failure and attempts made, by campaign id.
                Attempts add up over calls; the reason is replaced.
            run_id: The run that saw the failures.
        """
        if not failures:
            return
        for campaign_id, (_, attempts) in failures.items():
            if attempts < 0:
                raise ValueError(f"attempts of campaign {campaign_id!r} must be 0 or more, not {attempts}.")
        params = {
            "account_id": account_id,
            "day": day,
            "run_id": run_id,
            "campaign_ids": list(failures),
            "reasons": [reason for reason, _ in failures.values()],
            "attempts": [attempts for _, attempts in failures.values()],
        }
        self._write(
            _RECORD_FAILURES,
            params,
            description=f"recording sync failures of {account_id} {day}",
            idempotent=False,
        )

    def clear_campaign_failures(
        self, account_id: str, day: date, campaign_ids: Iterable[str] | None = None
    ) -> int:
        """Remove campaigns (all when ``campaign_ids`` is None) from the ledger; return how many were there."""
        ids = None if campaign_ids is None else list(campaign_ids)
        return self._write(
            """
            DELETE FROM campaign_sync_failures
            WHERE account_id = %s AND metrics_date = %s AND (%s::text[] IS NULL OR campaign_id = ANY(%s::text[]))
            """,
            (account_id, day, ids, ids),
            description=f"clearing sync failures of {account_id} {day}",
        )

    def campaign_failures(self, account_id: str, day: date) -> dict[str, CampaignFailure]:
        """Return the failure ledger of the account-day by campaign id."""
        rows = self._read(
            """
            SELECT campaign_id, reason, attempts, first_seen, last_seen, run_id
            FROM campaign_sync_failures WHERE account_id = %s AND metrics_date = %s
            """,
            (account_id, day),
        )
        return {campaign_id: CampaignFailure(*details) for campaign_id, *details in rows}

    def update_progress(
        self,
        account_id: str,
        day: date,
        *,
        run_id: str,
        phase: str,
        pages_fetched: int | None = None,
        campaigns_total: int | None = None,
        campaigns_synced: int | None = None,
    ) -> None:
        """Record how far the run of an account-day has come.

        A count left out keeps its stored value while the same run reports;
        the first report of a new run resets it (0, or unknown for the total).
        """
        self._write(
            _UPDATE_PROGRESS,
            {
                "account_id": account_id,
                "day": day,
                "run_id": run_id,
                "phase": phase,
                "pages_fetched": pages_fetched,
                "campaigns_total": campaigns_total,
                "campaigns_synced": campaigns_synced,
            },
            description=f"updating the progress of {account_id} {day}",
        )

    def read_progress(self, day: date, account_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Return the progress of the given accounts on ``day``; accounts with none are left out.

        Each value holds ``run_id``, ``phase``, ``pages_fetched``, ``campaigns_total``
        (None until known), ``campaigns_synced`` and ``updated_at``.
        """
        rows = self._read(
            """
            SELECT account_id, run_id, phase, pages_fetched, campaigns_total, campaigns_synced, updated_at
            FROM partition_progress WHERE metrics_date = %s AND account_id = ANY(%s::text[])
            """,
            (day, list(account_ids)),
        )
        names = ("run_id", "phase", "pages_fetched", "campaigns_total", "campaigns_synced", "updated_at")
        return {account_id: dict(zip(names, values, strict=True)) for account_id, *values in rows}

    def _configure_connection(self, connection: psycopg.Connection) -> None:
        connection.execute(
            "SELECT set_config('statement_timeout', %s, false)", (f"{self._statement_timeout_ms}ms",)
        )
        connection.commit()

    def _read(self, query: str, params: Mapping[str, Any] | tuple[Any, ...]) -> list[tuple[Any, ...]]:
        def read(connection: psycopg.Connection) -> list[tuple[Any, ...]]:
            return connection.execute(query, params).fetchall()

        return self._transactions.run(read, description="a read", idempotent=True)

    def _write(
        self,
        query: str,
        params: Mapping[str, Any] | tuple[Any, ...],
        *,
        description: str,
        idempotent: bool = True,
    ) -> int:
        def write(connection: psycopg.Connection) -> int:
            return connection.execute(query, params).rowcount

        return self._transactions.run(write, description=description, idempotent=idempotent)

    def _lock_account(self, connection: psycopg.Connection, account_id: str) -> None:
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (account_lock_key(account_id),))

    def _stage(self, connection: psycopg.Connection, staged: pa.Table) -> None:
        connection.execute(_CREATE_STAGING)
        # Binary COPY data holds strings as UTF-8 bytes, taken in the client encoding.
        connection.execute("SELECT set_config('client_encoding', 'UTF8', true)")
        copy = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
            sql.Identifier(STAGING_TABLE), sql.SQL(", ").join(map(sql.Identifier, staged.column_names))
        )
        cursor = connection.cursor()
        # The queued writer sends one chunk while the next is being formatted.
        with cursor.copy(copy, writer=QueuedLibpqWriter(cursor)) as stream:
            for chunk in binary_copy_chunks(staged):
                stream.write(chunk)
        # No ANALYZE (0.2 s per million rows): the planner sizes the table from its pages,
        # and the merges hash the target's partition either way.

    def _merge_campaigns(self, connection: psycopg.Connection, params: Mapping[str, Any]) -> int:
        return connection.execute(_MERGE_CAMPAIGNS, params).rowcount

    def _count_partition(self, connection: psycopg.Connection, params: Mapping[str, Any]) -> int:
        return connection.execute(_COUNT_PARTITION, params).fetchone()[0]

    def _delete_stale_metrics(self, connection: psycopg.Connection, params: Mapping[str, Any]) -> int:
        return connection.execute(_DELETE_STALE_METRICS, params).rowcount

    def _merge_metrics(self, connection: psycopg.Connection, params: Mapping[str, Any]) -> int:
        return connection.execute(_MERGE_METRICS, params).rowcount


def account_lock_key(account_id: str) -> int:
    """Return the advisory-lock key of an account: 64 bits of a hash of its id."""
    digest = hashlib.blake2b(account_id.encode("utf-8"), digest_size=8, person=b"cp-account").digest()
    return int.from_bytes(digest, "big", signed=True)
