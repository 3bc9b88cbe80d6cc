"""Partitions: one partition per account and day.

The account dimension is dynamic: the ``account_registry_sensor`` keeps it in
step with the account registry. Dagster does not validate dynamic keys, so
every key is validated by :func:`campaign_pipeline.accounts.validate_account_id`
before it is added and when a run reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import dagster as dg

from campaign_pipeline.accounts import validate_account_id

ACCOUNT_DIMENSION = "account"
DATE_DIMENSION = "date"

account_partitions = dg.DynamicPartitionsDefinition(name=ACCOUNT_DIMENSION)


def build_campaign_partitions(start_date: date) -> dg.MultiPartitionsDefinition:
    """Daily dates from ``start_date`` (UTC) times the accounts of the registry.

    Multi-partition keys join the dimensions in name order: ``"acme-retail|2026-11-27"``.
    """
    return dg.MultiPartitionsDefinition(
        {
            ACCOUNT_DIMENSION: account_partitions,
            DATE_DIMENSION: dg.DailyPartitionsDefinition(start_date=start_date.isoformat(), timezone="UTC"),
        }
    )


@dataclass(frozen=True)
class AccountDay:
    """The account and the day of one partition."""

    account_id: str
    day: date

    @property
    def partition_key(self) -> dg.MultiPartitionKey:
        return dg.MultiPartitionKey({ACCOUNT_DIMENSION: self.account_id, DATE_DIMENSION: self.day.isoformat()})

    def __str__(self) -> str:
        return f"{self.account_id}|{self.day.isoformat()}"


def account_day_from_key(partition_key: str | dg.MultiPartitionKey) -> AccountDay:
    """Parse a partition key into an :class:`AccountDay`, validating the account id.

    ``context.partition_key`` is a ``MultiPartitionKey`` for most runs but a
    plain ``"account|date"`` string for a run launched with only the
    ``dagster/partition`` tag, so both are accepted.
    """
    if isinstance(partition_key, dg.MultiPartitionKey):
        dimensions = partition_key.keys_by_dimension
    else:
        account_id, separator, day = str(partition_key).partition("|")
        if not separator:
            raise ValueError(f"Partition key {partition_key!r} is not of the form 'account|YYYY-MM-DD'.")
        dimensions = {ACCOUNT_DIMENSION: account_id, DATE_DIMENSION: day}
    return AccountDay(
        account_id=validate_account_id(dimensions[ACCOUNT_DIMENSION]),
        day=date.fromisoformat(dimensions[DATE_DIMENSION]),
    )
