"""The platform's behaviour, free of any web framework: auth, rate limit, faults, data.

:mod:`mock_api.app` maps HTTP onto :class:`Simulator`; every refusal is an
:class:`ApiError` carrying the status and JSON body the contract prescribes.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from mock_api.accounts import SimulatedAccount, build_accounts
from mock_api.config import Endpoint, FaultSettings, SimulatorConfig
from mock_api.dataset import campaign_json, campaign_number, format_timestamp, random_campaign_record
from mock_api.faults import AttemptCounter, Outcome, decide, fault_draw
from mock_api.ratelimit import SlidingWindowLimiter
from mock_api.responses import RawAnswer, ResponseScript, ScriptError, render
from mock_api.stats import CLIENT_CLOSED_STATUS, RequestRecord, RequestStats
from mock_api.tokens import TokenStore

SERVICE_UNAVAILABLE = "Service temporarily unavailable"
UPSTREAM_RETRY_AFTER_SECONDS = 60
UPSTREAM_ERROR_EVERY = 5


class ApiError(Exception):
    """A refusal: HTTP status, the body's ``error`` and ``message``, extra body fields and headers."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": error, "message": message, **extra}
        self.headers = headers or {}


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "Unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def parse_basic_authorization(header: str | None) -> tuple[str, str]:
    """Return (email, password) from an ``Authorization: Basic`` header.

    Raises:
        ApiError: 401 ``Unauthorized`` when the header is missing, not Basic,
            not base64 of UTF-8, or has no colon. The message never quotes it.
    """
    scheme, _, encoded = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        raise ApiError(401, "Unauthorized", "Send Authorization: Basic base64(email:password).")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text that b64decode refuses
        raise ApiError(401, "Unauthorized", "The Basic credentials are not valid base64 of UTF-8 text.") from None
    email, separator, password = decoded.partition(":")
    if not separator or not email:
        raise ApiError(401, "Unauthorized", "The Basic credentials must have the form email:password.")
    return email, password


