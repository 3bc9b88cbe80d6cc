"""Errors of the ad platform client.

Every message names the account and says what went wrong in one sentence; no
message ever quotes a password, a Basic header or a token.
"""

from __future__ import annotations


class AdPlatformError(Exception):
    """Base class of every error the ad platform client raises.

    Attributes:
        account_id: The account whose call failed.
        detail: The message without the account, e.g. for a per-campaign failure list.
        retriable: Whether a later attempt of the whole sync (a run retry) may
            succeed, as opposed to a defect that only a person can fix.
    """

    retriable = False

    def __init__(self, account_id: str, message: str) -> None:
        super().__init__(f"Account {account_id!r}: {message}")
        self.account_id = account_id
        self.detail = message


class AuthenticationError(AdPlatformError):
    """The platform refused the account's credentials, or a token it had just issued."""


class FatalResponseError(AdPlatformError):
    """The platform answered something that no retry can fix (a 4xx, an unexpected body).

    Attributes:
        endpoint: The endpoint, e.g. ``GET /api/campaigns``.
        status: The HTTP status, or ``None`` when the request never got one.
        reason: What exactly was wrong.
    """

    def __init__(self, account_id: str, endpoint: str, status: int | None, reason: str) -> None:
        status_text = f"HTTP {status}" if status is not None else "no status"
        super().__init__(account_id, f"{endpoint} failed ({status_text}): {reason}")
        self.endpoint = endpoint
        self.status = status
        self.reason = reason


class InvalidResponseError(FatalResponseError):
    """A successful answer whose body is not what the contract promises."""


class PaginationError(AdPlatformError):
    """The campaign list's pages contradict each other or never end."""


class RetryBudgetExhausted(AdPlatformError):
    """A call kept failing transiently until its retry budget or deadline ran out."""

    retriable = True

    def __init__(self, account_id: str, endpoint: str, reason: str, attempts: int) -> None:
        super().__init__(account_id, f"{endpoint} gave up after {attempts} attempts: {reason}")
        self.endpoint = endpoint
        self.reason = reason
        self.attempts = attempts


class DeadlineExceeded(AdPlatformError):
    """The partition ran out of time; the message says what it was waiting for."""

    retriable = True


def is_retriable_error(error: BaseException) -> bool:
    """Return whether a later attempt of the whole sync may succeed where ``error`` ended this one."""
    return isinstance(error, AdPlatformError) and error.retriable
