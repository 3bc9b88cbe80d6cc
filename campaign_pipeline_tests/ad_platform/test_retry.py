from __future__ import annotations

import random
from typing import NoReturn

import pytest

from campaign_pipeline.ad_platform.classify import Outcome, OutcomeKind
from campaign_pipeline.ad_platform.config import ClientConfig, RetryBudget
from campaign_pipeline.ad_platform.retry import (
    CallRetryPolicy,
    Decision,
    RetryableOutcome,
    RetryClass,
    run_with_retries,
)
from campaign_pipeline_tests.ad_platform.fakes import FakeClock

UNAVAILABLE = Outcome(OutcomeKind.RETRIABLE, "HTTP 503", 503)
HANG = Outcome(OutcomeKind.RETRIABLE, "no answer within the read timeout (the request hung)")
EXPIRED = Outcome(OutcomeKind.TOKEN_EXPIRED, "HTTP 401 Token expired", 401)


def rate_limited(wait: float | None) -> Outcome:
    return Outcome(OutcomeKind.RATE_LIMITED, "HTTP 429", 429, wait_seconds=wait)


class MaxRandom(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def policy(
    clock: FakeClock, *, partition_deadline_at: float | None = None, in_limiter: bool = True, **config
) -> CallRetryPolicy:
    settings = {"backoff_base_seconds": 1.0, "backoff_cap_seconds": 8.0, **config}
    return CallRetryPolicy(
        ClientConfig(**settings),
        clock=clock,
        rng=MaxRandom(),
        started_at=clock(),
        partition_deadline_at=partition_deadline_at,
        rate_limit_waits_in_limiter=in_limiter,
    )


def test_transient_backoff_doubles_and_is_capped_per_wait() -> None:
    clock = FakeClock()
    retry = policy(clock, transient_retry=RetryBudget(retries=6, seconds=1000))
    waits = [retry.decide(UNAVAILABLE).sleep_seconds for _ in range(6)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_backoff_counts_from_the_failed_requests_sending() -> None:
    retry = policy(FakeClock(), transient_retry=RetryBudget(retries=6, seconds=1000))

    # Ceilings 1, 2, 4, 8 s: a quick 503 waits nearly all of one, a hang of 3 s what is left, or nothing.
    waits = [
        retry.decide(outcome, request_seconds=seconds).sleep_seconds
        for outcome, seconds in ((UNAVAILABLE, 0.25), (HANG, 3.0), (HANG, 3.0), (HANG, 30.0))
    ]

    assert waits == [0.75, 0.0, 1.0, 0.0]


def test_a_wait_the_platform_asked_for_is_waited_in_full_however_long_the_request_took() -> None:
    decision = policy(FakeClock(), in_limiter=False).decide(rate_limited(30.0), request_seconds=20.0)
    assert (decision.wait_seconds, decision.sleep_seconds) == (30.0, 30.0)


def test_transient_budget_is_bounded_in_retries() -> None:
    clock = FakeClock()
    retry = policy(clock, transient_retry=RetryBudget(retries=2, seconds=1000))
    assert retry.decide(UNAVAILABLE).give_up is None
    assert retry.decide(HANG).give_up is None
    decision = retry.decide(UNAVAILABLE)
    assert decision.give_up == "HTTP 503; the transient budget of 2 retries is spent"
    assert not decision.partition_deadline


def test_transient_budget_is_bounded_in_seconds() -> None:
    clock = FakeClock()
    retry = policy(clock, transient_retry=RetryBudget(retries=10, seconds=5.0))
    assert [retry.decide(UNAVAILABLE).give_up for _ in range(2)] == [None, None]
    assert retry.decide(UNAVAILABLE).give_up == (
        "HTTP 503; waiting 4.0 s more would exceed the transient budget of 5 s"
    )


def test_a_storm_of_503s_does_not_eat_the_wait_a_429_asked_for() -> None:
    clock = FakeClock()
    retry = policy(
        clock,
        transient_retry=RetryBudget(retries=3, seconds=100),
        rate_limited_retry=RetryBudget(retries=2, seconds=120),
    )
    for _ in range(3):
        assert retry.decide(UNAVAILABLE).give_up is None
    decision = retry.decide(rate_limited(60.0))
    assert decision.give_up is None
    assert decision.retry_class is RetryClass.RATE_LIMITED
    assert decision.wait_seconds == 60.0
    assert retry.decide(UNAVAILABLE).give_up == "HTTP 503; the transient budget of 3 retries is spent"


def test_429_wait_is_served_by_the_limiter_not_slept_by_the_call() -> None:
    decision = policy(FakeClock()).decide(rate_limited(30.0))
    assert (decision.wait_seconds, decision.sleep_seconds) == (30.0, 0.0)


def test_429_of_a_call_outside_the_limiter_sleeps_itself() -> None:
    decision = policy(FakeClock(), in_limiter=False).decide(rate_limited(30.0))
    assert decision.sleep_seconds == 30.0


def test_429_without_any_wait_waits_one_window() -> None:
    assert policy(FakeClock(), rate_window_seconds=45.0).decide(rate_limited(None)).wait_seconds == 45.0


def test_429_without_any_wait_uses_the_configured_default() -> None:
    decision = policy(FakeClock(), default_retry_after_seconds=7.0).decide(rate_limited(None))
    assert decision.wait_seconds == 7.0


def test_429_asking_more_than_the_budget_gives_up() -> None:
    decision = policy(FakeClock(), rate_limited_retry=RetryBudget(retries=5, seconds=100)).decide(rate_limited(3600.0))
    assert decision.give_up == "HTTP 429; waiting 3600.0 s more would exceed the rate-limited budget of 100 s"


def test_503_retry_after_is_honoured_instead_of_backoff() -> None:
    outcome = Outcome(OutcomeKind.RETRIABLE, "HTTP 503", 503, wait_seconds=3.0)
    assert policy(FakeClock()).decide(outcome).sleep_seconds == 3.0


def test_token_expired_retries_at_once_within_its_own_budget() -> None:
    retry = policy(FakeClock(), token_retry=RetryBudget(retries=1, seconds=0))
    first = retry.decide(EXPIRED)
    assert (first.retry_class, first.sleep_seconds, first.give_up) == (RetryClass.TOKEN, 0.0, None)
    assert retry.decide(EXPIRED).give_up == "HTTP 401 Token expired; the token budget of 1 retries is spent"


def test_call_deadline_bounds_the_total_time() -> None:
    clock = FakeClock()
    retry = policy(clock, call_deadline_seconds=10.0, read_timeout_seconds=5.0)
    assert retry.decide(UNAVAILABLE).give_up is None
    clock.advance(8.5)
    assert retry.decide(UNAVAILABLE).give_up == "HTTP 503; waiting 2.0 s more would pass the call deadline of 10 s"


def test_partition_deadline_is_reported_as_such() -> None:
    clock = FakeClock()
    decision = policy(clock, partition_deadline_at=clock() + 0.5).decide(UNAVAILABLE)
    assert decision.partition_deadline
    assert decision.give_up == "HTTP 503; waiting 1.0 s more would pass the partition deadline"


def raise_on_give_up(outcome: Outcome, decision: Decision, attempt: int) -> NoReturn:
    raise RuntimeError(f"gave up after {attempt}: {decision.give_up}")


def test_loop_retries_until_success_and_sleeps_the_backoff() -> None:
    clock = FakeClock()
    outcomes = iter([(UNAVAILABLE, 0.0), (HANG, 1.5), (rate_limited(20.0), 0.0), (EXPIRED, 0.0)])
    retried: list[tuple[str, int]] = []

    def attempt() -> str:
        outcome, request_seconds = next(outcomes, (None, 0.0))
        if outcome is None:
            return "payload"
        raise RetryableOutcome(outcome, request_seconds=request_seconds)

    result = run_with_retries(
        attempt,
        policy(clock),
        sleep=clock.sleep,
        on_retry=lambda outcome, decision, number: retried.append((decision.retry_class.value, number)),
        on_give_up=raise_on_give_up,
    )
    assert result == "payload"
    # The hang's 1.5 s count towards the 2 s backoff after it.
    assert clock.sleeps == [1.0, 0.5, 0.0, 0.0]
    assert retried == [("transient", 1), ("transient", 2), ("rate_limited", 3), ("token", 4)]


def test_loop_gives_up_through_the_callback_after_the_budget() -> None:
    clock = FakeClock()
    attempts = 0

    def attempt() -> str:
        nonlocal attempts
        attempts += 1
        raise RetryableOutcome(UNAVAILABLE)

    with pytest.raises(RuntimeError, match="gave up after 4: HTTP 503; the transient budget of 3 retries is spent"):
        run_with_retries(
            attempt,
            policy(clock, transient_retry=RetryBudget(retries=3, seconds=100)),
            sleep=clock.sleep,
            on_retry=lambda *_: None,
            on_give_up=raise_on_give_up,
        )
    assert attempts == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_loop_never_retries_other_errors() -> None:
    clock = FakeClock()
    attempts = 0

    def attempt() -> str:
        nonlocal attempts
        attempts += 1
        raise ValueError("fatal")

    with pytest.raises(ValueError, match="fatal"):
        run_with_retries(
            attempt, policy(clock), sleep=clock.sleep, on_retry=lambda *_: None, on_give_up=raise_on_give_up
        )
    assert attempts == 1
    assert clock.sleeps == []