def bearer_token(header: str | None) -> str:
    """Return the token of an ``Authorization: Bearer`` header, or raise a 401 ``Unauthorized``."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Send Authorization: Bearer <access_token> from POST /auth/token.")
    return token.strip()


@lru_cache(maxsize=512)
def day_catalogue(seed: int, account_id: str, day: date, campaign_count: int) -> tuple[str, ...]:
    """Return every campaign of an account-day as JSON, built once for all the pages of that day."""
    return tuple(campaign_json(seed, account_id, number, day) for number in range(1, campaign_count + 1))


@lru_cache(maxsize=1024)
def render_page(seed: int, account_id: str, day: date, page: int, limit: int, campaign_count: int) -> bytes:
    """Return the JSON body of one page of the deterministic catalogue (cached: it never changes)."""
    campaigns = day_catalogue(seed, account_id, day, campaign_count)[(page - 1) * limit : page * limit]
    has_more = "true" if page * limit < campaign_count else "false"
    pagination = f'{{"page":{page},"limit":{limit},"total":{campaign_count},"has_more":{has_more}}}'
    return f'{{"data":[{",".join(campaigns)}],"pagination":{pagination}}}'.encode()


class Simulator:
    """State and rules of the simulated platform.

    Args:
        config: Start-up configuration.
        clock: Monotonic clock for windows and token lifetimes.
        wall_clock: Unix time for timestamps in bodies and the request log.
        sleep: Coroutine used for latencies.
    """

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.faults: FaultSettings = config.faults
        self.accounts: dict[str, SimulatedAccount] = {
            account.id: account for account in build_accounts(config.account_count)
        }
        self._accounts_by_email = {account.email: account for account in self.accounts.values()}
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._started = clock()
        self.limiter = SlidingWindowLimiter()
        self.tokens = TokenStore(clock, wall_clock, shared_issue_time=config.upstream_quirks)
        self.attempts = AttemptCounter()
        self.stats = RequestStats(config.request_log_size)
        self.responses = ResponseScript()
        self._list_calls: Counter[str] = Counter()
        self._random = random.Random(config.seed)

    def reset(self) -> None:
        """Forget windows, tokens, counters, attempts and the request log."""
        self.limiter.reset()
        self.tokens.reset()
        self.attempts.reset()
        self.stats.reset()
        self._list_calls.clear()
        self._random = random.Random(self.config.seed)

    def start_record(self, method: str, path: str, endpoint: str) -> RequestRecord:
        """Open the log record of a request arriving now."""
        return RequestRecord(
            method=method,
            path=path,
            endpoint=endpoint,
            arrived_at=self._wall_clock(),
            arrived_monotonic=self._clock(),
        )

    def finish_record(self, record: RequestRecord) -> None:
        """Close and count the record of a request that just ended."""
        record.finished_at = self._wall_clock()
        self.stats.finish(record)

    def health(self) -> dict[str, Any]:
        """Return the body of ``GET /health``."""
        return {
            "status": "ok",
            "timestamp": self._timestamp(self._wall_clock()),
            "uptime": round(self._clock() - self._started, 3),
        }

    async def issue_token(
        self, authorization: str | None, record: RequestRecord, client_gone: Callable[[], Awaitable[None]]
    ) -> dict[str, Any]:
        """Check Basic credentials, apply the token endpoint's faults, and issue a token."""
        email, password = parse_basic_authorization(authorization)
        account = self._accounts_by_email.get(email)
        if account is None or not hmac.compare_digest(account.password.encode(), password.encode()):
            raise ApiError(401, "Invalid credentials", "The email or password is wrong.")
        record.account = account.id
        await self._apply_faults("token", account.id, "token", record, client_gone)
        lifetime = self.faults.token_lifetime_seconds
        token = self.tokens.issue(account.id, lifetime)
        self.stats.tokens_issued += 1
        return {
            "access_token": token.value,
            "token_type": "Bearer",
            "expires_in": int(lifetime) if float(lifetime).is_integer() else lifetime,
            "issued_at": int(token.issued_wall),
        }

    async def admit_api_request(
        self,
        endpoint: Endpoint,
        *,
        authorization: str | None,
        client_id: str | None,
        request_key: str,
        record: RequestRecord,
        client_gone: Callable[[], Awaitable[None]],
    ) -> str:
        """Authenticate, rate-limit and apply faults to an ``/api/*`` request; return its account id.

        The window counts the request at its arrival time, before any latency
        or hang, and keeps counting it whatever its outcome.
        """
        account_id = self._authenticate(authorization, client_id)
        record.account = account_id
        # Upstream counts the window per X-Client-ID value, "default" without one; ours per account.
        window = (client_id or "default") if self.config.upstream_quirks else account_id
        retry_after = self.limiter.admit(
            window, record.arrived_monotonic, self.faults.rate_limit, self.faults.rate_window_seconds
        )
        if retry_after is not None:
            self.stats.rate_limited += 1
            raise self._rate_limited(account_id, retry_after)
        await self._apply_faults(endpoint, account_id, request_key, record, client_gone)
        return account_id

    def campaigns_page(self, account_id: str, page: int, limit: int, day: date | None) -> bytes:
        """Return the JSON body of ``GET /api/campaigns`` for an admitted request."""
        if self.config.upstream_quirks:
            return self._upstream_page(account_id, page, limit)
        resolved = day or datetime.fromtimestamp(self._wall_clock(), UTC).date()
        return render_page(self.config.seed, account_id, resolved, page, limit, self.config.campaign_count)

    def scripted_answer(self, account_id: str, page: int, real_page: bytes) -> RawAnswer | None:
        """Return the bad answer a scripted rule (``PUT /__admin/responses``) makes of the page, if one matches.

        Raises:
            ApiError: 500 when the matching rule cannot apply to this page.
        """
        rule = self.responses.take(account_id, page)
        if rule is None:
            return None
        try:
            return render(rule, real_page)
        except ScriptError as exc:
            message = f"The scripted {rule.kind} answer does not fit page {page}: {exc}."
            raise ApiError(500, "Script error", message) from None

    async def sync_campaign(self, account_id: str, campaign_id: str, body_campaign_id: str) -> dict[str, Any]:
        """Sync one campaign after the configured latency; 404 for unknown ids, 400 on a body mismatch."""
        number = campaign_number(campaign_id)
        if number is None or number > self.config.campaign_count:
            raise ApiError(404, "Not found", f"Campaign {campaign_id!r} does not exist in account {account_id!r}.")
        if body_campaign_id != campaign_id:
            raise ApiError(
                400,
                "Bad request",
                f"Body campaign_id {body_campaign_id!r} does not match the path's {campaign_id!r}.",
            )
        await self._pause(self.faults.sync_latency_seconds)
        return {
            "success": True,
            "campaign_id": campaign_id,
            "synced_at": self._timestamp(self._wall_clock()),
            "message": f"Campaign {campaign_id} synced successfully",
        }

    def _authenticate(self, authorization: str | None, client_id: str | None) -> str:
        check = self.tokens.check(bearer_token(authorization))
        if check.account_id is None:
            raise _unauthorized("The access token is unknown; request a new one from POST /auth/token.")
        if check.expired_at_wall is not None:
            raise ApiError(
                401,
                "Token expired",
                "The access token has expired; request a new one from POST /auth/token.",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                expired_at=self._timestamp(check.expired_at_wall),
            )
        if client_id is not None and client_id != check.account_id:
            raise _unauthorized(
                f"X-Client-ID {client_id!r} names another account than the token's ({check.account_id!r})."
            )
        return check.account_id

    def _rate_limited(self, account_id: str, retry_after: int) -> ApiError:
        if self.config.upstream_quirks:
            return ApiError(
                429,
                "Rate limit exceeded",
                "Too many requests, please try again later.",
                retry_after=UPSTREAM_RETRY_AFTER_SECONDS,
            )
        limit, window = self.faults.rate_limit, self.faults.rate_window_seconds
        return ApiError(
            429,
            "Rate limit exceeded",
            f"Account {account_id!r} may make {limit} requests per {window:g} s; retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )

    async def _apply_faults(
        self,
        endpoint: Endpoint,
        account_id: str,
        request_key: str,
        record: RequestRecord,
        client_gone: Callable[[], Awaitable[None]],
    ) -> None:
        outcome = self._outcome(endpoint, account_id, request_key)
        if outcome is Outcome.HANG:
            await self._hang(record, client_gone)
        await self._pause(self.faults.endpoint(endpoint).extra_latency_seconds)
        if outcome is Outcome.ERROR:
            raise ApiError(503, SERVICE_UNAVAILABLE, "The platform is temporarily unavailable; retry later.")

    def _outcome(self, endpoint: Endpoint, account_id: str, request_key: str) -> Outcome:
        attempt = self.attempts.next(endpoint, account_id, request_key)
        if endpoint == "list" and self.config.upstream_quirks:
            self._list_calls[account_id] += 1
            failing = self._list_calls[account_id] % UPSTREAM_ERROR_EVERY == 0
            return Outcome.ERROR if failing else Outcome.PROCEED
        faults = self.faults.endpoint(endpoint)
        if faults.error_rate == faults.hang_rate == 0.0:
            return Outcome.PROCEED
        return decide(fault_draw(self.config.seed, endpoint, account_id, request_key, attempt), faults)

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            await self._sleep(seconds)

    async def _hang(self, record: RequestRecord, client_gone: Callable[[], Awaitable[None]]) -> None:
        self.stats.hangs += 1
        record.hung = True
        hang_seconds = self.faults.hang_seconds
        try:
            await asyncio.wait_for(client_gone(), timeout=hang_seconds)
        except TimeoutError:
            raise ApiError(503, SERVICE_UNAVAILABLE, f"The request hung for {hang_seconds:g} s.") from None
        raise ApiError(CLIENT_CLOSED_STATUS, "Client closed request", "The client gave up waiting.")

    def _upstream_page(self, account_id: str, page: int, limit: int) -> bytes:
        first = (page - 1) * limit + 1
        data = [
            random_campaign_record(self.config.seed, account_id, number, self._random)
            for number in range(first, first + limit)
        ]
        pagination = {"page": page, "limit": limit, "total": self.config.campaign_count, "has_more": True}
        return json.dumps({"data": data, "pagination": pagination}, ensure_ascii=False, separators=(",", ":")).encode()

    @staticmethod
    def _timestamp(unix_seconds: float) -> str:
        return format_timestamp(datetime.fromtimestamp(unix_seconds, UTC))
