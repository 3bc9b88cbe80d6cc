from __future__ import annotations

import resource
import signal
from datetime import date

import dagster as dg
import pandas as pd
import pytest

from campaign_pipeline.io_managers import ParquetIOManager
from campaign_pipeline.warehouse.frame import campaigns_to_frame

PARTITION = "acme-retail|2026-11-27"


def _output_context() -> dg.OutputContext:
    return dg.build_output_context(asset_key=dg.AssetKey("campaign_snapshots"), partition_key=PARTITION)


def _record(number: int) -> dict:
    return {
        "id": f"campaign_{number}", "name": f"Campaign {number}", "status": "active", "budget": 10,
        "impressions": 5, "clicks": 1, "conversions": 0, "created_at": "2026-11-01T08:00:00Z",
    }


def test_a_frame_is_stored_in_one_file_per_account_and_day_and_read_back_exactly(tmp_path):
    manager = ParquetIOManager(base_dir=str(tmp_path))
    frame = campaigns_to_frame([_record(1), _record(2)], account_id="acme-retail", day=date(2026, 11, 27))

    manager.handle_output(_output_context(), frame)
    loaded = manager.load_input(
        dg.build_input_context(asset_key=dg.AssetKey("campaign_snapshots"), partition_key=PARTITION)
    )

    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet*")) == [
        "campaign_snapshots/acme-retail/2026-11-27.parquet"
    ]
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True)


@pytest.fixture
def file_size_limit():
    """Files of this process may grow to 64 KiB, as on a full disk: a longer write fails with EFBIG."""
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    yield
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, previous_handler)


def test_a_write_that_fails_leaves_neither_a_partial_file_nor_a_changed_one(tmp_path, request):
    manager = ParquetIOManager(base_dir=str(tmp_path))
    good = campaigns_to_frame([_record(1)], account_id="acme-retail", day=date(2026, 11, 27))
    manager.handle_output(_output_context(), good)
    stored = tmp_path / "campaign_snapshots" / "acme-retail" / "2026-11-27.parquet"
    before = stored.read_bytes()
    large = campaigns_to_frame(
        [_record(number) | {"name": f"Campaign {number} " * 8} for number in range(20_000)],
        account_id="acme-retail",
        day=date(2026, 11, 27),
    )
    request.getfixturevalue("file_size_limit")

    with pytest.raises(OSError, match="File too large"):
        manager.handle_output(_output_context(), large)

    assert [path.name for path in stored.parent.iterdir()] == ["2026-11-27.parquet"]
    assert stored.read_bytes() == before
