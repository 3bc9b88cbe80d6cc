"""The two assets of one account-day: the platform's snapshot and the warehouse load."""


import contextlib
import math
import threading
import time
from collections.abc import Iterator, Sequence

import dagster as dg
import pandas as pd

from campaign_pipeline.accounts import AccountConfigError
from campaign_pipeline.ad_platform.errors import AdPlatformError, AuthenticationError, is_retriable_error
from campaign_pipeline.checks import CAMPAIGN_DAILY_METRICS_CHECKS, CHECK_SAMPLE_SIZE, evaluate_partition_checks
from campaign_pipeline.partitions import AccountDay, account_day_from_key
from campaign_pipeline.resources import AdPlatformResource, WarehouseResource
from campaign_pipeline.settings import CREDENTIALS
from campaign_pipeline.warehouse.frame import (
    CampaignFrameBuilder,
    CampaignRecordError,
    FrameValidationError,
    validate_frame,
)

PREVIEW_ROWS = 5
# Progress (a progress row and a log line) is recorded the first and last time, about this many times
# in between, and whenever this many seconds have passed since the last record.
PROGRESS_RECORDS_PER_LISTING = 10
PROGRESS_INTERVAL_SECONDS = 1.0


def build_campaign_assets(
    partitions_def: dg.PartitionsDefinition, *, step_retries: int = 2, step_retry_delay_seconds: float = 30.0
) -> list[dg.AssetsDefinition]:
    """Return the snapshot and load assets for ``partitions_def`` (account x day).

    Transient trouble that outlasts the client's own retry budgets (an outage,
    a lost database connection) gets ``step_retries`` more tries, the first
    after ``step_retry_delay_seconds`` and then exponentially later; errors a
    retry cannot fix (bad credentials, a malformed response) fail at once.
    """
    retry_policy = dg.RetryPolicy(
        max_retries=step_retries,
        delay=step_retry_delay_seconds,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )

    @dg.asset(
        partitions_def=partitions_def,
        io_manager_key="frame_io_manager",
        retry_policy=retry_policy,
        group_name="ad_platform",
        kinds={"python", "pandas"},
    )
    def campaign_snapshots(
        context: dg.AssetExecutionContext, ad_platform: AdPlatformResource, warehouse: WarehouseResource
    ) -> dg.Output[pd.DataFrame]:
        """Every campaign of one account on one day, as the ad platform reports it.

        One row per campaign: its attributes (name, status, budget, creation time)
        and the day's impressions, clicks and conversions, pulled through every
        page of the platform's campaign list. Each campaign is then synced on the
        platform; a run that dies part way resumes with the campaigns not yet
        synced, and campaigns that keep failing are listed in the failure ledger
        (table ``campaign_sync_failures``) and fail the partition.
        """
        account_day = _account_day(context.partition_key)
        store = warehouse.get_warehouse()
        started = time.monotonic()
        with _fatal_errors_fail_without_retry(account_day):
            with ad_platform.get_client(account_day.account_id, logger=context.log) as client:
                try:
                    frame, pages = _pull_campaigns(context, client, store, account_day)
                    synced_before = _sync_campaigns(
                        context, client, store, account_day, frame["campaign_id"].tolist()
                    )
                except Exception:
                    _log_failed_attempt(context, account_day, client.stats.as_metadata(), started)
                    raise
                stats = client.stats.as_metadata()
        return dg.Output(
            frame,
            metadata={
                "rows": dg.MetadataValue.int(len(frame)),
                "pages": dg.MetadataValue.int(pages),
                "campaigns_synced_by_earlier_attempts": dg.MetadataValue.int(synced_before),
                "duration_seconds": dg.MetadataValue.float(round(time.monotonic() - started, 3)),
                **_client_metadata(stats),
                "preview": dg.MetadataValue.md(_preview_markdown(frame)),
            },
        )

    @dg.asset(
        partitions_def=partitions_def,
        retry_policy=retry_policy,
        group_name="warehouse",
        kinds={"postgres"},
        check_specs=CAMPAIGN_DAILY_METRICS_CHECKS,
    )
    def campaign_daily_metrics(
        context: dg.AssetExecutionContext, campaign_snapshots: pd.DataFrame, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        """Daily campaign performance per account in PostgreSQL, exactly as the platform reported it.

        Table ``campaign_daily_metrics`` (one row per account, day and campaign:
        impressions, clicks, conversions) and table ``campaigns`` (the campaigns'
        latest attributes). The account-day is replaced in one transaction: new
        rows inserted, changed rows updated, rows the platform no longer returns
        deleted, unchanged rows left untouched, so a rerun changes nothing and a
        reader never sees half a day.
        """
        account_day = _account_day(context.partition_key)
        store = warehouse.get_warehouse()
        started = time.monotonic()
        # replace_partition validates the frame before writing; a frame that breaks a rule fails without retry.
        with _fatal_errors_fail_without_retry(account_day):
            result = store.replace_partition(
                account_day.account_id, account_day.day, campaign_snapshots, run_id=context.run.run_id
            )
        store.update_progress(account_day.account_id, account_day.day, run_id=context.run.run_id, phase="loaded")
        # The partition is complete: a later rerun is a new sync, not a resumption.
        store.reset_sync_progress(account_day.account_id, account_day.day)
        profile = store.profile_partition(
            account_day.account_id, account_day.day, sample_size=CHECK_SAMPLE_SIZE, preview_rows=PREVIEW_ROWS
        )
        context.log.info(
            f"{account_day}: loaded {len(campaign_snapshots)} rows "
            f"({result.inserted} inserted, {result.updated} updated, {result.deleted} deleted, "
            f"{result.unchanged} unchanged)"
        )
        return dg.MaterializeResult(
            metadata={
                "rows": dg.MetadataValue.int(profile.rows),
                **{name: dg.MetadataValue.int(count) for name, count in result.as_dict().items()},
                "duration_seconds": dg.MetadataValue.float(round(time.monotonic() - started, 3)),
                "preview": dg.MetadataValue.md(_preview_markdown(profile.preview)),
            },
            check_results=evaluate_partition_checks(profile, platform_total=len(campaign_snapshots)),
        )

    return [campaign_snapshots, campaign_daily_metrics]


def _pull_campaigns(context, client, store, account_day: AccountDay) -> tuple[pd.DataFrame, int]:
    """Return the account-day's campaign frame and the number of pages it took."""
    progress = _PagingProgress(context, store, account_day)
    builder = CampaignFrameBuilder(account_id=account_day.account_id, day=account_day.day)

    def on_page(page) -> None:
        # Converted here, while the client's workers fetch the next pages.
        builder.add(page.campaigns)
        progress.on_page(page)

    client.fetch_campaigns(account_day.day, on_page=on_page)
    frame = builder.frame()
    validate_frame(frame, account_id=account_day.account_id, day=account_day.day)
    return frame, progress.pages


class _ProgressThrottle:
    """Says when progress is worth recording: the first and last time, every ``step``-th, and after ``interval``.

    Recording a progress row and a Dagster event for each of 1,000 pages or
    10,000 syncs cost a database write and an event-log insert apiece, a third
    of a fast listing's time; a slow account (a page or sync every few seconds)
    is still recorded at every step.
    """

    def __init__(self, *, step: int = 1, interval_seconds: float = PROGRESS_INTERVAL_SECONDS) -> None:
        self.step = step
        self._interval_seconds = interval_seconds
        self._recorded_at: float | None = None

    def due(self, count: int, *, last: bool) -> bool:
        now = time.monotonic()
        if not (
            self._recorded_at is None
            or last
            or count % self.step == 0
            or now - self._recorded_at >= self._interval_seconds
        ):
            return False
        self._recorded_at = now
        return True


class _PagingProgress:
    """Records a listing's progress (a progress row and a log line) as its pages arrive, throttled.

    About :data:`PROGRESS_RECORDS_PER_LISTING` pages are recorded, the first
    and last included (so every page of a 10-page account), and the latest
    page whenever :data:`PROGRESS_INTERVAL_SECONDS` have passed.
    """

    def __init__(self, context, store, account_day: AccountDay) -> None:
        self._context = context
        self._store = store
        self._account_day = account_day
        self._pages = 0
        self._campaigns = 0
        self._throttle = _ProgressThrottle()

    @property
    def pages(self) -> int:
        """Pages fetched so far."""
        return self._pages

    def on_page(self, page) -> None:
        self._pages += 1
        self._campaigns += len(page.campaigns)
        if self._pages == 1 and page.campaigns:
            pages = math.ceil(page.total / len(page.campaigns))
            self._throttle.step = max(1, math.ceil(pages / PROGRESS_RECORDS_PER_LISTING))
        last = not page.has_more or not page.campaigns or self._campaigns >= page.total
        if not self._throttle.due(self._pages, last=last):
            return
        account_day = self._account_day
        self._store.update_progress(
            account_day.account_id,
            account_day.day,
            run_id=self._context.run.run_id,
            phase="paging",
            pages_fetched=self._pages,
        )
        self._context.log.info(
            f"{account_day}: page {self._pages} fetched ({len(page.campaigns)} campaigns; "
            f"{self._campaigns} of {page.total} so far)"
        )


def _sync_campaigns(context, client, store, account_day: AccountDay, campaign_ids: Sequence[str]) -> int:
    """Sync the campaigns not synced by an earlier attempt; return how many were skipped."""
    account_id, day, run_id = account_day.account_id, account_day.day, context.run.run_id
    already_synced = store.synced_campaign_ids(account_id, day) & set(campaign_ids)
    pending = [campaign_id for campaign_id in campaign_ids if campaign_id not in already_synced]
    total = len(campaign_ids)
    synced = len(already_synced)
    lock = threading.Lock()
    store.update_progress(
        account_id, day, run_id=run_id, phase="syncing", campaigns_total=total, campaigns_synced=synced
    )
    if already_synced:
        context.log.info(f"{account_day}: resuming, {len(already_synced)} of {total} campaigns synced earlier")

    throttle = _ProgressThrottle(step=max(10, math.ceil(total / PROGRESS_RECORDS_PER_LISTING)))

    def on_synced(campaign_id: str) -> None:
        nonlocal synced
        # The ledger row is what a resumed attempt relies on: one per campaign, never throttled.
        store.record_campaign_synced(account_id, day, campaign_id, run_id=run_id, synced_at=pd.Timestamp.now("UTC"))
        with lock:
            synced += 1
            count = synced
            due = throttle.due(count, last=count == total)
        if due:
            store.update_progress(account_id, day, run_id=run_id, phase="syncing", campaigns_synced=count)
            context.log.info(f"{account_day}: {count} of {total} campaigns synced")

    report = client.sync_campaigns(pending, on_synced=on_synced)
    # The ledger lists the campaigns failing now: an earlier attempt's failure that this one synced is gone.
    store.clear_campaign_failures(account_id, day, report.synced)
    if report.failed:
        store.record_campaign_failures(
            account_id,
            day,
            {campaign_id: (reason, report.attempts.get(campaign_id, 0)) for campaign_id, reason in report.failed.items()},
            run_id=run_id,
        )
        sample = ", ".join(f"{cid} ({reason})" for cid, reason in sorted(report.failed.items())[:5])
        raise dg.Failure(
            description=(
                f"{len(report.failed)} of {total} campaigns of {account_day} failed to sync after their "
                f"retry budget: {sample}. They are listed in table campaign_sync_failures; a retry "
                "syncs only the campaigns not yet synced."
            ),
            metadata={"failed_campaigns": dg.MetadataValue.json(report.failed)},
        )
    store.clear_campaign_failures(account_id, day)
    return len(already_synced)


def _account_day(partition_key: str) -> AccountDay:
    """The partition's account-day; a key no account-day has (one added by hand) fails without retry."""
    try:
        return account_day_from_key(partition_key)
    except AccountConfigError as exc:
        raise dg.Failure(description=f"Partition {partition_key!r}: {exc}", allow_retries=False) from exc


@contextlib.contextmanager
def _fatal_errors_fail_without_retry(account_day: AccountDay) -> Iterator[None]:
    """Turn errors that a retry cannot fix into a ``Failure`` that skips the retry policy."""
    try:
        yield
    except dg.Failure:
        raise
    except (AccountConfigError, CampaignRecordError, FrameValidationError) as exc:
        raise dg.Failure(description=f"{account_day}: {exc}", allow_retries=False) from exc
    except AuthenticationError as exc:
        description = f"{account_day}: {exc.detail.rstrip('.')}; check the account's login in {CREDENTIALS}."
        raise dg.Failure(description=description, allow_retries=False) from exc
    except AdPlatformError as exc:
        if is_retriable_error(exc):
            raise
        raise dg.Failure(description=f"{account_day}: {exc}", allow_retries=False) from exc


def _log_failed_attempt(context: dg.AssetExecutionContext, account_day: AccountDay, stats: dict, started: float) -> None:
    """Log what a failed attempt cost the platform: no materialization reports it, and events
    logged by a failing step are dropped with it, where log lines are written at once."""
    context.log.warning(
        f"{account_day}: this attempt failed after {stats['requests_total']} requests "
        f"({stats['retries_total']} retries, {stats['rate_limited_total']} answered 429, "
        f"{stats['token_fetches']} token fetches) in {time.monotonic() - started:.1f} s"
    )


def _client_metadata(stats: dict) -> dict[str, dg.MetadataValue]:
    metadata: dict[str, dg.MetadataValue] = {}
    for name, value in stats.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            metadata[name] = dg.MetadataValue.int(value)
        elif isinstance(value, float):
            metadata[name] = dg.MetadataValue.float(round(value, 3))
        else:
            metadata[name] = dg.MetadataValue.json(value)
    return metadata


def _preview_markdown(frame: pd.DataFrame) -> str:
    columns = [c for c in ("campaign_id", "name", "status", "impressions", "clicks", "conversions") if c in frame]
    return frame.loc[:, columns].head(PREVIEW_ROWS).to_markdown(index=False)
