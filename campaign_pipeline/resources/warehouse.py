"""``WarehouseResource``: the Dagster face of :class:`campaign_pipeline.warehouse.Warehouse`.

Definitions pass the URL as ``url=dagster.EnvVar("CAMPAIGN_PIPELINE_WAREHOUSE_URL")``:
it may hold a password, so the field is left out of the resource's ``repr``.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from campaign_pipeline.database import libpq_url
from campaign_pipeline.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The PostgreSQL warehouse: hands out this process's shared, migrated :class:`Warehouse`."""

    url: str = Field(
        repr=False,
        description="PostgreSQL URL of the warehouse database: pass EnvVar('CAMPAIGN_PIPELINE_WAREHOUSE_URL').",
    )
    statement_timeout_seconds: float = Field(
        default=300, gt=0, description="Longest one SQL statement may run before PostgreSQL cancels it."
    )
    max_connections: int = Field(default=4, gt=0, description="Most connections this process's pool opens.")

    def get_warehouse(self) -> Warehouse:
        """Return the process's writer for this database, migrating the schema on its first use."""
        warehouse = Warehouse.shared(
            libpq_url(self.url),
            statement_timeout_seconds=self.statement_timeout_seconds,
            max_connections=self.max_connections,
        )
        warehouse.ensure_migrated()
        return warehouse
