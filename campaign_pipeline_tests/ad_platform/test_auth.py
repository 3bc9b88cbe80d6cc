from __future__ import annotations

import threading
import time

import pytest

from campaign_pipeline.ad_platform.auth import IssuedToken, Token, TokenManager
from campaign_pipeline.ad_platform.errors import AuthenticationError, RetryBudgetExhausted
from campaign_pipeline_tests.ad_platform.fakes import FakeClock


class CountingFetch:
    """A token endpoint that issues ``token-1``, ``token-2``... and counts the calls."""

    def __init__(self, lifetime: float = 3600.0, delay: float = 0.0) -> None:
        self.lifetime = lifetime
        self.delay = delay
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> IssuedToken:
        with self._lock:
            self.calls += 1
            number = self.calls
        if self.delay:
            time.sleep(self.delay)
        return IssuedToken(value=f"token-{number}", lifetime_seconds=self.lifetime)


def manager(fetch: CountingFetch, clock: FakeClock, margin: float = 60.0) -> TokenManager:
    return TokenManager(fetch, clock=clock, refresh_margin_seconds=margin)


def test_token_is_fetched_once_and_cached() -> None:
    fetch, clock = CountingFetch(), FakeClock()
    tokens = manager(fetch, clock)
    first = tokens.current()
    clock.advance(100)
    assert tokens.current() is first
    assert (first.value, first.generation, fetch.calls) == ("token-1", 1, 1)


def test_token_is_refreshed_a_margin_before_it_expires() -> None:
    fetch, clock = CountingFetch(lifetime=3600), FakeClock()
    tokens = manager(fetch, clock, margin=60)
    assert tokens.current().value == "token-1"
    clock.advance(3539.9)
    assert tokens.current().value == "token-1"
    clock.advance(0.1)
    refreshed = tokens.current()
    assert (refreshed.value, refreshed.generation, fetch.calls) == ("token-2", 2, 2)
    assert refreshed.expires_at == clock() + 3600


def test_short_lived_token_is_refreshed_at_half_its_life() -> None:
    fetch, clock = CountingFetch(lifetime=10), FakeClock()
    tokens = manager(fetch, clock, margin=60)
    tokens.current()
    clock.advance(4.9)
    assert tokens.current().value == "token-1"
    clock.advance(0.1)
    assert tokens.current().value == "token-2"


def test_token_due_for_refresh_stays_usable_until_half_the_margin_is_left() -> None:
    fetch, clock = CountingFetch(lifetime=3600), FakeClock()
    tokens = manager(fetch, clock, margin=60)
    token = tokens.current()
    clock.advance(3560)
    assert tokens.usable() is token
    clock.advance(10)
    assert tokens.usable() is None
    assert fetch.calls == 1


def test_usable_never_fetches() -> None:
    fetch, clock = CountingFetch(), FakeClock()
    assert manager(fetch, clock).usable() is None
    assert fetch.calls == 0


def test_invalidated_token_is_replaced_on_next_use() -> None:
    fetch, clock = CountingFetch(), FakeClock()
    tokens = manager(fetch, clock)
    stale = tokens.current()
    tokens.invalidate(stale)
    assert tokens.usable() is None
    assert tokens.current().value == "token-2"


def test_invalidating_an_already_replaced_token_keeps_the_new_one() -> None:
    fetch, clock = CountingFetch(), FakeClock()
    tokens = manager(fetch, clock)
    stale = tokens.current()
    tokens.invalidate(stale)
    fresh = tokens.current()
    tokens.invalidate(stale)
    assert tokens.current() is fresh
    assert fetch.calls == 2


def test_refresh_on_401_with_16_threads_does_one_fetch() -> None:
    fetch, clock = CountingFetch(delay=0.05), FakeClock()
    tokens = manager(fetch, clock)
    stale = tokens.current()
    start = threading.Barrier(16)
    seen: list[Token] = []
    lock = threading.Lock()

    def worker() -> None:
        start.wait()
        tokens.invalidate(stale)
        token = tokens.current()
        with lock:
            seen.append(token)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fetch.calls == 2
    assert {token.value for token in seen} == {"token-2"}


def test_refresh_before_expiry_with_16_threads_does_one_fetch() -> None:
    fetch, clock = CountingFetch(delay=0.05), FakeClock()
    tokens = manager(fetch, clock)
    tokens.current()
    clock.advance(3550)
    start = threading.Barrier(16)
    values: list[str] = []

    def worker() -> None:
        start.wait()
        values.append(tokens.current().value)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fetch.calls == 2
    assert values == ["token-2"] * 16


def test_refused_credentials_are_not_asked_again() -> None:
    calls = 0

    def refuse() -> IssuedToken:
        nonlocal calls
        calls += 1
        raise AuthenticationError("acme-retail", "the platform refused the account's credentials.")

    tokens = TokenManager(refuse, clock=FakeClock(), refresh_margin_seconds=60)
    for _ in range(3):
        with pytest.raises(AuthenticationError, match="Account 'acme-retail': the platform refused"):
            tokens.current()
    assert calls == 1


def test_a_failed_fetch_is_the_result_of_every_thread_that_waited_for_it_and_a_later_call_fetches_again() -> None:
    calls = 0
    fail = True
    waiting = threading.Semaphore(0)
    fetching = threading.Event()

    def flaky() -> IssuedToken:
        nonlocal calls
        calls += 1
        fetching.set()
        if fail:
            # The fetch lasts until the 15 other threads are calling current() behind it.
            for _ in range(15):
                waiting.acquire()
            time.sleep(0.1)
            raise RetryBudgetExhausted("acme-retail", "POST /auth/token", "HTTP 503", 9)
        return IssuedToken(value=f"token-{calls}", lifetime_seconds=3600)

    tokens = TokenManager(flaky, clock=FakeClock(), refresh_margin_seconds=60)
    errors: list[str] = []
    lock = threading.Lock()

    def worker(announce: bool) -> None:
        if announce:
            waiting.release()
        try:
            tokens.current()
        except RetryBudgetExhausted as error:
            with lock:
                errors.append(error.detail)

    first = threading.Thread(target=worker, args=(False,))
    first.start()
    fetching.wait()
    others = [threading.Thread(target=worker, args=(True,)) for _ in range(15)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join()

    assert calls == 1
    assert errors == ["POST /auth/token gave up after 9 attempts: HTTP 503"] * 16
    fail = False
    assert tokens.current().value == "token-2"


def test_fetch_counter_is_called_per_fetch() -> None:
    counted: list[int] = []
    fetch, clock = CountingFetch(), FakeClock()
    tokens = TokenManager(fetch, clock=clock, refresh_margin_seconds=60, on_fetch=lambda: counted.append(1))
    tokens.invalidate(tokens.current())
    tokens.current()
    assert len(counted) == 2


def test_token_repr_hides_the_value() -> None:
    token = Token(value="very-secret-token", expires_at=1.0, generation=1)
    assert "very-secret-token" not in repr(token)
    assert "very-secret-token" not in repr(IssuedToken(value="very-secret-token", lifetime_seconds=1.0))
