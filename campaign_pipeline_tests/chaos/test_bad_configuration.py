"""Bad configuration: each gives one sentence naming the setting, at start-up where it can be known then.

Every case runs the ``campaign-pipeline`` command as a user would. The cases
of ``test_cli.py`` (warehouse server unreachable, no credentials, a malformed
number, the UI port taken) are not repeated here.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from campaign_pipeline import database
from campaign_pipeline_tests.chaos.support import REPO_ROOT, Figures, clean_env, cli
from mock_api.accounts import demo_credentials
from mock_api.testing import MockApiServer

REGISTRY = str(REPO_ROOT / "demo" / "accounts.toml")
SECRET = "n0t-4-r3al-pa55word"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockApiServer]:
    with MockApiServer(profile="fast", log_path=tmp_path_factory.mktemp("api") / "mock_api.log") as server:
        yield server


@pytest.fixture(scope="module")
def databases(make_database: Any) -> dict[str, str]:
    return {
        "CAMPAIGN_PIPELINE_WAREHOUSE_URL": make_database("cfgwh"),
        "CAMPAIGN_PIPELINE_DAGSTER_STORAGE_URL": make_database("cfgdg"),
    }


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _with_password(url: str) -> str:
    """``url`` of a server that is not there, carrying a password that must never be printed."""
    return f"postgresql://etl:{SECRET}@127.0.0.1:{_closed_port()}/" + url.rsplit("/", 1)[-1].split("?")[0]


def _fill(text: str, values: dict[str, int]) -> str:
    for name, value in values.items():
        text = text.replace(f"{{{name}}}", str(value))
    return text


CASES: dict[str, tuple[Callable[[dict[str, str], str], dict[str, str]], list[str], str]] = {
    "credentials that are not JSON": (
        lambda dbs, api_url: {"CAMPAIGN_PIPELINE_CREDENTIALS": "{'acme-retail': " + SECRET},
        ["run"],
        "campaign-pipeline: CAMPAIGN_PIPELINE_CREDENTIALS is not valid JSON (line 1, column 2).",
    ),
    "credentials missing registry accounts": (
        lambda dbs, api_url: {"CAMPAIGN_PIPELINE_CREDENTIALS": json.dumps(demo_credentials(["globex"]))},
        ["run"],
        "campaign-pipeline: CAMPAIGN_PIPELINE_CREDENTIALS has no credentials for account(s) acme-retail, initech, "
        f"umbrella-health, hostile-names of the registry {REGISTRY}.",
    ),
    "an account registry that does not exist": (
        lambda dbs, api_url: {"CAMPAIGN_PIPELINE_ACCOUNTS_FILE": "/nonexistent/accounts.toml"},
        ["run"],
        "campaign-pipeline: The account registry /nonexistent/accounts.toml does not exist "
        "(set CAMPAIGN_PIPELINE_ACCOUNTS_FILE).",
    ),
    "an unknown account": (
        lambda dbs, api_url: dbs,
        ["run", "--account", "no-such-account"],
        "campaign-pipeline: --account no-such-account: not an enabled account of the registry.",
    ),
    "an unreachable API": (
        lambda dbs, api_url: {**dbs, "CAMPAIGN_PIPELINE_API_URL": "http://127.0.0.1:{port}"},
        ["run"],
        "campaign-pipeline: Cannot reach the ad platform at CAMPAIGN_PIPELINE_API_URL (http://127.0.0.1:{port}): "
        "no HTTP answer within 10 s (ConnectionError).",
    ),
    "an API URL that is not HTTP": (
        lambda dbs, api_url: {"CAMPAIGN_PIPELINE_API_URL": "ftp://ads.example.com"},
        ["run"],
        "campaign-pipeline: CAMPAIGN_PIPELINE_API_URL must be an http:// or https:// URL, not 'ftp://ads.example.com'.",
    ),
    "a warehouse database that does not exist": (
        lambda dbs, api_url: {
            **dbs,
            "CAMPAIGN_PIPELINE_WAREHOUSE_URL": database.with_database(
                dbs["CAMPAIGN_PIPELINE_WAREHOUSE_URL"], "no_such_database"
            ),
        },
        ["run"],
        "campaign-pipeline: Cannot connect to the PostgreSQL database of CAMPAIGN_PIPELINE_WAREHOUSE_URL (",
    ),
    "an unreachable Dagster storage database": (
        lambda dbs, api_url: {
            **dbs,
            "CAMPAIGN_PIPELINE_DAGSTER_STORAGE_URL": _with_password(dbs["CAMPAIGN_PIPELINE_DAGSTER_STORAGE_URL"]),
        },
        ["run"],
        "campaign-pipeline: Cannot connect to the PostgreSQL database of CAMPAIGN_PIPELINE_DAGSTER_STORAGE_URL "
        "(postgresql://etl:***@127.0.0.1:",
    ),
    "a warehouse URL that is not PostgreSQL": (
        lambda dbs, api_url: {"CAMPAIGN_PIPELINE_WAREHOUSE_URL": f"mysql://root:{SECRET}@db:3306/warehouse"},
        ["run"],
        "campaign-pipeline: CAMPAIGN_PIPELINE_WAREHOUSE_URL must be a PostgreSQL URL such as "
        "postgresql://user:password@host:5432/dbname, not 'mysql://root:***@db:3306/warehouse'.",
    ),
    "an unknown simulator profile": (
        lambda dbs, api_url: {"CAMPAIGN_PIPELINE_API_URL": "", "CAMPAIGN_PIPELINE_SIMULATOR_PROFILE": "wild"},
        ["run"],
        "campaign-pipeline: CAMPAIGN_PIPELINE_SIMULATOR_PROFILE must be one of demo, fast, original, chaos, "
        "not 'wild'.",
    ),
    "an account registry that is a directory": (
        lambda dbs, api_url: {"CAMPAIGN_PIPELINE_ACCOUNTS_FILE": "/"},
        ["run"],
        "campaign-pipeline: The account registry / cannot be read: Is a directory "
        "(set CAMPAIGN_PIPELINE_ACCOUNTS_FILE).",
    ),
    "a state directory that cannot be created": (
        lambda dbs, api_url: {"CAMPAIGN_PIPELINE_HOME": "/proc/campaign-pipeline-home"},
        ["run"],
        "campaign-pipeline: CAMPAIGN_PIPELINE_HOME /proc/campaign-pipeline-home cannot be created: "
        "No such file or directory.",
    ),
    "a code-server port already in use": (
        lambda dbs, api_url: {},
        ["dev", "--code-server-port", "{busy}"],
        "campaign-pipeline: Port {busy} (--code-server-port) is already in use; "
        "choose another with --code-server-port.",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_configuration_stops_at_start_up_with_one_sentence(
    case: str, api: MockApiServer, databases: dict[str, str], tmp_path: Path, figures: Figures
) -> None:
    overrides, args, expected = CASES[case]
    port = _closed_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        values = {"port": port, "busy": busy.getsockname()[1]}
        env = clean_env(
            tmp_path / "home",
            CAMPAIGN_PIPELINE_API_URL=api.url,
            CAMPAIGN_PIPELINE_CREDENTIALS=json.dumps(demo_credentials()),
            CAMPAIGN_PIPELINE_ACCOUNTS_FILE=REGISTRY,
        )
        env.update({key: _fill(value, values) for key, value in overrides(databases, api.url).items()})
        completed = cli(*(_fill(arg, values) for arg in args), env=env, timeout=90)

    figures.bad_configurations_tried += 1
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert completed.stderr.count("\n") == 1, completed.stderr
    assert completed.stderr.startswith(_fill(expected, values)), completed.stderr
    assert SECRET not in completed.stdout + completed.stderr
    assert not (tmp_path / "home" / "pgdata").exists(), "no embedded server is started for a configuration error"


@pytest.mark.slow
def test_a_wrong_password_fails_that_account_naming_the_setting(
    api: MockApiServer, databases: dict[str, str], tmp_path: Path, figures: Figures
) -> None:
    credentials = demo_credentials()
    credentials["globex"]["password"] = SECRET
    env = clean_env(
        tmp_path / "home",
        CAMPAIGN_PIPELINE_API_URL=api.url,
        CAMPAIGN_PIPELINE_CREDENTIALS=json.dumps(credentials),
        CAMPAIGN_PIPELINE_ACCOUNTS_FILE=REGISTRY,
        CAMPAIGN_PIPELINE_RATE_LIMIT="100000",
        CAMPAIGN_PIPELINE_RATE_WINDOW_SECONDS="1",
        **databases,
    )

    completed = cli("run", "--date", "2026-11-27", "--account", "globex", "--account", "initech", env=env)

    figures.bad_configurations_tried += 1
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "  globex               FAILED       -" in completed.stdout
    assert "  initech              ok         100" in completed.stdout
    (line,) = completed.stderr.strip().splitlines()
    assert line.startswith(
        "globex failed: globex|2026-11-27: the platform refused the account's credentials "
        "(HTTP 401 Invalid credentials: The email or password is wrong); "
        "check the account's login in CAMPAIGN_PIPELINE_CREDENTIALS. (log: "
    )
    assert SECRET not in completed.stdout + completed.stderr
