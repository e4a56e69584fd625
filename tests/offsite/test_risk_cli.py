"""``offsite risk recompute | list`` as an operator runs them, on a real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.risk_world import ES1_ZONES, add_clue, import_world

ROOT = Path(__file__).resolve().parents[2]


def offsite(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "OFFSITE_DATABASE_URL": db}
    return subprocess.run([sys.executable, "-m", "offsite", "risk", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_recompute_and_list(fresh_db: str, tmp_path: Path) -> None:
    import_world(fresh_db, tmp_path)
    now = datetime.now(UTC)
    add_clue(fresh_db, "rep-1", kind="replay", subject="LX-0001", start=now, time=now,
             state="open", zones=ES1_ZONES)
    one = offsite("recompute", "--entity", "E-1", db=fresh_db)
    assert one.returncode == 0, one.stderr
    entity, score, level, clues = one.stdout.strip().split("\t")
    assert (entity, level, clues) == ("E-1", "low", "1 clue(s)")
    assert float(score) == pytest.approx(3 + 1, abs=0.01)
    every = offsite("recompute", db=fresh_db)
    assert [line.split("\t")[0] for line in every.stdout.splitlines()] == ["E-1", "E-2", "E-3"]
    assert "3 entities recomputed" in every.stderr
    listed = offsite("list", db=fresh_db)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split("\t")[:3] == ["entity", "score", "level"]
    assert [r.split("\t")[0] for r in rows][0] == "E-1"
    assert offsite("list", "--level", "high", db=fresh_db).stdout.splitlines()[1:] == []
    missing = offsite("recompute", "--entity", "NOPE", db=fresh_db)
    assert missing.returncode == 1 and "NOPE: no such entity" in missing.stderr
    assert offsite("list", "--level", "extreme", db=fresh_db).returncode == 2
    # a later clue shows after the next recompute
    add_clue(fresh_db, "exc-1", kind="exceedance", subject="LX-9001",
             start=now - timedelta(hours=1), time=now, end=now)
    again = offsite("recompute", "-e", "E-1", db=fresh_db).stdout.split("\t")
    assert float(again[1]) == pytest.approx(3 + 1 + 2, abs=0.01) and again[2] == "medium"
