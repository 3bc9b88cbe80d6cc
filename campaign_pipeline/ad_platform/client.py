"""How campaign_pipeline talks to the ad platform: one client per account and partition.

Every request goes through :meth:`AdPlatformClient._execute`: take a slot from
the account's rate limiter, attach the current token, send with connect and
read timeouts, classify the answer once (:mod:`.classify`), and let the call's
retry budgets (:mod:`.retry`) decide what happens next. Pagination rules live
in :mod:`.pagination`, the token lifecycle in :mod:`.auth`.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from types import TracebackType
from typing import Any, NoReturn, TypeAlias
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from campaign_pipeline.accounts import AccountCredentials, validate_account_id
from campaign_pipeline.ad_platform.arrival import ArrivalEstimator
from campaign_pipeline.ad_platform.auth import IssuedToken, Token, TokenManager
from campaign_pipeline.ad_platform.classify import Outcome, OutcomeKind, classify_exception, classify_response
from campaign_pipeline.ad_platform.config import ClientConfig
from campaign_pipeline.ad_platform.errors import (
    AuthenticationError,
    DeadlineExceeded,
    FatalResponseError,
    InvalidResponseError,
    PaginationError,
    RetryBudgetExhausted,
)
from campaign_pipeline.ad_platform.hangs import EARLY_TIMEOUTS_IN_A_ROW, HangDetector, ReadTimeout
from campaign_pipeline.ad_platform.limiter import Admission, RateLimiter, SlidingWindowLimiter, SlotWaitTooLong
from campaign_pipeline.ad_platform.pagination import (
    CampaignPage,
    PageSequence,
    PageSequenceError,
    PageShapeError,
    parse_campaign_page,
)
from campaign_pipeline.ad_platform.retry import (
    CallRetryPolicy,
    Decision,
    RetryableOutcome,
    RetryClass,
    run_with_retries,
)
from campaign_pipeline.ad_platform.stats import ClientStats

TOKEN_ENDPOINT = "POST /auth/token"
LIST_ENDPOINT = "GET /api/campaigns"
SYNC_ENDPOINT = "POST /api/campaigns/{id}/sync"
USER_AGENT = "campaign-pipeline/0.1 (+requests)"
DEFAULT_CONFIG = ClientConfig()
BASE_URL_PATTERN = re.compile(r"^https?://[^/@\s]+(/[^@\s]*)?$")

Logger: TypeAlias = "logging.Logger | logging.LoggerAdapter[logging.Logger]"


@dataclass(frozen=True)
class SyncReport:
    """What :meth:`AdPlatformClient.sync_campaigns` achieved; every campaign asked for is in it.

    Attributes:
        synced: Campaigns synced, in the order they finished.
        failed: Campaigns that failed after their retry budget, with the reason.
        attempts: Attempts made per campaign (synced or failed).
    """

    synced: list[str]
    failed: dict[str, str]
    attempts: dict[str, int]


@dataclass
class _Call:
    """One logical request and the count of its attempts."""

    endpoint: str
    description: str
    method: str
    path: str
    params: dict[str, str | int] | None = None
    body: dict[str, Any] | None = None
    authenticated: bool = True
    attempts: int = field(default=0)
    early_timeouts_in_a_row: int = field(default=0)
    last_request_seconds: float = field(default=0.0)


class _SyncCancelled(Exception):
    """Another campaign's worker hit an error that ends the whole sync."""


class _BasicAuth(AuthBase):
    """``Authorization: Basic`` from the account's credentials (UTF-8, split on the first colon only)."""

    def __init__(self, credentials: AccountCredentials) -> None:
        pair = f"{credentials.email}:{credentials.password}".encode()
        self._header = "Basic " + base64.b64encode(pair).decode("ascii")

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    def __repr__(self) -> str:
        return "_BasicAuth(<redacted>)"


class _BearerAuth(AuthBase):
    def __init__(self, token: Token) -> None:
        self._header = f"Bearer {token.value}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(<redacted>)"


