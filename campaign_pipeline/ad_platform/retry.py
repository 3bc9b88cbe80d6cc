"""Retry budgets per class of failure, and the tenacity loop that spends them.

Each class has its own budget of retries and seconds, so that a storm of 503s
cannot eat the wait a 429 asked for, and a 401 gets exactly the refreshes it
deserves. :class:`CallRetryPolicy` is pure (clock and randomness injected);
:func:`run_with_retries` hands it to tenacity, which retries only outcomes
raised as :class:`RetryableOutcome`.
"""

from __future__ import annotations

import enum
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NoReturn, TypeVar

import tenacity

from campaign_pipeline.ad_platform.backoff import full_jitter_backoff
from campaign_pipeline.ad_platform.classify import Outcome, OutcomeKind
from campaign_pipeline.ad_platform.config import ClientConfig, RetryBudget

T = TypeVar("T")


class RetryClass(enum.Enum):
    """The budgets a failed attempt can draw on."""

    TRANSIENT = "transient"
    RATE_LIMITED = "rate_limited"
    TOKEN = "token"


RETRY_CLASS_OF_OUTCOME = {
    OutcomeKind.RETRIABLE: RetryClass.TRANSIENT,
    OutcomeKind.RATE_LIMITED: RetryClass.RATE_LIMITED,
    OutcomeKind.TOKEN_EXPIRED: RetryClass.TOKEN,
    OutcomeKind.UNAUTHORIZED: RetryClass.TOKEN,
}


class RetryableOutcome(Exception):
    """Raised by an attempt whose outcome may be retried.

    Attributes:
        outcome: The attempt's outcome.
        request_seconds: How long its request took, from sending to the answer or the timeout.
    """

    def __init__(self, outcome: Outcome, *, request_seconds: float = 0.0) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome
        self.request_seconds = request_seconds


@dataclass(frozen=True)
class Decision:
    """What to do after a retryable outcome.

    Attributes:
        retry_class: The budget the outcome draws on.
        wait_seconds: The wait the outcome costs, charged to the class's budget.
        sleep_seconds: How long the call itself sleeps before its next attempt.
        give_up: Why the call stops here, or ``None`` to retry.
        partition_deadline: The partition deadline, not a budget, stopped the call.
    """

    retry_class: RetryClass
    wait_seconds: float
    sleep_seconds: float
    give_up: str | None = None
    partition_deadline: bool = False


