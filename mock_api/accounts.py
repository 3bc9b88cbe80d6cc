"""The simulator's accounts: five built-in demo accounts plus any number of generated ones.

Every email and password in this module is a demo value that only opens the
local simulator. The pipeline never imports this module: it reads credentials
from its environment, and ``demo/credentials.demo.json`` holds the same demo
values in the format that environment variable expects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

DEMO_EMAIL_DOMAIN = "demo.invalid"
HOSTILE_ACCOUNT_ID = "hostile-names"
GENERATED_ACCOUNT_PATTERN = re.compile(r"^acct-(\d{4,})$")


@dataclass(frozen=True)
class SimulatedAccount:
    """One account of the simulator, with its demo login.

    Attributes:
        id: Account id, also the rate-limit key and the ``X-Client-ID`` value.
        name: Display name, as the pipeline's registry shows it.
        email: Demo login email.
        password: Demo login password; never shown by ``repr``.
        hostile_names: Whether its campaign names are the hostile set.
    """

    id: str
    name: str
    email: str
    password: str = field(repr=False)
    hostile_names: bool = False


def _demo_account(account_id: str, name: str, password: str | None = None) -> SimulatedAccount:
    return SimulatedAccount(
        id=account_id,
        name=name,
        email=f"{account_id}@{DEMO_EMAIL_DOMAIN}",
        password=password or f"demo-password-{account_id}",
        hostile_names=account_id == HOSTILE_ACCOUNT_ID,
    )


# The hostile account's password holds a colon and quotes: Basic auth splits
# on the first colon only, and a client that splits on every colon fails here.
DEMO_ACCOUNTS: tuple[SimulatedAccount, ...] = (
    _demo_account("acme-retail", "ACME Retail"),
    _demo_account("globex", "Globex Corporation"),
    _demo_account("initech", "Initech"),
    _demo_account("umbrella-health", "Umbrella Health"),
    _demo_account(HOSTILE_ACCOUNT_ID, "Hostile Names Ltd", password='demo-password:hostile-names"%'),
)

DEMO_ACCOUNT_IDS: tuple[str, ...] = tuple(account.id for account in DEMO_ACCOUNTS)


def generated_account_id(index: int) -> str:
    """Return the id of the ``index``-th generated account (1-based): ``acct-0001``..."""
    return f"acct-{index:04d}"


def generated_account(index: int) -> SimulatedAccount:
    """Return the ``index``-th generated account (1-based)."""
    account_id = generated_account_id(index)
    return _demo_account(account_id, f"Generated Account {index}")


def build_accounts(generated_count: int = 0) -> tuple[SimulatedAccount, ...]:
    """Return the demo accounts followed by ``generated_count`` generated ones."""
    if generated_count < 0:
        raise ValueError(f"generated_count must be >= 0, got {generated_count}.")
    return DEMO_ACCOUNTS + tuple(generated_account(index) for index in range(1, generated_count + 1))


def account_by_id(account_id: str) -> SimulatedAccount:
    """Return the demo or generated account with this id.

    Raises:
        KeyError: No demo account has this id and it is not of the form ``acct-NNNN``.
    """
    for account in DEMO_ACCOUNTS:
        if account.id == account_id:
            return account
    match = GENERATED_ACCOUNT_PATTERN.fullmatch(account_id)
    if match is None or int(match.group(1)) == 0:
        raise KeyError(f"No simulated account has id {account_id!r}.")
    return generated_account(int(match.group(1)))


def demo_credentials(account_ids: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
    """Return the demo logins, in the pipeline's credentials JSON format.

    Args:
        account_ids: Accounts to include (demo or generated ids); the five demo
            accounts when ``None``.

    Returns:
        ``{account_id: {"email": ..., "password": ...}}`` in the given order.
    """
    ids = DEMO_ACCOUNT_IDS if account_ids is None else tuple(account_ids)
    accounts = (account_by_id(account_id) for account_id in ids)
    return {account.id: {"email": account.email, "password": account.password} for account in accounts}
