"""The account registry and the account credentials.

An *account* is one client ad account of the agency: the partition dimension
and the platform's rate-limit unit.

- The registry (``accounts.toml``, not secret) lists the accounts to sync::

      [[accounts]]
      id = "acme-retail"          # partition key: lowercase letters, digits, - and _
      name = "ACME Retail"        # shown in logs and the UI
      enabled = true              # optional; false keeps history but stops syncing

- The credentials (secret) are one JSON object in ``CAMPAIGN_PIPELINE_CREDENTIALS``,
  mapping each account id to its platform login::

      {"acme-retail": {"email": "...", "password": "..."}}

  One JSON secret is what secret managers hand out most easily; it reaches
  the Dagster resource as an ``EnvVar`` and is parsed only inside a run.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ACCOUNT_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class AccountConfigError(ValueError):
    """The registry or the credentials are malformed; the message says where."""


@dataclass(frozen=True)
class Account:
    """One client ad account of the registry."""

    id: str
    name: str
    enabled: bool = True


@dataclass(frozen=True)
class AccountCredentials:
    """Platform login of one account. ``repr`` never shows the password."""

    email: str
    password: str = field(repr=False)


def validate_account_id(account_id: str) -> str:
    """Return ``account_id`` if it is a valid partition key, else raise.

    Dagster does not validate dynamic partition keys, and ``|`` or ``,`` in
    one would corrupt multi-partition keys and backfill lists.
    """
    if not isinstance(account_id, str) or not ACCOUNT_ID_PATTERN.fullmatch(account_id):
        raise AccountConfigError(
            f"Account id {account_id!r} is invalid: use 1 to 63 lowercase letters, digits, "
            "'-' or '_', starting with a letter or digit."
        )
    return account_id


ACCOUNT_KEYS = frozenset({"id", "name", "enabled"})


def load_registry(path: Path) -> list[Account]:
    """Read the account registry file; raise :class:`AccountConfigError` on any defect."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AccountConfigError(
            f"The account registry {path} does not exist (set CAMPAIGN_PIPELINE_ACCOUNTS_FILE)."
        ) from None
    except UnicodeDecodeError as exc:
        raise AccountConfigError(
            f"The account registry {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})."
        ) from None
    except OSError as exc:
        raise AccountConfigError(
            f"The account registry {path} cannot be read: {exc.strerror or exc} (set CAMPAIGN_PIPELINE_ACCOUNTS_FILE)."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise AccountConfigError(f"The account registry {path} is not valid TOML: {exc}.") from None
    # A registry that lists nobody is a mistake (a typo such as [[account]], the wrong file),
    # never a wish: the registry sensor would remove every account's partitions.
    unknown = sorted(set(document) - {"accounts"})
    if unknown:
        raise AccountConfigError(
            f"The account registry {path} has unknown top-level keys {', '.join(map(repr, unknown))}: "
            "it holds [[accounts]] tables only."
        )
    entries = document.get("accounts", [])
    if not isinstance(entries, list):
        raise AccountConfigError(f"The account registry {path} must hold [[accounts]] tables.")
    if not entries:
        raise AccountConfigError(
            f"The account registry {path} lists no accounts; disable an account with enabled = false instead."
        )
    accounts: list[Account] = []
    seen: set[str] = set()
    for position, entry in enumerate(entries, start=1):
        where = f"{path}, account #{position}"
        if not isinstance(entry, dict) or "id" not in entry:
            raise AccountConfigError(f"{where} has no id.")
        misspelt = sorted(set(entry) - ACCOUNT_KEYS)
        if misspelt:
            raise AccountConfigError(
                f"{where} has unknown keys {', '.join(map(repr, misspelt))}; "
                f"an account has {', '.join(sorted(ACCOUNT_KEYS))}."
            )
        account_id = validate_account_id(entry["id"])
        if account_id in seen:
            raise AccountConfigError(f"{where}: account id {account_id!r} appears twice.")
        seen.add(account_id)
        name = entry.get("name", account_id)
        enabled = entry.get("enabled", True)
        if not isinstance(name, str) or not isinstance(enabled, bool):
            raise AccountConfigError(f"{where}: name must be a string and enabled true or false.")
        accounts.append(Account(id=account_id, name=name, enabled=enabled))
    return accounts


def parse_credentials(text: str | None, setting: str = "CAMPAIGN_PIPELINE_CREDENTIALS") -> dict[str, AccountCredentials]:
    """Parse the credentials JSON; error messages never quote its content."""
    if not text or not text.strip():
        raise AccountConfigError(f"{setting} is not set: it must hold the accounts' credentials as JSON.")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AccountConfigError(
            f"{setting} is not valid JSON (line {exc.lineno}, column {exc.colno})."
        ) from None
    if not isinstance(document, dict):
        raise AccountConfigError(f"{setting} must be a JSON object mapping account ids to credentials.")
    credentials: dict[str, AccountCredentials] = {}
    for account_id, entry in document.items():
        validate_account_id(account_id)
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("email"), str)
            or not isinstance(entry.get("password"), str)
            or not entry["email"]
            or not entry["password"]
        ):
            raise AccountConfigError(
                f"{setting}: the entry of account {account_id!r} must be "
                '{"email": "...", "password": "..."} with both non-empty.'
            )
        credentials[account_id] = AccountCredentials(email=entry["email"], password=entry["password"])
    return credentials


def credentials_for(credentials: dict[str, AccountCredentials], account_id: str) -> AccountCredentials:
    """Return the credentials of ``account_id`` or raise an error naming the account."""
    try:
        return credentials[account_id]
    except KeyError:
        raise AccountConfigError(
            f"CAMPAIGN_PIPELINE_CREDENTIALS has no entry for account {account_id!r}."
        ) from None
