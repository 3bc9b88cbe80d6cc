from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from campaign_pipeline.accounts import AccountConfigError
from campaign_pipeline.partitions import AccountDay, account_day_from_key, build_campaign_partitions


def test_keys_join_account_then_date():
    partitions_def = build_campaign_partitions(date(2026, 11, 1))
    assert [d.name for d in partitions_def.partitions_defs] == ["account", "date"]
    key = AccountDay("acme-retail", date(2026, 11, 27)).partition_key
    assert str(key) == "acme-retail|2026-11-27"
    assert partitions_def.get_partition_key_from_str("acme-retail|2026-11-27") == key


@pytest.mark.parametrize(
    "key",
    ["acme-retail|2026-11-27", dg.MultiPartitionKey({"account": "acme-retail", "date": "2026-11-27"})],
)
def test_string_and_multi_keys_parse_alike(key):
    assert account_day_from_key(key) == AccountDay("acme-retail", date(2026, 11, 27))


def test_invalid_account_in_a_key_is_refused():
    with pytest.raises(AccountConfigError, match="'a,b' is invalid"):
        account_day_from_key("a,b|2026-11-27")
    with pytest.raises(ValueError) as malformed:
        account_day_from_key("acme-retail")
    assert str(malformed.value) == "Partition key 'acme-retail' is not of the form 'account|YYYY-MM-DD'."