class AdPlatformClient:
    """Client of the ad platform for one account, used for one partition (one account-day).

    Thread-safe: :meth:`sync_campaigns` runs its workers on it. ``repr`` and
    every log line and error name the account, never a credential or token.

    Args:
        base_url: The platform's base URL, e.g. ``https://ads.example.com``.
        account_id: The account; sent as ``X-Client-ID`` on every request.
        credentials: The account's login.
        config: Limits, timeouts, budgets and deadlines.
        limiter: The account's rate limiter, shared with every other client of
            the account; by default one of this client's own.
        clock: Monotonic clock (injected in tests).
        sleep: Sleep function (injected in tests). By default the client sleeps
            on an event, so that a sync that fails stops its other workers'
            waits at once instead of letting them sleep out a window.
        logger: Where to log; Dagster's ``context.log`` works.
        log_context: ``key=value`` pairs that start every log line, e.g. the
            partition and run ids; ``account`` is always included.
        rng: Source of backoff jitter.
    """

    def __init__(
        self,
        base_url: str,
        account_id: str,
        credentials: AccountCredentials,
        *,
        config: ClientConfig = DEFAULT_CONFIG,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        logger: Logger | None = None,
        log_context: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not BASE_URL_PATTERN.match(base_url):
            raise ValueError(
                "base_url must be an http:// or https:// URL without credentials in it "
                f"(they belong in the account credentials), not {_redact_url(base_url)!r}."
            )
        self.account_id = validate_account_id(account_id)
        self.base_url = base_url.rstrip("/")
        self.config = config
        self.stats = ClientStats()
        self._arrivals = ArrivalEstimator(horizon_seconds=config.rate_window_seconds)
        self._hangs = (
            HangDetector(
                multiplier=config.hang_detection_multiplier, floor_seconds=config.hang_detection_floor_seconds
            )
            if config.hang_detection_multiplier is not None
            else None
        )
        self._clock = clock
        self._injected_sleep = sleep
        self._rng = rng or random.Random()
        self._logger: Logger = logger or logging.getLogger(__name__)
        self._log_prefix = " ".join(
            f"{key}={value}" for key, value in {"account": account_id, **(log_context or {})}.items()
        )
        self._owns_limiter = limiter is None
        self._limiter: RateLimiter = limiter or SlidingWindowLimiter(
            config.rate_limit,
            config.rate_window_seconds,
            safety_margin_seconds=config.limiter_safety_margin_seconds,
            clock=clock,
            sleep=sleep or time.sleep,
        )
        self._basic_auth = _BasicAuth(credentials)
        self._tokens = TokenManager(
            self._fetch_token,
            clock=clock,
            refresh_margin_seconds=config.token_refresh_margin_seconds,
            on_fetch=self.stats.record_token_fetch,
        )
        self._session = _pooled_session(
            account_id, self.base_url, pool_size=max(config.sync_workers, config.page_workers) + 1
        )
        self._partition_deadline_at: float | None = None
        self._partition_lock = threading.Lock()
        self._cancelled = threading.Event()
        # True while sync_campaigns runs: a token fetch that fails for good then ends the sync at once.
        self._sync_running = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(account_id={self.account_id!r}, base_url={self.base_url!r})"

    def __enter__(self) -> AdPlatformClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (and the limiter, when the client made its own)."""
        self._session.close()
        if self._owns_limiter:
            self._limiter.close()

    def start_partition_clock(self) -> None:
        """Start the partition deadline now, unless it has started already (the first request starts it)."""
        with self._partition_lock:
            if self._partition_deadline_at is None:
                self._partition_deadline_at = self._clock() + self.config.partition_deadline_seconds

    def iter_pages(self, day: date) -> Iterator[CampaignPage]:
        """Yield the pages of the account's campaign list for ``day`` in order, each validated.

        Page 1 states ``total`` and shows the page size, so the pages up to
        ``ceil(total / size)`` are fetched by up to ``config.page_workers``
        threads (each request through the rate limiter and the retry policy),
        at most that many pages ahead of the one being accepted. Pages are
        accepted in order by :class:`~.pagination.PageSequence`, so the rules
        that end a listing and the errors of contradicting pages are those of
        a sequential listing; pages past the expected last one are fetched
        one at a time.

        Raises:
            InvalidResponseError: a page or campaign does not have the contract's shape.
            PaginationError: the pages repeat ids, contradict ``total`` or never end.
        """
        sequence = PageSequence(max_pages=self.config.max_pages)
        first = self._fetch_page(day, 1)
        more = self._accept_page(sequence, first, day)
        yield first
        if not more:
            return
        expected_last = math.ceil(first.total / len(first.campaigns))
        if self.config.page_workers == 1:
            number = 2
            while True:
                page = self._fetch_page(day, number)
                more = self._accept_page(sequence, page, day)
                yield page
                if not more:
                    return
                number += 1
        pending: dict[int, Future[CampaignPage]] = {}
        pool = ThreadPoolExecutor(self.config.page_workers, thread_name_prefix=f"pages-{self.account_id}")
        try:
            number = next_number = 2
            while True:
                while (
                    next_number < number + self.config.page_workers
                    and next_number <= max(expected_last, number)
                    and next_number <= self.config.max_pages
                ):
                    pending[next_number] = pool.submit(self._fetch_page, day, next_number)
                    next_number += 1
                page = pending.pop(number).result()
                more = self._accept_page(sequence, page, day)
                yield page
                if not more:
                    return
                number += 1
        finally:
            self._stop_page_workers(pool, pending)

    def _fetch_page(self, day: date, page_number: int) -> CampaignPage:
        call = _Call(
            endpoint=LIST_ENDPOINT,
            description=f"{LIST_ENDPOINT} page {page_number} of {day.isoformat()}",
            method="GET",
            path="/api/campaigns",
            params={"page": page_number, "limit": self.config.page_size, "date": day.isoformat()},
        )
        try:
            outcome = self._execute(call)
        except FatalResponseError as error:
            # The endpoint alone does not say which page broke; the call's description does.
            reason = f"{error.reason}, on page {page_number} of {day.isoformat()}"
            raise FatalResponseError(self.account_id, error.endpoint, error.status, reason) from None
        try:
            return parse_campaign_page(outcome.payload, page_number=page_number)
        except PageShapeError as error:
            raise InvalidResponseError(self.account_id, LIST_ENDPOINT, outcome.status, str(error)) from None

    def _accept_page(self, sequence: PageSequence, page: CampaignPage, day: date) -> bool:
        try:
            return sequence.accept(page)
        except PageSequenceError as error:
            raise PaginationError(self.account_id, f"the campaign list of {day.isoformat()}: {error}.") from None

    def _stop_page_workers(self, pool: ThreadPoolExecutor, pending: dict[int, Future[CampaignPage]]) -> None:
        """Drop the pages fetched ahead of a listing that ended or failed, and wait for their workers."""
        for future in pending.values():
            future.cancel()
        running = [future for future in pending.values() if not future.cancelled()]
        if running:
            # Wakes the workers waiting for a slot or a backoff; an in-flight request ends by its timeout.
            self._cancelled.set()
        pool.shutdown(wait=True)
        if running:
            self._cancelled.clear()

    def fetch_campaigns(
        self, day: date, *, on_page: Callable[[CampaignPage], None] | None = None
    ) -> list[dict[str, Any]]:
        """Return every campaign of the account for ``day``, in the platform's order.

        Args:
            day: The day whose metrics are asked for (sent as ``date``).
            on_page: Called with each page as it arrives (to record progress).
        """
        campaigns: list[dict[str, Any]] = []
        pages = 0
        for page in self.iter_pages(day):
            campaigns.extend(page.campaigns)
            pages += 1
            if on_page is not None:
                on_page(page)
        self._log(logging.INFO, f"listed {len(campaigns)} campaigns of {day.isoformat()} in {pages} page(s)")
        return campaigns

    def sync_campaigns(
        self, campaign_ids: Sequence[str], *, on_synced: Callable[[str], None] | None = None
    ) -> SyncReport:
        """Sync each campaign (``POST /api/campaigns/{id}/sync``) on a bounded pool of workers.

        All workers draw from the account's rate limiter, so the window stays
        saturated while each sync takes its ~2 s. A campaign that keeps failing
        is retried within its budget, then reported in :attr:`SyncReport.failed`.

        Args:
            campaign_ids: Distinct campaign ids.
            on_synced: Called from a worker thread as each campaign succeeds.

        Raises:
            ValueError: ``campaign_ids`` repeats an id.
            AuthenticationError, DeadlineExceeded: the whole sync cannot go on;
                the campaigns already reported to ``on_synced`` stay synced.
            RetryBudgetExhausted, FatalResponseError: of ``POST /auth/token``:
                no token, so the whole sync cannot go on either.
        """
        repeated = sorted(cid for cid, count in Counter(campaign_ids).items() if count > 1)
        if repeated:
            raise ValueError(f"campaign_ids repeats {', '.join(map(repr, repeated[:5]))}.")
        report = SyncReport(synced=[], failed={}, attempts={})
        if not campaign_ids:
            return report
        self._cancelled.clear()
        self._sync_running = True
        workers = min(self.config.sync_workers, len(campaign_ids))
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix=f"sync-{self.account_id}") as pool:
                futures = {pool.submit(self._sync_one, cid, on_synced): cid for cid in campaign_ids}
                try:
                    for future in as_completed(futures):
                        campaign_id = futures[future]
                        try:
                            attempts, failure = future.result()
                        except _SyncCancelled:
                            # A token fetch failed for good; the campaign that fetched raises its error.
                            continue
                        report.attempts[campaign_id] = attempts
                        if failure is None:
                            report.synced.append(campaign_id)
                        else:
                            report.failed[campaign_id] = failure
                except BaseException:
                    self._cancelled.set()
                    for future in futures:
                        future.cancel()
                    raise
        finally:
            # Every worker has ended (the pool waited for them): the next call starts uncancelled.
            self._sync_running = False
            self._cancelled.clear()
        self._log(
            logging.INFO if not report.failed else logging.WARNING,
            f"synced {len(report.synced)} of {len(campaign_ids)} campaigns"
            + (f"; failed: {', '.join(sorted(report.failed))}" if report.failed else ""),
        )
        return report

    def _sync_one(self, campaign_id: str, on_synced: Callable[[str], None] | None) -> tuple[int, str | None]:
        """Sync one campaign; return its attempts and, if it failed, why."""
        call = _Call(
            endpoint=SYNC_ENDPOINT,
            description=f"POST /api/campaigns/{campaign_id}/sync",
            method="POST",
            path=f"/api/campaigns/{quote(campaign_id, safe='')}/sync",
            body={"campaign_id": campaign_id},
        )
        try:
            outcome = self._execute(call)
            _check_sync_answer(outcome, campaign_id, self.account_id)
        except (FatalResponseError, RetryBudgetExhausted) as error:
            if error.endpoint == TOKEN_ENDPOINT:
                # No campaign syncs without a token: the failure is the whole sync's, not this campaign's.
                raise
            self._log(
                logging.WARNING, f"campaign {campaign_id} failed after {call.attempts} attempt(s): {error.detail}"
            )
            return call.attempts, error.detail
        if on_synced is not None:
            on_synced(campaign_id)
        return call.attempts, None

    def _fetch_token(self) -> IssuedToken:
        """Ask for a new token; :class:`TokenManager` calls this holding its lock.

        A fetch that fails for good during a sync cancels the sync before the
        lock is released, so that no worker starting a campaign meanwhile asks
        for a token again before the sync's own thread sees the failure.
        """
        try:
            return self._request_token()
        except Exception:
            if self._sync_running:
                self._cancelled.set()
            raise

    def _request_token(self) -> IssuedToken:
        call = _Call(
            endpoint=TOKEN_ENDPOINT, description=TOKEN_ENDPOINT, method="POST", path="/auth/token", authenticated=False
        )
        outcome = self._execute(call)
        value = outcome.payload.get("access_token")
        lifetime = outcome.payload.get("expires_in")
        if not isinstance(value, str) or not value:
            raise InvalidResponseError(
                self.account_id, TOKEN_ENDPOINT, outcome.status, "the answer has no access_token"
            )
        if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or lifetime <= 0:
            raise InvalidResponseError(
                self.account_id, TOKEN_ENDPOINT, outcome.status, "expires_in is not a positive number of seconds"
            )
        self._log(logging.INFO, f"obtained a token valid for {lifetime:g} s")
        return IssuedToken(value=value, lifetime_seconds=float(lifetime))

    def _execute(self, call: _Call) -> Outcome:
        """Run ``call`` until it succeeds, fails for good, or its budgets or the deadline run out."""
        self.start_partition_clock()
        policy = CallRetryPolicy(
            self.config,
            clock=self._clock,
            rng=self._rng,
            started_at=self._clock(),
            partition_deadline_at=self._partition_deadline_at,
            rate_limit_waits_in_limiter=call.authenticated,
        )
        try:
            outcome = run_with_retries(
                lambda: self._attempt(call),
                policy,
                sleep=self._sleep,
                on_retry=lambda outcome, decision, number: self._on_retry(call, outcome, decision, number),
                on_give_up=lambda outcome, decision, number: self._give_up(call, outcome, decision, number),
            )
        except BaseException:
            self.stats.record_call(call.attempts, succeeded=False)
            raise
        self.stats.record_call(call.attempts, succeeded=True)
        return outcome

    def _attempt(self, call: _Call) -> Outcome:
        if self._cancelled.is_set():
            raise _SyncCancelled()
        call.attempts += 1
        token, admission = self._token_and_slot(call) if call.authenticated else (None, None)
        outcome = self._send(call, _BearerAuth(token) if token is not None else self._basic_auth, admission)
        if outcome.kind is OutcomeKind.OK:
            return outcome
        if outcome.kind in (OutcomeKind.TOKEN_EXPIRED, OutcomeKind.UNAUTHORIZED):
            if token is None:
                raise AuthenticationError(
                    self.account_id, f"the platform refused the account's credentials ({outcome.reason})."
                )
            self._tokens.invalidate(token)
        if outcome.kind is OutcomeKind.RATE_LIMITED and call.authenticated:
            wait = (
                outcome.wait_seconds
                if outcome.wait_seconds is not None
                else self.config.rate_limit_default_wait_seconds
            )
            self._limiter.defer(self.account_id, wait)
        if outcome.kind is OutcomeKind.FATAL:
            raise FatalResponseError(self.account_id, call.endpoint, outcome.status, outcome.reason)
        raise RetryableOutcome(outcome, request_seconds=call.last_request_seconds)

    def _token_and_slot(self, call: _Call) -> tuple[Token, Admission]:
        """Return the token to send with and a rate-limit slot taken just now.

        The token comes first: a token fetch between taking the slot and
        sending would delay the request's arrival beyond the limiter's safety
        margin. If the token neared expiry while waiting for the slot, that
        slot is given up for a fresh token and a new slot.
        """
        self._tokens.current()
        admission = self._take_slot(call)
        token = self._tokens.usable()
        if token is None:
            token = self._tokens.current()
            admission = self._take_slot(call)
        return token, admission

    def _take_slot(self, call: _Call) -> Admission:
        try:
            admission = self._limiter.admit(
                self.account_id, max_wait_seconds=self._partition_seconds_left(), sleep=self._sleep
            )
        except SlotWaitTooLong as error:
            raise self._deadline_error(
                f"waiting for a rate-limit slot for {call.description} ({error})", ahead=True
            ) from None
        self.stats.record_limiter_wait(admission.waited_seconds)
        if self._cancelled.is_set():
            raise _SyncCancelled()
        return admission

    def _confirm_slot(self, call: _Call, admission: Admission) -> Admission:
        """Stamp the slot with the time of sending if it was taken a while ago; take a new one if it lapsed.

        Returns the slot the request is sent in.
        """
        while not admission.before_send():
            self.stats.record_limiter_lapse()
            admission = self._take_slot(call)
        if admission.restamped:
            self.stats.record_limiter_restamp()
        return admission

    def _date_slot(self, admission: Admission, counted_by: float) -> None:
        """Date the request's slot at the latest moment the platform can have counted it (see arrival.py)."""
        if admission.date_at(counted_by):
            self.stats.record_limiter_redate()

    def _send(self, call: _Call, auth: AuthBase, admission: Admission | None = None) -> Outcome:
        seconds_left = self._partition_seconds_left()
        if seconds_left <= 0:
            raise self._deadline_error(f"about to send {call.description}")
        data = json.dumps(call.body).encode() if call.body is not None else None
        read_timeout = self._read_timeout(call, min(self.config.read_timeout_seconds, seconds_left))
        if admission is not None:
            admission = self._confirm_slot(call, admission)
            sent_at = admission.clock()
        started = self._clock()
        try:
            response = self._session.request(
                call.method,
                self.base_url + call.path,
                params=call.params,
                data=data,
                headers={"Content-Type": "application/json"} if data is not None else None,
                auth=auth,
                timeout=(self.config.connect_timeout_seconds, read_timeout.seconds),
                allow_redirects=False,
            )
        except requests.RequestException as error:
            call.last_request_seconds = self._clock() - started
            if admission is not None:
                self._date_slot(admission, self._arrivals.unanswered(sent_at, admission.clock()))
            early = read_timeout.early and isinstance(error, requests.ReadTimeout)
            call.early_timeouts_in_a_row = call.early_timeouts_in_a_row + 1 if early else 0
            if self._hangs is not None:
                self._hangs.ended(call.endpoint, early_timeout=early)
            if early:
                self.stats.record_early_hang()
            self.stats.record_request(
                call.endpoint, _failure_label(error), bytes_sent=len(data or b""), bytes_received=0
            )
            if isinstance(error, requests.ReadTimeout) and self._partition_seconds_left() <= 0:
                raise self._deadline_error(f"waiting for the answer to {call.description}") from None
            return classify_exception(error)
        body = response.content
        call.last_request_seconds = self._clock() - started
        call.early_timeouts_in_a_row = 0
        if self._hangs is not None:
            if 200 <= response.status_code < 300:
                self._hangs.answered(call.endpoint, call.last_request_seconds)
            else:
                self._hangs.ended(call.endpoint, early_timeout=False)
        if admission is not None:
            # Keyed by status too: a quick 503 says nothing about the time a successful sync takes after counting.
            answer_kind = f"{call.endpoint} {response.status_code}"
            counted_by = self._arrivals.answered(
                answer_kind, sent_at, admission.clock(), date_slot=partial(self._date_slot, admission)
            )
            self._date_slot(admission, counted_by)
        self.stats.record_request(
            call.endpoint, str(response.status_code), bytes_sent=len(data or b""), bytes_received=len(body)
        )
        return classify_response(response.status_code, response.headers, body, now=datetime.now(UTC))

    def _read_timeout(self, call: _Call, configured_seconds: float) -> ReadTimeout:
        """Return the read timeout of the next attempt: learned from the endpoint's answers when hangs are detected."""
        if self._hangs is None or call.early_timeouts_in_a_row >= EARLY_TIMEOUTS_IN_A_ROW:
            return ReadTimeout(configured_seconds, early=False)
        return self._hangs.read_timeout(call.endpoint, configured_seconds)

    def _on_retry(self, call: _Call, outcome: Outcome, decision: Decision, attempt: int) -> None:
        self.stats.record_retry(decision.retry_class.value, decision.sleep_seconds)
        if decision.retry_class is RetryClass.RATE_LIMITED:
            plan = f"every request of the account waits {decision.wait_seconds:.1f} s"
        elif decision.retry_class is RetryClass.TOKEN:
            plan = "retrying at once with a new token"
        else:
            plan = f"retrying in {decision.sleep_seconds:.2f} s"
        self._log(logging.INFO, f"{call.description} attempt {attempt}: {outcome.reason}; {plan}")

    def _give_up(self, call: _Call, outcome: Outcome, decision: Decision, attempt: int) -> NoReturn:
        assert decision.give_up is not None
        if decision.partition_deadline:
            raise self._deadline_error(f"retrying {call.description} after {outcome.reason}", ahead=True)
        if decision.retry_class is RetryClass.TOKEN:
            raise AuthenticationError(
                self.account_id, f"{call.description}: the platform refused a freshly issued token ({outcome.reason})."
            )
        raise RetryBudgetExhausted(self.account_id, call.description, decision.give_up, attempt)

    def _sleep(self, seconds: float) -> None:
        """Sleep, unless the sync is cancelled, which ends the sleep at once with :class:`_SyncCancelled`."""
        if self._injected_sleep is not None:
            self._injected_sleep(seconds)
        elif self._cancelled.wait(seconds):
            raise _SyncCancelled()

    def _partition_seconds_left(self) -> float:
        assert self._partition_deadline_at is not None
        return self._partition_deadline_at - self._clock()

    def _deadline_error(self, waiting_for: str, *, ahead: bool = False) -> DeadlineExceeded:
        """The partition's time is up (``ahead``: the wait in question would outlast it, so it was not begun)."""
        deadline = f"the partition deadline of {self.config.partition_deadline_seconds:g} s"
        if ahead:
            return DeadlineExceeded(self.account_id, f"{waiting_for} would pass {deadline}.")
        return DeadlineExceeded(self.account_id, f"{deadline} passed while {waiting_for}.")

    def _log(self, level: int, message: str) -> None:
        self._logger.log(level, f"[{self._log_prefix}] {message}")


def _pooled_session(account_id: str, base_url: str, *, pool_size: int) -> requests.Session:
    session = requests.Session()
    # Retries are ours (classified, budgeted); urllib3 must not retry behind our back.
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"X-Client-ID": account_id, "User-Agent": USER_AGENT, "Accept": "application/json"})
    # The environment's proxy (NO_PROXY included) and CA bundle for the one host this session talks to,
    # read once: requests otherwise reads them on every request, about 0.2 ms of a 1,000-page listing's each.
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False
    return session


def _check_sync_answer(outcome: Outcome, campaign_id: str, account_id: str) -> None:
    payload = outcome.payload
    if payload.get("success") is not True:
        raise InvalidResponseError(
            account_id, SYNC_ENDPOINT, outcome.status, f"the sync of {campaign_id!r} did not report success: true"
        )
    if payload.get("campaign_id") != campaign_id:
        raise InvalidResponseError(
            account_id,
            SYNC_ENDPOINT,
            outcome.status,
            f"the sync of {campaign_id!r} answered for campaign {payload.get('campaign_id')!r}",
        )


def _failure_label(error: requests.RequestException) -> str:
    if isinstance(error, requests.ConnectTimeout):
        return "connect_timeout"
    if isinstance(error, requests.ReadTimeout):
        return "read_timeout"
    if isinstance(error, requests.ConnectionError):
        return "connection_error"
    return "request_error"


def _redact_url(url: str) -> str:
    return re.sub(r"(://)[^/@\s]*@", r"\1***@", url)
