"""Headless Chromium (Debian's ``chromium`` package) for looking at the Dagster UI as a person would."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

# Without the networking flags Chromium keeps dialling Google's hosts, which this
# machine's closed network refuses; as root it needs --no-sandbox.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000", "--virtual-time-budget=20000",
)
TIMEOUT_SECONDS = 90


def _chromium() -> str:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, but CI must run the browser tests (.ci/run installs it).")
        pytest.skip("chromium is not installed: apt-get install chromium (.ci/run installs it)")
    return executable


def _run(*args: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        completed = subprocess.run(
            [_chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=True,
        )
    return completed.stdout


def page_text(url: str) -> str:
    """The visible text of ``url`` once its scripts have run, whitespace folded."""
    dom = _run("--dump-dom", url)
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def screenshot(url: str, path: Path) -> Path:
    """Save a PNG of ``url`` to ``path`` (kept as a test artifact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(f"--screenshot={path}", url)
    return path
