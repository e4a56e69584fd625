"""Enforcement coverage and the monthly report on a real PostgreSQL: a fixture month of clue
tasks and a draw whose figures were counted by hand (listed in the test), checked in
``GET /stats`` and in the files of ``offsite report monthly``."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from tests.inspection_registry import ECO, NAT, registry

ROOT = Path(__file__).resolve().parents[2]
L = "+08:00"  # local time of the fixture (the settings' default offset)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text + L)


# clue_id, department, kind, created (= clue start = assigned), due, accepted, closed, result
CLUE_TASKS = [
    ("t1", ECO, "exceedance", "2026-10-01T00:30", "2026-10-06T10:00", "2026-10-04T09:00",
     "2026-10-05T12:00", "confirmed"),        # on time; 30 min into October locally
    ("t2", ECO, "exceedance", "2026-10-10T10:00", "2026-10-13T10:00", "2026-10-15T09:00",
     "2026-10-16T12:00", "false_positive"),   # late
    ("t3", ECO, "flatline", "2026-10-20T10:00", "2026-10-23T10:00", None, None, None),  # overdue
    ("t4", ECO, "flatline", "2026-10-25T10:00", "2026-10-28T10:00", "2026-10-26T10:00",
     "2026-11-02T10:00", "confirmed"),        # on time, closed in November
    ("t5", ECO, "exceedance", "2026-09-28T10:00", "2026-10-01T10:00", "2026-09-29T10:00",
     "2026-10-02T12:00", "not_found"),        # September's task, closed in October
    ("t6", NAT, "exceedance", "2026-10-05T10:00", "2026-10-08T10:00", "2026-10-05T11:00",
     "2026-10-06T10:00", "confirmed"),        # another department
]


@pytest.fixture(autouse=True)
def fixed_risk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixture writes its entities' risk by hand: the API's recomputer must not redo
    every entity at start (OFFSITE_RISK_REFRESH_S 0: only entities whose clues change)."""
    monkeypatch.setenv("OFFSITE_RISK_REFRESH_S", "0")


