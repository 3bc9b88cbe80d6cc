from __future__ import annotations

import pytest

from campaign_pipeline.ad_platform.errors import (
    AuthenticationError,
    DeadlineExceeded,
    FatalResponseError,
    InvalidResponseError,
    PaginationError,
    RetryBudgetExhausted,
    is_retriable_error,
)


def test_messages_name_the_account_and_the_failure() -> None:
    error = FatalResponseError("acme-retail", "POST /api/campaigns/{id}/sync", 404, "HTTP 404 Not found")
    assert str(error) == "Account 'acme-retail': POST /api/campaigns/{id}/sync failed (HTTP 404): HTTP 404 Not found"
    assert error.detail == "POST /api/campaigns/{id}/sync failed (HTTP 404): HTTP 404 Not found"
    assert (error.endpoint, error.status, error.reason) == ("POST /api/campaigns/{id}/sync", 404, "HTTP 404 Not found")


def test_budget_exhaustion_says_how_many_attempts() -> None:
    error = RetryBudgetExhausted(
        "globex", "GET /api/campaigns page 2", "HTTP 503; the transient budget of 8 retries is spent", 9
    )
    assert str(error) == (
        "Account 'globex': GET /api/campaigns page 2 gave up after 9 attempts: "
        "HTTP 503; the transient budget of 8 retries is spent"
    )


@pytest.mark.parametrize(
    ("error", "retriable"),
    [
        (RetryBudgetExhausted("a", "GET /x", "HTTP 503", 3), True),
        (DeadlineExceeded("a", "the partition deadline passed."), True),
        (AuthenticationError("a", "refused."), False),
        (FatalResponseError("a", "GET /x", 400, "bad"), False),
        (InvalidResponseError("a", "GET /x", 200, "bad"), False),
        (PaginationError("a", "repeats."), False),
        (ValueError("not ours"), False),
    ],
)
def test_only_transient_failures_are_worth_a_run_retry(error: BaseException, retriable: bool) -> None:
    assert is_retriable_error(error) is retriable
