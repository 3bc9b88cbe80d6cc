from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from campaign_pipeline.ad_platform.config import ClientConfig
from campaign_pipeline.settings import Settings, SettingsError, patched_environ, redact_message, redact_url


def test_defaults_without_any_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.home == tmp_path / ".campaign_pipeline"
    assert settings.accounts_file == tmp_path / "accounts.toml"
    assert (settings.warehouse_url, settings.dagster_storage_url, settings.api_url) == (None, None, None)
    assert (settings.rate_limit, settings.rate_window_seconds) == (10, 60.0)
    assert settings.partition_start_date == date(2026, 1, 1)
    assert settings.lookback_days == 0
    assert settings.sync_workers == 10
    assert (settings.read_timeout_seconds, settings.hang_detection_multiplier) == (30.0, 1.5)
    # The settings' defaults are the client's own.
    assert (settings.read_timeout_seconds, settings.hang_detection_multiplier) == (
        ClientConfig().read_timeout_seconds,
        ClientConfig().hang_detection_multiplier,
    )


@pytest.mark.parametrize(
    ("environ", "workers"),
    [
        ({"CAMPAIGN_PIPELINE_RATE_LIMIT": "60"}, 60),
        ({"CAMPAIGN_PIPELINE_RATE_LIMIT": "1000"}, 64),
        ({"CAMPAIGN_PIPELINE_RATE_LIMIT": "1000", "CAMPAIGN_PIPELINE_SYNC_WORKERS": "5"}, 5),
    ],
)
def test_sync_workers_default_to_the_rate_limit_up_to_64(environ, workers):
    assert Settings.from_env(environ).sync_workers == workers


def test_values_are_parsed():
    settings = Settings.from_env(
        {
            "CAMPAIGN_PIPELINE_HOME": "/srv/cp",
            "CAMPAIGN_PIPELINE_API_URL": "https://ads.example.com/",
            "CAMPAIGN_PIPELINE_RATE_LIMIT": "60",
            "CAMPAIGN_PIPELINE_RATE_WINDOW_SECONDS": "1.5",
            "CAMPAIGN_PIPELINE_PARTITION_START_DATE": "2025-06-01",
            "CAMPAIGN_PIPELINE_LOOKBACK_DAYS": "3",
            "CAMPAIGN_PIPELINE_HANG_DETECTION_MULTIPLIER": "2.5",
        }
    )
    assert settings.home == Path("/srv/cp")
    assert settings.api_url == "https://ads.example.com"
    assert (settings.rate_limit, settings.rate_window_seconds) == (60, 1.5)
    assert settings.partition_start_date == date(2025, 6, 1)
    assert settings.lookback_days == 3
    assert settings.hang_detection_multiplier == 2.5


