"""Work statistics on a real PostgreSQL: counts, medians, false-positive rate, access."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest


@pytest.fixture()
def client(tmp_path, monkeypatch, request):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("OFFSITE_MQTT_URL", raising=False)
    monkeypatch.setenv("OFFSITE_STATE_DIR", str(tmp_path))
    return request.getfixturevalue("api")


def clue(db: str, clue_id: str, department: str, kind: str, start: datetime) -> int:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO clues (clue_id, modality, kind, rule, subject, state, start, time,"
            " confidence, department) VALUES (%s, 'env', %s, 'r', 's1', 'open', %s, %s, 0.8, %s)",
            (clue_id, kind, start, start, department))
        return conn.execute("SELECT id FROM tasks WHERE clue_id = %s", (clue_id,)).fetchone()[0]


def test_stats(client, make_user, fresh_db):  # type: ignore[no-untyped-def]
    insp = make_user("sa", "deptA", "inspector")
    boss = make_user("ba", "deptA", "department_user")
    other = make_user("bb", "deptB", "department_user")
    admin = make_user("adm", "hq", "admin")
    make_user("sb", "deptB", "inspector")
    now = datetime.now(UTC)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("INSERT INTO stations (id, owner_dept) VALUES ('s1', 'deptA'),"
                     " ('s2', 'deptB')")
        for i in range(5):
            conn.execute("INSERT INTO readings (time, station, code, period, value, source)"
                         " VALUES (%s, 's1', 'a34004', 'hour', 1.0, 'test')",
                         (now - timedelta(hours=i + 1),))
        conn.execute("INSERT INTO readings (time, station, code, period, value, source)"
                     " VALUES (%s, 's2', 'a34004', 'hour', 1.0, 'test')",
                     (now - timedelta(hours=1),))
    ids = {cid: clue(fresh_db, cid, "deptA", kind, now - timedelta(hours=1))
           for cid, kind in (("e1", "exceedance"), ("e2", "exceedance"), ("f1", "flatline"))}
    clue(fresh_db, "b1", "deptB", "exceedance", now - timedelta(hours=1))
    old = clue(fresh_db, "old", "deptA", "exceedance", now - timedelta(days=90))
    with psycopg.connect(fresh_db, autocommit=True) as conn:  # an old, closed task
        conn.execute("UPDATE tasks SET assigned_at = %s, created_at = %s, accepted_at = %s,"
                     " closed_at = %s, state = 'closed', result = 'false_positive'"
                     " WHERE id = %s", (now - timedelta(days=90),) * 4 + (old,))

    for cid, result in (("e1", "false_positive"), ("e2", "confirmed")):
        assert client.post(f"/tasks/{ids[cid]}/accept", headers=insp).status_code == 200
        got = client.post(f"/tasks/{ids[cid]}/report", headers=insp, json={"result": result})
        assert got.status_code == 200, got.text

    since = (now - timedelta(days=1)).isoformat()
    params = {"department": "deptA", "since": since}
    stats = client.get("/stats", params=params, headers=boss)
    assert stats.status_code == 200, stats.text
    s = stats.json()
    assert s["readings_received"] == 5 and s["clues_raised"] == 3
    assert s["tasks"] == {"assigned": 3, "accepted": 2, "closed": 2, "overdue_now": 0}
    assert s["median_time_to_accept_s"] >= 0 and s["median_time_to_close_s"] >= 0
    assert s["false_positive_rate"] == {"exceedance": {
        "reports": 2, "false_positive": 1, "confirmed": 1, "not_found": 0, "rate": 0.5}}

    # the department's own view by default; another department's is not found
    own = client.get("/stats", params={"since": since}, headers=insp).json()
    assert own["department"] == "deptA"
    assert {k: v for k, v in own.items() if k != "until"} == \
        {k: v for k, v in s.items() if k != "until"}
    assert client.get("/stats", params=params, headers=other).status_code == 404
    everything = client.get("/stats", params={"since": since}, headers=admin).json()
    assert everything["department"] is None
    assert everything["readings_received"] == 6 and everything["clues_raised"] == 4
    # the whole period includes the old task
    wide = client.get("/stats", headers=admin, params={
        "department": "deptA", "since": (now - timedelta(days=365)).isoformat()}).json()
    assert wide["false_positive_rate"]["exceedance"]["reports"] == 3
    assert wide["tasks"]["closed"] == 3
    assert client.get("/stats", headers=admin, params={
        "since": now.isoformat(), "until": (now - timedelta(days=1)).isoformat()}
    ).status_code == 422
