"""Jobs that the run launcher tests launch: each reports its process, one waits to be stopped."""

# No `from __future__ import annotations`: Dagster reads the op's config class from its annotation.
import os
import time
from pathlib import Path

import dagster as dg


class ReportConfig(dg.Config):
    """Where the op writes what it saw."""

    report_path: str
    wait_seconds: float = 0.0


@dg.op
def report_process(config: ReportConfig) -> None:
    """Write this process's id and its parent's, then wait ``wait_seconds`` (an interruptible sleep)."""
    Path(config.report_path).write_text(f"{os.getpid()} {os.getppid()}")
    deadline = time.monotonic() + config.wait_seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


@dg.job(executor_def=dg.in_process_executor)
def report_process_job() -> None:
    """One op that reports its process, run in the run's own process."""
    report_process()