def test_hang_detection_can_be_turned_off():
    assert Settings.from_env({"CAMPAIGN_PIPELINE_HANG_DETECTION_MULTIPLIER": "off"}).hang_detection_multiplier is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CAMPAIGN_PIPELINE_RATE_LIMIT", "ten", "CAMPAIGN_PIPELINE_RATE_LIMIT must be a whole number, not 'ten'."),
        ("CAMPAIGN_PIPELINE_RATE_LIMIT", "0", "CAMPAIGN_PIPELINE_RATE_LIMIT must be a positive whole number, not 0."),
        (
            "CAMPAIGN_PIPELINE_RATE_LIMIT",
            "9" * 5000,
            "CAMPAIGN_PIPELINE_RATE_LIMIT must be at most 1000000000, not 99999999999999999999….",
        ),
        ("CAMPAIGN_PIPELINE_LOOKBACK_DAYS", "366", "CAMPAIGN_PIPELINE_LOOKBACK_DAYS must be at most 365, not 366."),
        (
            "CAMPAIGN_PIPELINE_RATE_WINDOW_SECONDS",
            "-1",
            "CAMPAIGN_PIPELINE_RATE_WINDOW_SECONDS must be greater than 0, not '-1'.",
        ),
        (
            "CAMPAIGN_PIPELINE_READ_TIMEOUT_SECONDS",
            "inf",
            "CAMPAIGN_PIPELINE_READ_TIMEOUT_SECONDS must be a finite number of seconds, not 'inf'.",
        ),
        (
            "CAMPAIGN_PIPELINE_READ_TIMEOUT_SECONDS",
            "901",
            "CAMPAIGN_PIPELINE_READ_TIMEOUT_SECONDS must be at most 900, not '901'.",
        ),
        (
            "CAMPAIGN_PIPELINE_PARTITION_DEADLINE_SECONDS",
            "1e400",
            "CAMPAIGN_PIPELINE_PARTITION_DEADLINE_SECONDS must be a finite number of seconds, not '1e400'.",
        ),
        (
            "CAMPAIGN_PIPELINE_RATE_WINDOW_SECONDS",
            "nan",
            "CAMPAIGN_PIPELINE_RATE_WINDOW_SECONDS must be a finite number of seconds, not 'nan'.",
        ),
        (
            "CAMPAIGN_PIPELINE_HANG_DETECTION_MULTIPLIER",
            "1",
            "CAMPAIGN_PIPELINE_HANG_DETECTION_MULTIPLIER must be a number greater than 1, or off, not '1'.",
        ),
        (
            "CAMPAIGN_PIPELINE_HANG_DETECTION_MULTIPLIER",
            "fast",
            "CAMPAIGN_PIPELINE_HANG_DETECTION_MULTIPLIER must be a number greater than 1, or off, not 'fast'.",
        ),
        (
            "CAMPAIGN_PIPELINE_PARTITION_START_DATE",
            "01/06/2025",
            "CAMPAIGN_PIPELINE_PARTITION_START_DATE must be a date as YYYY-MM-DD, not '01/06/2025'.",
        ),
        (
            "CAMPAIGN_PIPELINE_API_URL",
            "ftp://user:pw@host",
            "CAMPAIGN_PIPELINE_API_URL must be an http:// or https:// URL, not 'ftp://user:***@host'.",
        ),
        (
            "CAMPAIGN_PIPELINE_API_URL",
            "https://etl:hun/ter@2@api.example.com/v1",
            "CAMPAIGN_PIPELINE_API_URL must not carry a user or password (user:password@host), "
            "not 'https://***@api.example.com/v1'.",
        ),
        (
            "CAMPAIGN_PIPELINE_ALERT_WEBHOOK_URL",
            "hooks.example.com/T0KEN",
            "CAMPAIGN_PIPELINE_ALERT_WEBHOOK_URL must be an http:// or https:// URL "
            "(its value is a secret, so not shown).",
        ),
        (
            "CAMPAIGN_PIPELINE_WAREHOUSE_URL",
            "postgresql://etl:pa%zzss@db/wh",
            "CAMPAIGN_PIPELINE_WAREHOUSE_URL is not a URL libpq can read (postgresql://etl:***@db/wh): "
            'invalid percent-encoded token: "***".',
        ),
        (
            "CAMPAIGN_PIPELINE_DAGSTER_STORAGE_URL",
            "postgresql://etl:hunter2@[::1/dagster",
            "CAMPAIGN_PIPELINE_DAGSTER_STORAGE_URL is not a URL libpq can read (postgresql://etl:***@[::1/dagster): "
            'end of string reached when looking for matching "]" in IPv6 host address in URI: '
            '"postgresql://etl:***@[::1/dagster".',
        ),
        (
            "CAMPAIGN_PIPELINE_WAREHOUSE_URL",
            "mysql://root:secret@db/x",
            "CAMPAIGN_PIPELINE_WAREHOUSE_URL must be a PostgreSQL URL such as "
            "postgresql://user:password@host:5432/dbname, not 'mysql://root:***@db/x'.",
        ),
    ],
)
def test_bad_value_is_one_sentence_naming_the_variable(name, value, message):
    with pytest.raises(SettingsError) as excinfo:
        Settings.from_env({name: value})
    assert str(excinfo.value) == message


