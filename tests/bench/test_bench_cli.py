"""``offsite bench storage --quick`` prints one JSON line with its figures."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from offsite.cli import app


def test_bench_storage_quick_prints_one_json_line() -> None:
    result = CliRunner().invoke(app, ["bench", "storage", "--quick"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    figures = json.loads(lines[-1])
    assert figures["benchmark"] == "storage" and figures["quick"] is True
    for key in ("readings", "clues", "p50_ms", "p95_ms", "no_index_p95_ms", "goal_p95_ms"):
        assert key in figures
    assert figures["clues"] > 0 and figures["p95_ms"] > 0
