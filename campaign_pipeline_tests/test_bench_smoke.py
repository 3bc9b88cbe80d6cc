"""The benchmark runner works end to end: its two cheapest benchmarks in quick mode write a judged report."""

from __future__ import annotations

import json
import re

from bench.__main__ import main


def test_quick_loading_and_simulator_write_a_report_with_every_aim_judged(postgres_admin_url, tmp_path):
    report = tmp_path / "RESULTS.md"

    status = main(
        ["--quick", "--only", "loading,simulator", "--postgres-url", postgres_admin_url, "--output", str(report)]
    )

    assert status == 0
    text = report.read_text()
    summary = [line for line in text.splitlines() if re.match(r"^\| [45] \|", line)]
    assert [line.split(" | ")[1] for line in summary] == [
        "partition upsert vs raw COPY (20,000 rows)",
        "partition upsert vs to_sql(method='multi')",
        "peak memory of the load process",
        "simulator list requests/s, cached / built from scratch",
        "hanging requests held",
    ]
    assert [line.rstrip(" |").rsplit("| ", 1)[1] in ("met", "**missed**", "-") for line in summary] == [True] * 5
    assert summary[-1].endswith("| - | - |")
    figures = json.loads(text.split("```json\n", 1)[1].split("\n```", 1)[0])
    assert set(figures) == {"loading", "simulator"}
    assert figures["loading"]["rows"] == 20_000
    assert figures["loading"]["to_sql"]["rows"] == 2_000
    assert figures["loading"]["target_copy"]["seconds"] > 0 and figures["loading"]["next_day"]["seconds"] > 0
    assert "into empty copies of the two tables a load writes" in text
    assert figures["simulator"]["hangs"]["hanging_requests"] == 100
    assert figures["simulator"]["list_cached"]["failures"] == 0
    assert "## 4. Loading" in text and "## 5. The simulator's own rate" in text
