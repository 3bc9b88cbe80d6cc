"""A real simulator (``mock_api``) per session, reset before every test that uses it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from campaign_pipeline.accounts import AccountCredentials
from mock_api.accounts import demo_credentials
from mock_api.testing import MockApiServer

SEED = 7


@pytest.fixture(scope="session")
def fast_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockApiServer]:
    log_path = tmp_path_factory.mktemp("mock_api") / "fast.log"
    with MockApiServer(profile="fast", seed=SEED, log_path=log_path) as server:
        yield server


@pytest.fixture(scope="session")
def fast_faults(fast_server: MockApiServer) -> dict[str, Any]:
    return fast_server.faults()


@pytest.fixture
def api(fast_server: MockApiServer, fast_faults: dict[str, Any]) -> MockApiServer:
    """The session's fault-free simulator with no state left by earlier tests."""
    fast_server.set_faults(fast_faults)
    fast_server.reset()
    return fast_server


def credentials(account_id: str) -> AccountCredentials:
    """The simulator's demo login of ``account_id``."""
    return AccountCredentials(**demo_credentials([account_id])[account_id])
