"""The chaos suite: figures added up across tests, and the report written from the long form.

``make chaos`` (``pytest -m slow``) runs the whole suite: the slow tests and,
marked slow here for that run, the quick slice that ``make test`` runs on its
own. When that run covers every test of the suite and all pass, its figures go to
``docs/RESILIENCE.md``; every run leaves them in ``.campaign_pipeline/chaos/figures.json``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from campaign_pipeline_tests.chaos import report
from campaign_pipeline_tests.chaos.support import REPO_ROOT, Figures

CHAOS_DIR = Path(__file__).resolve().parent
FIGURES = Figures()
_RUN: dict[str, Any] = {"started": time.monotonic(), "long_form": False, "selected": 0, "passed": 0, "failed": 0}


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    """The figures of this session, which each test adds to."""
    yield FIGURES


@pytest.fixture(autouse=True)
def _count_test(request: pytest.FixtureRequest) -> None:
    FIGURES.tests.append(request.node.nodeid)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``-m slow`` (``make chaos``), run the quick slice too: the long form is the whole suite."""
    _RUN["commit"] = _commit()
    chaos_items = [item for item in items if CHAOS_DIR in Path(str(item.fspath)).resolve().parents]
    _RUN["selected"] = len(chaos_items)
    modules = {Path(str(item.fspath)).name for item in chaos_items}
    whole_suite = modules == {path.name for path in CHAOS_DIR.glob("test_*.py")} and not config.option.keyword
    if (config.option.markexpr or "").strip() != "slow":
        return
    for item in chaos_items:
        item.add_marker(pytest.mark.slow)
    _RUN["long_form"] = whole_suite


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.outcome == "failed":
        _RUN["failed"] += 1
    elif report.when == "call" and report.outcome == "passed":
        _RUN["passed"] += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the figures; after a passing long form, write docs/RESILIENCE.md from them too."""
    if not FIGURES.tests:
        return
    meta = {
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _RUN.get("commit") or _commit(),
        "seconds": round(time.monotonic() - _RUN["started"]),
        "tests_passed": _RUN["passed"],
        "tests_failed": _RUN["failed"],
        "command": "make chaos" if _RUN["long_form"] else "pytest (quick slice)",
    }
    out = REPO_ROOT / ".campaign_pipeline" / "chaos" / "figures.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "figures": FIGURES.as_json()}, indent=2, sort_keys=True))
    if _RUN["long_form"] and exitstatus == 0 and _RUN["failed"] == 0 and _RUN["passed"] == _RUN["selected"]:
        (REPO_ROOT / "docs").mkdir(exist_ok=True)
        (REPO_ROOT / "docs" / "RESILIENCE.md").write_text(report.render(FIGURES.as_json(), meta))


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")
