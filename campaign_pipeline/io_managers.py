"""Parquet storage of the DataFrames passed between assets.

Parquet keeps the frame's types exactly (dates, UTC timestamps, exact
decimals, strings), where pickling would tie stored data to the versions of
pandas and Python that wrote it. Each partition is one file, written to a
temporary name, flushed to disk and renamed into place, so that neither a
crash nor a power cut leaves half a file, and a failed write leaves nothing.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd


class ParquetIOManager(dg.ConfigurableIOManager):
    """Stores each partition of a DataFrame asset as ``<base_dir>/<asset>/<partition>.parquet``."""

    base_dir: str

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
        try:
            obj.to_parquet(partial, index=False)
            with partial.open("rb") as written:
                os.fsync(written.fileno())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        _fsync_directory(path.parent)
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        path = self._path(context)
        if not path.exists():
            raise FileNotFoundError(f"No stored frame at {path}: materialize the upstream partition first.")
        return pd.read_parquet(path)

    def _path(self, context: dg.OutputContext | dg.InputContext) -> Path:
        partition = context.asset_partition_key if context.has_asset_partitions else "all"
        # Account ids cannot hold "|" or "/", so "account|date" maps to one file per account and day.
        return Path(self.base_dir, *context.asset_key.path, *str(partition).split("|")).with_suffix(".parquet")


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
