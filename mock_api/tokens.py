"""Bearer tokens: random, tracked one by one, each valid for its own account until it expires."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class IssuedToken:
    """A token and when it was issued.

    Attributes:
        value: The bearer token string.
        account_id: The only account the token opens.
        issued_monotonic: Issue time on the monotonic clock.
        issued_wall: Issue time in Unix seconds.
        lifetime_seconds: Lifetime granted at issue.
    """

    value: str
    account_id: str
    issued_monotonic: float
    issued_wall: float
    lifetime_seconds: float


@dataclass(frozen=True)
class TokenCheck:
    """Outcome of looking a token up.

    Attributes:
        account_id: The token's account, or ``None`` for an unknown token.
        expired_at_wall: Unix time the token expired at, or ``None`` while valid.
    """

    account_id: str | None
    expired_at_wall: float | None = None


class TokenStore:
    """Issues and checks tokens.

    With ``shared_issue_time`` (an upstream quirk) every token expires
    ``lifetime`` after the *latest* issue, so a new token renews all others.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        *,
        shared_issue_time: bool = False,
    ) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        self._shared_issue_time = shared_issue_time
        self._tokens: dict[str, IssuedToken] = {}
        self._latest: IssuedToken | None = None

    def issue(self, account_id: str, lifetime_seconds: float) -> IssuedToken:
        """Issue a new random token for ``account_id``."""
        token = IssuedToken(
            value=secrets.token_urlsafe(32),
            account_id=account_id,
            issued_monotonic=self._clock(),
            issued_wall=self._wall_clock(),
            lifetime_seconds=lifetime_seconds,
        )
        self._tokens[token.value] = token
        self._latest = token
        return token

    def check(self, value: str) -> TokenCheck:
        """Return the account of token ``value`` and whether it has expired."""
        token = self._tokens.get(value)
        if token is None:
            return TokenCheck(account_id=None)
        reference = self._latest if self._shared_issue_time and self._latest else token
        if self._clock() - reference.issued_monotonic < reference.lifetime_seconds:
            return TokenCheck(account_id=token.account_id)
        return TokenCheck(
            account_id=token.account_id,
            expired_at_wall=reference.issued_wall + reference.lifetime_seconds,
        )

    def issued_values(self) -> list[str]:
        """Return every token issued since the last reset, oldest first."""
        return list(self._tokens)

    def reset(self) -> None:
        """Forget every token."""
        self._tokens.clear()
        self._latest = None
