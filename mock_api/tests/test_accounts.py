from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from mock_api.accounts import (
    DEMO_ACCOUNT_IDS,
    DEMO_ACCOUNTS,
    account_by_id,
    build_accounts,
    demo_credentials,
)

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"


def test_demo_accounts_are_the_five_documented_ids() -> None:
    assert DEMO_ACCOUNT_IDS == ("acme-retail", "globex", "initech", "umbrella-health", "hostile-names")


def test_demo_credentials_file_matches_the_module() -> None:
    document = json.loads((DEMO_DIR / "credentials.demo.json").read_text(encoding="utf-8"))

    assert document == demo_credentials()
    assert list(document) == list(DEMO_ACCOUNT_IDS)


def test_demo_registry_lists_every_demo_account_with_its_name() -> None:
    registry = tomllib.loads((DEMO_DIR / "accounts.toml").read_text(encoding="utf-8"))

    assert registry == {"accounts": [{"id": account.id, "name": account.name} for account in DEMO_ACCOUNTS]}


def test_demo_logins_are_marked_as_demo_and_distinct() -> None:
    logins = demo_credentials().values()

    assert all(login["email"].endswith("@demo.invalid") for login in logins)
    assert all(login["password"].startswith("demo-password") for login in logins)
    assert len({login["password"] for login in logins}) == len(DEMO_ACCOUNT_IDS)


def test_generated_accounts_follow_the_demo_accounts() -> None:
    accounts = build_accounts(3)

    assert [account.id for account in accounts] == [*DEMO_ACCOUNT_IDS, "acct-0001", "acct-0002", "acct-0003"]
    assert demo_credentials(["acct-0042"]) == {
        "acct-0042": {"email": "acct-0042@demo.invalid", "password": "demo-password-acct-0042"}
    }


@pytest.mark.parametrize("account_id", ["nobody", "acct-0000", "acct-12", "ACME-RETAIL"])
def test_unknown_account_ids_are_refused(account_id: str) -> None:
    with pytest.raises(KeyError, match="No simulated account"):
        account_by_id(account_id)


def test_repr_never_shows_the_password() -> None:
    account = account_by_id("globex")

    assert account.password not in repr(account)
