import base64
import json
import re
from collections.abc import Callable, Iterator
from datetime import date

import dagster as dg
import pydantic
import pytest

from campaign_pipeline.accounts import AccountConfigError
from campaign_pipeline.ad_platform import PostgresSlidingWindowLimiter, SlidingWindowLimiter
from campaign_pipeline.resources.ad_platform import AdPlatformResource
from mock_api.accounts import demo_credentials
from mock_api.testing import MockApiServer

CREDENTIALS = json.dumps(demo_credentials(["acme-retail", "globex"]))
PASSWORD = demo_credentials(["acme-retail"])["acme-retail"]["password"]
DAY = date(2026, 11, 27)


@pytest.fixture(scope="module")
def server() -> Iterator[MockApiServer]:
    with MockApiServer(profile="fast", seed=1) as running:
        yield running


def test_repr_and_str_show_no_secret() -> None:
    resource = AdPlatformResource(
        base_url="http://127.0.0.1:9",
        credentials=CREDENTIALS,
        limiter_url="postgresql://pipeline:hunter2-db@db.example.com/warehouse",
    )
    for shown in (repr(resource), str(resource)):
        assert PASSWORD not in shown
        assert "hunter2-db" not in shown
        assert "http://127.0.0.1:9" in shown


def test_fields_become_the_client_config() -> None:
    resource = AdPlatformResource(
        base_url="http://127.0.0.1:9",
        credentials=CREDENTIALS,
        rate_limit=20,
        rate_window_seconds=2.0,
        page_size=50,
        sync_workers=4,
        read_timeout_seconds=3.0,
        partition_deadline_seconds=600.0,
    )
    config = resource.client_config()
    assert (config.rate_limit, config.rate_window_seconds, config.page_size, config.sync_workers) == (20, 2.0, 50, 4)
    assert (config.read_timeout_seconds, config.partition_deadline_seconds) == (3.0, 600.0)


def test_bad_settings_fail_at_start_naming_the_field() -> None:
    with pytest.raises(pydantic.ValidationError, match="rate_limit"):
        AdPlatformResource(base_url="http://127.0.0.1:9", credentials=CREDENTIALS, rate_limit=0)


def test_get_client_builds_a_client_of_the_account_sharing_one_limiter() -> None:
    resource = AdPlatformResource(base_url="http://127.0.0.1:9", credentials=CREDENTIALS, rate_limit=7)
    with resource.get_client("acme-retail") as first, resource.get_client("globex") as second:
        assert (first.account_id, second.account_id) == ("acme-retail", "globex")
        assert first._limiter is second._limiter
        assert isinstance(first._limiter, SlidingWindowLimiter)
        assert first._limiter.limit == 7


def test_limiter_url_shares_the_window_through_postgresql(make_database: Callable[[str], str]) -> None:
    resource = AdPlatformResource(
        base_url="http://127.0.0.1:9", credentials=CREDENTIALS, limiter_url=make_database("limiter")
    )
    with resource.get_client("acme-retail") as client:
        assert isinstance(client._limiter, PostgresSlidingWindowLimiter)
        client._limiter.close()


def test_account_without_credentials_names_the_account_never_a_secret() -> None:
    resource = AdPlatformResource(base_url="http://127.0.0.1:9", credentials=CREDENTIALS)
    with pytest.raises(AccountConfigError) as raised:
        resource.get_client("initech")
    assert str(raised.value) == "CAMPAIGN_PIPELINE_CREDENTIALS has no entry for account 'initech'."


def test_invalid_account_id_is_refused() -> None:
    resource = AdPlatformResource(base_url="http://127.0.0.1:9", credentials=CREDENTIALS)
    with pytest.raises(AccountConfigError, match=re.escape("Account id 'acme|x' is invalid")):
        resource.get_client("acme|x")


def test_malformed_credentials_are_not_quoted() -> None:
    resource = AdPlatformResource(base_url="http://127.0.0.1:9", credentials='{"acme-retail": "hunter2-pw"')
    with pytest.raises(AccountConfigError) as raised:
        resource.get_client("acme-retail")
    assert "hunter2-pw" not in str(raised.value)
    assert str(raised.value).startswith("CAMPAIGN_PIPELINE_CREDENTIALS is not valid JSON")


def test_a_run_reads_the_secret_from_its_env_var_and_logs_none_of_it(
    server: MockApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.reset()
    monkeypatch.setenv("CAMPAIGN_PIPELINE_CREDENTIALS", CREDENTIALS)
    accounts = dg.StaticPartitionsDefinition(["acme-retail"])

    @dg.asset(partitions_def=accounts)
    def synced_campaigns(context: dg.AssetExecutionContext, ad_platform: AdPlatformResource) -> int:
        context.log.info(f"resource in the run: {ad_platform!r}")
        with ad_platform.get_client(context.partition_key, logger=context.log) as client:
            campaigns = client.fetch_campaigns(DAY)
            report = client.sync_campaigns([campaign["id"] for campaign in campaigns[:3]])
            context.add_output_metadata(client.stats.as_metadata())
        return len(report.synced)

    instance = dg.DagsterInstance.ephemeral()
    resource = AdPlatformResource(base_url=server.url, credentials=dg.EnvVar("CAMPAIGN_PIPELINE_CREDENTIALS"))
    result = dg.materialize(
        [synced_campaigns], resources={"ad_platform": resource}, partition_key="acme-retail", instance=instance
    )
    assert result.success
    assert result.output_for_node("synced_campaigns") == 3
    logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
    everything = "\n".join(logs) + repr(result.asset_materializations_for_node("synced_campaigns"))
    assert f"[account=acme-retail partition=acme-retail run={result.run_id}] listed 100 campaigns" in everything
    assert f"resource in the run: AdPlatformResource(base_url='{server.url}'" in everything
    login = demo_credentials(["acme-retail"])["acme-retail"]
    basic = base64.b64encode(f"{login['email']}:{login['password']}".encode()).decode()
    secrets = [login["password"], basic, *server.tokens()]
    assert len(secrets) == 3
    for secret in secrets:
        assert secret not in everything