def test_redact_url_hides_only_the_password():
    assert redact_url("postgresql://app:s3cr%40t@db:5432/wh") == "postgresql://app:***@db:5432/wh"
    assert redact_url("postgresql://app@db/wh") == "postgresql://app@db/wh"
    assert redact_url("postgresql://postgres:@/db?host=/tmp/x") == "postgresql://postgres:***@/db?host=/tmp/x"


def test_redact_url_hides_a_password_however_it_is_given():
    assert redact_url("postgresql://app@db/wh?password=s3cret&sslmode=require") == (
        "postgresql://app@db/wh?password=***&sslmode=require"
    )
    assert redact_url("postgresql://app:pa/ss@word@db/wh") == "postgresql://app:***@db/wh"
    # An "@" past the authority might end a password: more is hidden, never less.
    assert redact_url("postgresql://db:5432/wh?application_name=a@b") == "postgresql://db:***@b"
    # libpq decodes a parameter's name as well as its value, and a client key's passphrase is a secret too.
    assert conninfo_to_dict("postgresql://app@db/wh?pass%77ord=s3cret")["password"] == "s3cret"
    assert redact_url("postgresql://app@db/wh?pass%77ord=s3cret&PASSWORD=other") == (
        "postgresql://app@db/wh?pass%77ord=***&PASSWORD=***"
    )
    assert redact_url("postgresql://app@db/wh?sslkey=/k&sslpassword=phrase") == (
        "postgresql://app@db/wh?sslkey=/k&sslpassword=***"
    )


@pytest.mark.parametrize("scheme", ["postgres", "postgresql+psycopg2", "postgresql+psycopg"])
def test_sqlalchemy_spellings_of_a_postgres_url_are_accepted_as_they_are(scheme):
    url = f"{scheme}://dagster:s3cret@db:5432/dagster"

    settings = Settings.from_env({"CAMPAIGN_PIPELINE_DAGSTER_STORAGE_URL": url, "CAMPAIGN_PIPELINE_WAREHOUSE_URL": url})

    assert (settings.dagster_storage_url, settings.warehouse_url) == (url, url)


def test_redact_message_removes_every_form_of_the_password():
    url = "postgresql://app:s3cr%40t@db/wh"
    message = f'could not parse "{url}": token "s3cr%40t", decoded s3cr@t, short "x"'
    assert redact_message(message, url) == (
        'could not parse "postgresql://app:***@db/wh": token "***", decoded ***, short "x"'
    )
    assert redact_message('bad token "ab"', "postgresql://app:ab@db/wh") == 'bad token "***"'
    assert redact_message("about the cable", "postgresql://app:ab@db/wh") == "about the cable"


def test_patched_environ_restores_changed_and_absent_variables_even_on_error(monkeypatch):
    monkeypatch.setenv("CP_TEST_SET", "before")
    monkeypatch.delenv("CP_TEST_UNSET", raising=False)
    with pytest.raises(RuntimeError), patched_environ({"CP_TEST_SET": "during", "CP_TEST_UNSET": "during"}):
        assert (os.environ["CP_TEST_SET"], os.environ["CP_TEST_UNSET"]) == ("during", "during")
        raise RuntimeError
    assert os.environ["CP_TEST_SET"] == "before"
    assert "CP_TEST_UNSET" not in os.environ


def test_the_longest_read_timeout_settings_accept_is_one_the_client_accepts():
    settings = Settings.from_env({"CAMPAIGN_PIPELINE_READ_TIMEOUT_SECONDS": "900"})

    assert settings.read_timeout_seconds == ClientConfig.call_deadline_seconds == 900
    assert ClientConfig(read_timeout_seconds=settings.read_timeout_seconds).read_timeout_seconds == 900


def test_whole_numbers_up_to_their_maximum_are_accepted():
    settings = Settings.from_env({"CAMPAIGN_PIPELINE_LOOKBACK_DAYS": "365", "CAMPAIGN_PIPELINE_RATE_LIMIT": "0001000000000"})

    assert (settings.lookback_days, settings.rate_limit) == (365, 1_000_000_000)
