"""The bearer token of one account: cached, refreshed before it expires, one refresh at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from campaign_pipeline.ad_platform.errors import AuthenticationError


@dataclass(frozen=True)
class Token:
    """A bearer token. ``repr`` never shows its value.

    Attributes:
        value: The access token.
        expires_at: When it expires, on the client's monotonic clock.
        generation: 1 for the first token of the account, 2 for the next...
    """

    value: str = field(repr=False)
    expires_at: float
    generation: int


@dataclass(frozen=True)
class IssuedToken:
    """What the token endpoint answered: the token and its lifetime in seconds."""

    value: str = field(repr=False)
    lifetime_seconds: float


class TokenManager:
    """Hands out the account's current token, fetching a new one when needed.

    A token is refreshed ``refresh_margin_seconds`` before it expires (at most
    half its lifetime before, so that a short-lived token still gets used),
    and stays :meth:`usable` until half that margin is left. A token the
    platform rejected is invalidated, and the next caller fetches a new one.
    However many threads need a new token at once, one fetch runs and the
    others wait for its result, a failure included: the threads that waited
    on a fetch that failed raise its error instead of each fetching in turn
    (a thread arriving later fetches again). Wrong credentials are remembered
    for good, so that every later thread fails at once instead of asking again.

    Args:
        fetch: Asks the platform for a new token (``POST /auth/token``).
        clock: Monotonic clock.
        refresh_margin_seconds: How long before expiry a token is replaced.
        on_fetch: Called after each successful fetch (for the counters).
    """

    def __init__(
        self,
        fetch: Callable[[], IssuedToken],
        *,
        clock: Callable[[], float],
        refresh_margin_seconds: float,
        on_fetch: Callable[[], None] | None = None,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._refresh_margin_seconds = refresh_margin_seconds
        self._on_fetch = on_fetch
        self._lock = threading.Lock()
        self._cached: _CachedToken | None = None
        self._generation = 0
        self._refused: AuthenticationError | None = None
        # Fetches finished so far, and the error of the last one if it failed.
        self._fetches = 0
        self._failure: Exception | None = None

    def current(self) -> Token:
        """Return a token that is not due for refresh, fetching one if needed (may block)."""
        cached = self._cached
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.token
        fetches_before = self._fetches
        with self._lock:
            cached = self._cached
            if cached is not None and self._clock() < cached.refresh_at:
                return cached.token
            if self._fetches != fetches_before and self._failure is not None:
                # A fetch ran and failed while this thread waited for the lock: that was its result too.
                raise self._failure
            return self._refresh()

    def usable(self) -> Token | None:
        """Return the cached token if it is far enough from expiry to send, without ever blocking."""
        cached = self._cached
        if cached is not None and self._clock() < cached.usable_until:
            return cached.token
        return None

    def invalidate(self, rejected: Token) -> None:
        """Forget ``rejected`` (the platform answered 401 to it) unless it was already replaced."""
        with self._lock:
            if self._cached is not None and self._cached.token.generation == rejected.generation:
                self._cached = None

    def _refresh(self) -> Token:
        if self._refused is not None:
            raise self._refused
        requested_at = self._clock()
        try:
            issued = self._fetch()
        except AuthenticationError as error:
            self._refused = error
            raise
        except Exception as error:
            self._failure = error
            raise
        else:
            self._failure = None
        finally:
            self._fetches += 1
        self._generation += 1
        token = Token(
            value=issued.value, expires_at=requested_at + issued.lifetime_seconds, generation=self._generation
        )
        margin = min(self._refresh_margin_seconds, issued.lifetime_seconds / 2)
        self._cached = _CachedToken(
            token, refresh_at=token.expires_at - margin, usable_until=token.expires_at - margin / 2
        )
        if self._on_fetch is not None:
            self._on_fetch()
        return token


@dataclass(frozen=True)
class _CachedToken:
    token: Token
    refresh_at: float
    usable_until: float