class CallRetryPolicy:
    """The retry budgets of one call, and the decision after each retryable outcome.

    Args:
        config: Budgets, backoff and deadlines.
        clock: Monotonic clock.
        rng: Source of the backoff jitter.
        started_at: When the call's first attempt started, on ``clock``.
        partition_deadline_at: When the partition's time runs out, on ``clock``.
        rate_limit_waits_in_limiter: A 429's wait is served by the rate limiter
            (calls that take slots); otherwise the call sleeps it itself.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        clock: Callable[[], float],
        rng: random.Random,
        started_at: float,
        partition_deadline_at: float | None = None,
        rate_limit_waits_in_limiter: bool = True,
    ) -> None:
        self._config = config
        self._rate_limit_waits_in_limiter = rate_limit_waits_in_limiter
        self._clock = clock
        self._rng = rng
        self._started_at = started_at
        self._partition_deadline_at = partition_deadline_at
        self._retries: Counter[RetryClass] = Counter()
        self._waited: defaultdict[RetryClass, float] = defaultdict(float)

    def budget(self, retry_class: RetryClass) -> RetryBudget:
        """Return the configured budget of ``retry_class``."""
        return {
            RetryClass.TRANSIENT: self._config.transient_retry,
            RetryClass.RATE_LIMITED: self._config.rate_limited_retry,
            RetryClass.TOKEN: self._config.token_retry,
        }[retry_class]

    def decide(self, outcome: Outcome, *, request_seconds: float = 0.0) -> Decision:
        """Decide whether to retry after ``outcome``, and charge the retry to its class's budget.

        A backoff spaces the call's requests: it counts from the failed request's
        sending, so the request's own ``request_seconds`` are taken off it. A quick
        503 waits nearly the whole backoff; a request that hung for a read timeout
        longer than the backoff is retried at once. A wait the platform asked for
        (``Retry-After``) is waited in full.
        """
        retry_class = RETRY_CLASS_OF_OUTCOME[outcome.kind]
        retry_number = self._retries[retry_class] + 1
        wait = self._wait_seconds(retry_class, outcome, retry_number, request_seconds)
        served_by_limiter = retry_class is RetryClass.RATE_LIMITED and self._rate_limit_waits_in_limiter
        decision = Decision(retry_class, wait, sleep_seconds=0.0 if served_by_limiter else wait)
        reason = self._reason_to_stop(retry_class, retry_number, wait)
        if reason is not None:
            return replace(decision, give_up=f"{outcome.reason}; {reason}")
        if self._partition_deadline_at is not None and self._clock() + wait > self._partition_deadline_at:
            return replace(
                decision,
                give_up=f"{outcome.reason}; waiting {wait:.1f} s more would pass the partition deadline",
                partition_deadline=True,
            )
        self._retries[retry_class] = retry_number
        self._waited[retry_class] += wait
        return decision

    def _reason_to_stop(self, retry_class: RetryClass, retry_number: int, wait: float) -> str | None:
        budget = self.budget(retry_class)
        name = retry_class.value.replace("_", "-")
        if retry_number > budget.retries:
            return f"the {name} budget of {budget.retries} retries is spent"
        if self._waited[retry_class] + wait > budget.seconds:
            return f"waiting {wait:.1f} s more would exceed the {name} budget of {budget.seconds:g} s"
        if self._clock() - self._started_at + wait > self._config.call_deadline_seconds:
            return f"waiting {wait:.1f} s more would pass the call deadline of {self._config.call_deadline_seconds:g} s"
        return None

    def _wait_seconds(
        self, retry_class: RetryClass, outcome: Outcome, retry_number: int, request_seconds: float
    ) -> float:
        if retry_class is RetryClass.TOKEN:
            return 0.0
        if outcome.wait_seconds is not None:
            return outcome.wait_seconds
        if retry_class is RetryClass.RATE_LIMITED:
            return self._config.rate_limit_default_wait_seconds
        backoff = full_jitter_backoff(
            retry_number,
            base_seconds=self._config.backoff_base_seconds,
            cap_seconds=self._config.backoff_cap_seconds,
            rng=self._rng,
        )
        return max(0.0, backoff - max(0.0, request_seconds))


def run_with_retries(
    attempt: Callable[[], T],
    policy: CallRetryPolicy,
    *,
    sleep: Callable[[float], None],
    on_retry: Callable[[Outcome, Decision, int], None],
    on_give_up: Callable[[Outcome, Decision, int], NoReturn],
) -> T:
    """Run ``attempt`` until it returns, raises a non-retryable error, or ``policy`` gives up.

    Args:
        attempt: One attempt; raises :class:`RetryableOutcome` for a retryable outcome.
        policy: The call's budgets.
        sleep: Sleep function (injected in tests).
        on_retry: Called before each wait with the outcome, the decision and the attempt number.
        on_give_up: Called when the policy gives up; raises the call's error.
    """
    decisions: dict[int, tuple[Outcome, Decision]] = {}

    def decision(state: tenacity.RetryCallState) -> tuple[Outcome, Decision]:
        # tenacity asks wait, stop and before_sleep separately; decide once per attempt.
        if state.attempt_number not in decisions:
            assert state.outcome is not None
            error = state.outcome.exception()
            assert isinstance(error, RetryableOutcome)
            decided = policy.decide(error.outcome, request_seconds=error.request_seconds)
            decisions[state.attempt_number] = (error.outcome, decided)
        return decisions[state.attempt_number]

    def give_up(state: tenacity.RetryCallState) -> NoReturn:
        on_give_up(*decision(state), state.attempt_number)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(RetryableOutcome),
        wait=lambda state: decision(state)[1].sleep_seconds,
        stop=lambda state: decision(state)[1].give_up is not None,
        before_sleep=lambda state: on_retry(*decision(state), state.attempt_number),
        retry_error_callback=give_up,
        sleep=sleep,
    )
    return retrying(attempt)
