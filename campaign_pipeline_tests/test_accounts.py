from __future__ import annotations

import json

import pytest

from campaign_pipeline.accounts import (
    Account,
    AccountConfigError,
    credentials_for,
    load_registry,
    parse_credentials,
    validate_account_id,
)


@pytest.mark.parametrize("account_id", ["a", "acme-retail", "acct_0001", "9lives"])
def test_valid_account_ids(account_id):
    assert validate_account_id(account_id) == account_id


@pytest.mark.parametrize("account_id", ["", "Acme", "a|b", "a,b", "-x", "a b", "x" * 64, "a/b", None])
def test_invalid_account_ids_are_refused(account_id):
    with pytest.raises(AccountConfigError, match="is invalid"):
        validate_account_id(account_id)


def test_registry_is_read_with_defaults(tmp_path):
    path = tmp_path / "accounts.toml"
    path.write_text('[[accounts]]\nid = "acme"\nname = "ACME"\n\n[[accounts]]\nid = "globex"\nenabled = false\n')
    assert load_registry(path) == [Account("acme", "ACME", True), Account("globex", "globex", False)]


def test_registry_errors_name_the_place(tmp_path):
    path = tmp_path / "accounts.toml"
    path.write_text('[[accounts]]\nid = "acme"\n[[accounts]]\nid = "acme"\n')
    with pytest.raises(AccountConfigError) as excinfo:
        load_registry(path)
    assert str(excinfo.value) == f"{path}, account #2: account id 'acme' appears twice."
    with pytest.raises(AccountConfigError, match="does not exist"):
        load_registry(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "lists no accounts; disable an account with enabled = false instead."),
        ("# every account was commented out\n", "lists no accounts; disable an account with enabled = false instead."),
        ("accounts = []\n", "lists no accounts; disable an account with enabled = false instead."),
        (
            '[[account]]\nid = "acme"\n',
            "has unknown top-level keys 'account': it holds [[accounts]] tables only.",
        ),
    ],
)
def test_a_registry_that_lists_nobody_is_refused(tmp_path, text, problem):
    path = tmp_path / "accounts.toml"
    path.write_text(text)

    with pytest.raises(AccountConfigError) as excinfo:
        load_registry(path)

    assert str(excinfo.value) == f"The account registry {path} {problem}"


def test_a_misspelt_account_key_is_refused_rather_than_ignored(tmp_path):
    path = tmp_path / "accounts.toml"
    path.write_text('[[accounts]]\nid = "acme"\nenabeld = false\n')

    with pytest.raises(AccountConfigError) as excinfo:
        load_registry(path)

    assert str(excinfo.value) == f"{path}, account #1 has unknown keys 'enabeld'; an account has enabled, id, name."


def test_a_registry_that_cannot_be_read_as_text_is_named(tmp_path):
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('[[accounts]]\nid = "acme"\nname = "Caf\u00e9"\n'.encode("latin-1"))

    with pytest.raises(AccountConfigError) as not_utf8:
        load_registry(latin1)
    with pytest.raises(AccountConfigError) as directory:
        load_registry(tmp_path)

    assert str(not_utf8.value) == f"The account registry {latin1} is not UTF-8 text (byte 0xe9 at offset 36)."
    assert str(directory.value) == (
        f"The account registry {tmp_path} cannot be read: Is a directory (set CAMPAIGN_PIPELINE_ACCOUNTS_FILE)."
    )


def test_credentials_parse_and_never_show_the_password():
    credentials = parse_credentials(json.dumps({"acme": {"email": "ops@acme.test", "password": "hunter2-secret"}}))
    assert credentials["acme"].email == "ops@acme.test"
    assert "hunter2-secret" not in repr(credentials)
    with pytest.raises(AccountConfigError) as excinfo:
        credentials_for(credentials, "globex")
    assert str(excinfo.value) == "CAMPAIGN_PIPELINE_CREDENTIALS has no entry for account 'globex'."


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "CAMPAIGN_PIPELINE_CREDENTIALS is not set: it must hold the accounts' credentials as JSON."),
        ('{"acme": {"email": "x", "password": "hunter2-secret"', "CAMPAIGN_PIPELINE_CREDENTIALS is not valid JSON"),
        ('["hunter2-secret"]', "CAMPAIGN_PIPELINE_CREDENTIALS must be a JSON object"),
        ('{"acme": {"email": "x"}}', "CAMPAIGN_PIPELINE_CREDENTIALS: the entry of account 'acme' must be"),
    ],
)
def test_bad_credentials_never_quote_the_secret(text, message):
    with pytest.raises(AccountConfigError) as excinfo:
        parse_credentials(text)
    assert str(excinfo.value).startswith(message)
    assert "hunter2" not in str(excinfo.value)