def fixture_month(db: str) -> None:
    with psycopg.connect(db) as conn:
        conn.execute("INSERT INTO stations (id, owner_dept) VALUES ('st-amb', %s)", (ECO,))
        for cid, dept, kind, created, due, accepted, closed, result in CLUE_TASKS:
            conn.execute(
                "INSERT INTO clues (clue_id, modality, kind, rule, subject, state, start, time,"
                " confidence, department, jurisdiction, site, summary) VALUES (%s, 'env', %s,"
                " 'r1', 'st-amb', 'open', %s, %s, 0.9, %s, 'j1', 'site1', 's')",
                (cid, kind, ts(created), ts(created), dept))
            conn.execute(
                "UPDATE tasks SET created_at = %s, assigned_at = %s, due_at = %s,"
                " accepted_at = %s, closed_at = %s, result = %s,"
                " state = CASE WHEN %s::timestamptz IS NOT NULL THEN 'closed' ELSE state END"
                " WHERE clue_id = %s",
                (ts(created), ts(created), ts(due), accepted and ts(accepted),
                 closed and ts(closed), result, closed and ts(closed), cid))
    # the API's risk recomputer takes up the imported entities: let it finish, then set
    # their risk by hand (the coverage figures read it; how it is computed is not tested here)
    deadline = time.monotonic() + 30
    with psycopg.connect(db, autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM entity_risk_dirty").fetchone() != (0,):
            assert time.monotonic() < deadline, "the risk recomputer never caught up"
            time.sleep(0.1)
        time.sleep(0.5)  # a recompute already taken from the queue commits its rows
        conn.execute("INSERT INTO entity_risk (entity, score, level) VALUES"
                     " ('ent-a', 0.9, 'high'), ('ent-b', 0.5, 'high') ON CONFLICT (entity)"
                     " DO UPDATE SET score = EXCLUDED.score, level = EXCLUDED.level")


# the hand count for ECO, October 2026 (local)
EXPECTED_COVERAGE = {
    "clues_acted_on_time": {"tasks": 4, "on_time": 2, "late": 1, "overdue": 1, "pending": 0,
                            "share_on_time": 0.5},
    "confirmed_rate": {"exceedance": {"reports": 3, "confirmed": 1, "rate": 1 / 3}},
    "draws": {"planned": 3, "done": 1, "open": 2, "share_done": 1 / 3},
    "high_risk_never_inspected": [{"entity": "ent-b", "name": "企业ent-b", "score": 0.5}],
}
# t1 3d08:30, t2 4d23h, t4 1d, the drawn task 1d -> median (1d + 3d08:30) / 2
MEDIAN_ACCEPT = (86400 + 289800) / 2
# closed in October: t5 4d02h, t1 4d11:30, t2 6d02h, the drawn task 1d02h
MEDIAN_CLOSE = (352800 + 387000) / 2


def test_coverage_and_monthly_report_match_a_hand_count(api, make_user, fresh_db, tmp_path):  # type: ignore[no-untyped-def]
    registry(fresh_db)
    admin = make_user("root", "hq", "admin")
    make_user("eco-1", ECO, "inspector")
    make_user("eco-2", ECO, "inspector")
    fixture_month(fresh_db)
    draw = api.post("/inspections/draws", headers=admin, json={
        "department": ECO, "from": "2026-10-01", "to": "2026-10-31", "count": 3, "seed": 9})
    assert draw.status_code == 201, draw.text
    drawn = {i["entity"] for i in draw.json()["items"]}
    assert "ent-a" in drawn and len(drawn) == 3  # the highest-risk entity is always drawn
    with psycopg.connect(fresh_db) as conn:  # ent-a was inspected on 20 October
        conn.execute(
            "UPDATE tasks SET created_at = %s, assigned_at = %s, accepted_at = %s,"
            " closed_at = %s, state = 'closed', result = 'confirmed'"
            " WHERE task_kind = 'draw' AND entity = 'ent-a'",
            (ts("2026-10-19T10:00"), ts("2026-10-19T10:00"), ts("2026-10-20T10:00"),
             ts("2026-10-20T12:00")))

    stats = api.get("/stats", headers=admin, params={
        "department": ECO, "since": "2026-10-01T00:00:00+08:00",
        "until": "2026-11-01T00:00:00+08:00"}).json()
    assert stats["coverage"] == EXPECTED_COVERAGE
    assert stats["clues_raised"] == 4
    assert stats["tasks"] == {"assigned": 5, "accepted": 4, "closed": 4, "overdue_now": 1 + 2}
    assert stats["median_time_to_accept_s"] == MEDIAN_ACCEPT
    assert stats["median_time_to_close_s"] == MEDIAN_CLOSE

    out = tmp_path / "report"
    env = {**os.environ, "OFFSITE_DATABASE_URL": fresh_db, "COLUMNS": "200"}
    run = subprocess.run([sys.executable, "-m", "offsite", "report", "monthly", "--department",
                          ECO, "--month", "2026-10", "--out", str(out)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    with (out / "report.csv").open(encoding="utf-8-sig", newline="") as f:
        got = {(r["section"], r["item"]): r["value"] for r in csv.DictReader(f)}
    want = {("work", "clues_raised"): "4", ("work", "tasks_assigned"): "5",
            ("work", "tasks_closed"): "4",
            ("work", "median_time_to_accept_s"): str(MEDIAN_ACCEPT),
            ("timeliness", "tasks"): "4", ("timeliness", "on_time"): "2",
            ("timeliness", "late"): "1", ("timeliness", "overdue"): "1",
            ("timeliness", "share_on_time"): "0.5",
            ("confirmed_rate", "exceedance.reports"): "3",
            ("confirmed_rate", "exceedance.confirmed"): "1",
            ("draws", "planned"): "3", ("draws", "done"): "1", ("draws", "open"): "2",
            ("high_risk_never_inspected", "ent-b"): "0.5"}
    assert {k: got.get(k) for k in want} == want
    assert float(got[("confirmed_rate", "exceedance.rate")]) == 1 / 3
    assert ("confirmed_rate", "flatline.reports") not in got
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == 3
    assert "月度执法监管报告" in page and "Monthly enforcement report" in page
    assert page.index("按时处置率") < page.index("share acted on in time")
