"""Shared fixtures: a real PostgreSQL server and fresh databases on it.

By default the tests start (or reuse) the embedded server in
``.campaign_pipeline/test-pgdata``. With ``CAMPAIGN_PIPELINE_TEST_POSTGRES_URL``
set to the admin URL of an external server, they use that server instead;
``.ci/run`` does both.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from campaign_pipeline import database

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_POSTGRES_URL = "CAMPAIGN_PIPELINE_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """Admin URL of the server the tests run against (embedded unless configured)."""
    external = os.environ.get(TEST_POSTGRES_URL, "").strip()
    if external:
        return database.libpq_url(external)
    return database.start_embedded_server(REPO_ROOT / ".campaign_pipeline" / "test-pgdata")


@pytest.fixture(scope="session")
def make_database(postgres_admin_url: str) -> Iterator[Callable[[str], str]]:
    """Factory of fresh, uniquely named databases, dropped at the end of the session."""
    created: list[str] = []

    def make(purpose: str = "test") -> str:
        name = f"cpt_{purpose}_{uuid.uuid4().hex[:8]}"
        database.ensure_database(postgres_admin_url, name)
        created.append(name)
        return database.with_database(postgres_admin_url, name)

    yield make
    for name in created:
        database.drop_database(postgres_admin_url, name)


@pytest.fixture
def warehouse_url(make_database: Callable[[str], str]) -> str:
    """URL of an empty database for one test."""
    return make_database("wh")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a PostgreSQL server, so CI can rerun them on an external one."""
    for item in items:
        if "postgres_admin_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
