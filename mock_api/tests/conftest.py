"""One simulator process per test session, reset before every test that uses it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mock_api.testing import MockApiServer

SEED = 7


@pytest.fixture(scope="session")
def session_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockApiServer]:
    log_path = tmp_path_factory.mktemp("mock_api") / "server.log"
    with MockApiServer(profile="fast", seed=SEED, log_path=log_path) as server:
        yield server


@pytest.fixture(scope="session")
def fast_faults(session_server: MockApiServer) -> dict[str, Any]:
    return session_server.faults()


@pytest.fixture
def api(session_server: MockApiServer, fast_faults: dict[str, Any]) -> MockApiServer:
    """The session's simulator with the fast profile's settings and no state."""
    session_server.start()
    session_server.set_faults(fast_faults)
    session_server.reset()
    return session_server


@pytest.fixture
def http(api: MockApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=5.0, trust_env=False) as client:
        yield client
