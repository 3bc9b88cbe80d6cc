from collections.abc import Iterator
from datetime import date
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import psycopg
import pydantic
import pytest

from campaign_pipeline.resources.warehouse import WarehouseResource
from campaign_pipeline.warehouse import Warehouse

PASSWORD = "hunter2-db"


@pytest.fixture(autouse=True)
def close_shared_writers() -> Iterator[None]:
    yield
    Warehouse.close_shared()


def url_with_password(url: str, password: str) -> str:
    """Return ``url`` logging in with ``password``; the test servers trust local users and ignore it."""
    parts = urlsplit(url)
    user_info, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user_info.split(':')[0]}:{password}@{host}"))


def test_repr_and_str_show_no_password() -> None:
    resource = WarehouseResource(url=f"postgresql://pipeline:{PASSWORD}@db.example.com/warehouse", max_connections=2)

    for shown in (repr(resource), str(resource)):
        assert PASSWORD not in shown
        assert "max_connections=2" in shown


def test_bad_settings_fail_at_start_naming_the_field() -> None:
    with pytest.raises(pydantic.ValidationError, match="statement_timeout_seconds"):
        WarehouseResource(url="postgresql://localhost/warehouse", statement_timeout_seconds=0)
    with pytest.raises(pydantic.ValidationError, match="max_connections"):
        WarehouseResource(url="postgresql://localhost/warehouse", max_connections=0)


def test_get_warehouse_returns_one_migrated_writer_per_process(warehouse_url: str) -> None:
    resource = WarehouseResource(url=warehouse_url.replace("postgresql://", "postgresql+psycopg2://", 1))

    warehouse = resource.get_warehouse()

    assert WarehouseResource(url=warehouse_url).get_warehouse() is warehouse
    with psycopg.connect(warehouse_url) as connection:
        versions = connection.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert versions == [("0001_initial_schema",), ("0002_metrics_fillfactor_50",), ("0003_campaigns_fillfactor_50",),
                        ("0004_partition_loads",)]


def test_inside_a_run_the_url_comes_from_the_environment_and_is_never_shown(
    warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_WAREHOUSE_URL", url_with_password(warehouse_url, PASSWORD))

    @dg.asset
    def stored_rows(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> int:
        context.log.info(f"resource: {warehouse!r}; writer: {warehouse.get_warehouse()!r}")
        return warehouse.get_warehouse().partition_row_count("acme-retail", date(2026, 11, 27))

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [stored_rows],
        resources={"warehouse": WarehouseResource(url=dg.EnvVar("TEST_WAREHOUSE_URL"))},
        instance=instance,
    )

    assert result.success
    assert result.output_for_node("stored_rows") == 0
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert "resource: WarehouseResource(statement_timeout_seconds=300, max_connections=4); writer: Warehouse(" in (
        "\n".join(logged)
    )
    assert not any(PASSWORD in line for line in logged)
