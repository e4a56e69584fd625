"""No data leaks: every data endpoint x every role x every grant state.

One department (``water``) owns a station, a camera and a scene collection, each with a
clue, evidence and health. For each grant state (none, pending, denied, live, expired,
revoked) a department holds its grant on all three resources, with a user of every role.
What each may see is the table in ``api/access.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import product

import psycopg
import pytest
from fastapi.testclient import TestClient

ROLES = ("inspector", "department_user", "center_operator", "admin")
STATES = ("none", "pending", "denied", "live", "expired", "revoked")
CLUES = {"c-env": ("env", "S1", "{}"), "c-video": ("video", "C1", "{}"),
         "c-sat": ("satellite", "T-42", '{"collection": "SC1"}')}
EVIDENCE = {"e-env": "c-env", "e-video": "c-video", "e-sat": "c-sat"}
KINDS = (("station", "S1"), ("camera", "C1"), ("scene_collection", "SC1"))


def seed(conn: psycopg.Connection) -> None:
    depts = ["water", "center", *(f"g_{s}" for s in STATES)]
    conn.execute("INSERT INTO departments (id, name) SELECT d, d FROM unnest(%s::text[]) d",
                 (depts,))
    conn.execute("INSERT INTO stations (id, owner_dept, interval_s) VALUES ('S1', 'water', 60)")
    conn.execute("INSERT INTO cameras (id, owner_dept, url) VALUES ('C1', 'water', 'rtsp://x')")
    conn.execute("INSERT INTO scene_collections (id, owner_dept) VALUES ('SC1', 'water')")
    conn.execute("INSERT INTO readings (time, station, code, period, value, source) VALUES"
                 " (now(), 'S1', 'a34004', 'hour', 80, 'mqtt')")
    conn.execute("INSERT INTO camera_health (time, camera, online, fps) VALUES"
                 " (now(), 'C1', true, 2.0)")
    for clue_id, (modality, subject, metrics) in CLUES.items():
        conn.execute(
            "INSERT INTO clues (clue_id, modality, kind, rule, subject, state, start, time,"
            " confidence, metrics, location) VALUES (%s, %s, 'k', 'r', %s, 'open', now(),"
            " now(), 0.9, %s::jsonb, '{\"type\": \"Point\", \"coordinates\": [120, 30]}')",
            (clue_id, modality, subject, metrics))
    conn.execute("INSERT INTO evidence_keys (key_id, public_key_hex, public_key_pem) VALUES"
                 " ('k1', repeat('a', 64), 'pem')")
    for seq, (ev_id, clue_id) in enumerate(EVIDENCE.items(), 1):
        conn.execute(
            "INSERT INTO evidence (time, id, clue_id, source, seq, fixed_at, sha256, prev_hash,"
            " record_hash, key_id, signature, media_type, name, content) VALUES (now(), %s, %s,"
            " 'src', %s, now(), repeat('b', 64), repeat('0', 64), repeat('c', 64), 'k1', 's',"
            " 'image/jpeg', 'frame.jpg', %s)", (ev_id, clue_id, seq, b"JPEG-" + ev_id.encode()))
    conn.execute("INSERT INTO users (id, department, role) VALUES ('wanda', 'water',"
                 " 'department_user')")
    windows = {"live": ("now() - interval '1 day'", "now() + interval '1 day'"),
               "expired": ("now() - interval '2 days'", "now() - interval '1 day'")}
    for state, (kind, rid) in product(STATES, KINDS):
        if state == "none":
            continue
        lo, hi = windows.get(state, windows["live"])
        req_state = {"pending": "pending", "denied": "denied"}.get(state, "approved")
        (req_id,) = conn.execute(
            "INSERT INTO access_requests (requester_dept, requested_by, resource_kind,"
            " resource_id, owner_dept, purpose, permissions, valid_from, valid_until, state)"
            f" VALUES (%s, 'wanda', %s, %s, 'water', 'p', ARRAY['live','history','evidence'],"
            f" {lo}, {hi}, %s) RETURNING id", (f"g_{state}", kind, rid, req_state)).fetchone()
        if req_state == "approved":
            conn.execute(
                "INSERT INTO grants (request_id, grantee_dept, resource_kind, resource_id,"
                " permissions, valid_from, valid_until, granted_by, revoked_at) SELECT id,"
                " requester_dept, resource_kind, resource_id, permissions, valid_from,"
                " valid_until, 'wanda', CASE WHEN %s THEN now() END FROM access_requests"
                " WHERE id = %s", (state == "revoked", req_id))


def expected(role: str, state: str) -> dict[str, bool]:
    granted = state == "live"
    center = role in ("center_operator", "admin")
    return {"clues": center or granted, "health": center or granted,
            "readings": role == "admin" or granted, "evidence": role == "admin" or granted}


@pytest.fixture()
def world(api: TestClient, fresh_db: str, make_user: Callable[..., dict]) -> dict:
    with psycopg.connect(fresh_db) as conn:
        seed(conn)
    return {(role, state): make_user(f"{role}-{state}", f"g_{state}", role)
            for role, state in product(ROLES, STATES)}


def observe(api: TestClient, auth: dict) -> dict[str, object]:
    """Everything a caller gets from every data endpoint, reduced to what leaked."""
    seen: dict[str, object] = {}
    listed = api.get("/clues", headers=auth)
    assert listed.status_code == 200
    seen["list"] = sorted(c["clue_id"] for c in listed.json()["items"])
    for clue_id in CLUES:
        got = api.get(f"/clues/{clue_id}", headers=auth)
        assert got.status_code in (200, 404)
        body = got.json() if got.status_code == 200 else None
        seen[f"clue:{clue_id}"] = got.status_code
        seen[f"clue-evidence:{clue_id}"] = (
            sorted(e["id"] for e in body["evidence"]) if body and body["evidence"] else None)
    for ev_id in EVIDENCE:
        meta = api.get(f"/evidence/{ev_id}", headers=auth)
        media = api.get(f"/evidence/{ev_id}/content", headers=auth)
        assert media.status_code in (200, 404) and meta.status_code in (200, 404)
        seen[f"evidence:{ev_id}"] = meta.status_code
        seen[f"media:{ev_id}"] = media.content if media.status_code == 200 else 404
    seen["cameras"] = [c["camera"] for c in api.get("/health/cameras", headers=auth).json()]
    seen["stations"] = [s["station"] for s in api.get("/health/stations", headers=auth).json()]
    readings = api.get("/api/readings", params={"station": "S1"}, headers=auth)
    seen["readings"] = len(readings.json()) if readings.status_code == 200 else 404
    return seen


def test_access_matrix(api: TestClient, world: dict, fresh_db: str) -> None:
    failures = []
    for (role, state), auth in world.items():
        want = expected(role, state)
        clue_status = 200 if want["clues"] else 404
        ev = want["evidence"]
        target: dict[str, object] = {
            "list": sorted(CLUES) if want["clues"] else [],
            "cameras": ["C1"] if want["health"] else [],
            "stations": ["S1"] if want["health"] else [],
            "readings": 1 if want["readings"] else 404,
        }
        for clue_id in CLUES:
            target[f"clue:{clue_id}"] = clue_status
            target[f"clue-evidence:{clue_id}"] = (
                [e for e, c in EVIDENCE.items() if c == clue_id] if ev and want["clues"]
                else None)
        for ev_id in EVIDENCE:
            target[f"evidence:{ev_id}"] = 200 if ev else 404
            target[f"media:{ev_id}"] = b"JPEG-" + ev_id.encode() if ev else 404
        got = observe(api, auth)
        if got != target:
            diff = {k: (got.get(k), v) for k, v in target.items() if got.get(k) != v}
            failures.append(f"{role}/{state}: {diff}")
    assert not failures, "\n".join(failures)

    # every evidence read was audited, with the grant it used (none for admins)
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute("SELECT user_id, action, grant_id FROM audit_log").fetchall()
    users_audited = {u for u, _, _ in rows}
    assert users_audited == {f"{role}-live" for role in ROLES} | {
        f"admin-{s}" for s in STATES}
    assert all(g is None for u, _, g in rows if u.startswith("admin"))
    assert all(g is not None for u, _, g in rows if not u.startswith("admin"))
    actions = {a for _, a, _ in rows}
    assert actions == {"evidence.list", "evidence.metadata", "evidence.content"}


def test_owner_sees_own_resources_and_audit(api: TestClient, world: dict,
                                            make_user: Callable[..., dict]) -> None:
    owner = make_user("olga", "water", "inspector")
    owner_admin = make_user("otto", "water", "department_user")
    got = observe(api, owner)
    assert got["list"] == sorted(CLUES) and got["readings"] == 1
    assert got["media:e-video"] == b"JPEG-e-video"
    # audit: admins everything, owner's department_user its resources, nobody else
    observe(api, world[("inspector", "live")])
    log = api.get("/audit", headers=owner_admin).json()
    assert {e["user_id"] for e in log} == {"olga", "inspector-live"}
    assert all(e["owner_dept"] == "water" for e in log)
    live_grant = [e for e in log if e["user_id"] == "inspector-live"]
    assert all(e["grant_id"] is not None for e in live_grant)
    assert api.get("/audit", headers=owner).status_code == 403
    assert api.get("/audit", headers=world[("department_user", "live")]).json() == []
    assert len(api.get("/audit", headers=world[("admin", "none")]).json()) == len(log)


def test_permissions_are_separate(api: TestClient, world: dict, fresh_db: str) -> None:
    """A live grant with only ``live`` shows health, not clue history, readings or evidence."""
    with psycopg.connect(fresh_db) as conn:
        conn.execute("UPDATE grants SET permissions = ARRAY['live']"
                     " WHERE grantee_dept = 'g_live'")
    got = observe(api, world[("inspector", "live")])
    assert got["cameras"] == ["C1"] and got["stations"] == ["S1"]
    assert got["list"] == [] and got["readings"] == 404 and got["media:e-env"] == 404


def test_clue_filters_and_paging(api: TestClient, fresh_db: str,
                                 make_user: Callable[..., dict]) -> None:
    admin = make_user("root", "hq", "admin")
    with psycopg.connect(fresh_db) as conn:
        for i in range(7):
            conn.execute(
                "INSERT INTO clues (clue_id, modality, kind, rule, subject, state, start, time,"
                " confidence, location, zones, department) VALUES (%s, 'env', %s, 'r', 'S9',"
                " %s, '2024-01-01', %s, 0.5, %s::jsonb, %s::jsonb, %s)",
                (f"c{i}", "exceedance" if i % 2 else "flatline", "open" if i < 5 else "closed",
                 f"2024-01-0{i + 1}T00:00:00Z",
                 json.dumps({"type": "Polygon", "coordinates": [
                     [[100 + i, 30], [100.5 + i, 30], [100 + i, 31], [100 + i, 30]]]}),
                 json.dumps([{"id": f"Z{i % 3}", "kind": "farmland"}]),
                 "dept-a" if i < 3 else "dept-b"))

    def ids(**params: object) -> list[str]:
        body = api.get("/clues", params=params, headers=admin).json()
        return [c["clue_id"] for c in body["items"]]

    assert ids() == [f"c{i}" for i in range(6, -1, -1)]
    assert ids(kind="exceedance") == ["c5", "c3", "c1"]
    assert ids(status="closed") == ["c6", "c5"]
    assert ids(since="2024-01-03T00:00:00Z", until="2024-01-05T00:00:00Z") == ["c3", "c2"]
    assert ids(bbox="101.2,29,103.1,32") == ["c3", "c2", "c1"]
    assert ids(zone="Z1") == ["c4", "c1"]
    assert ids(department="dept-a") == ["c2", "c1", "c0"]
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get("/clues", params=params, headers=admin).json()
        seen += [c["clue_id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids()
    assert api.get("/clues", params={"cursor": "!!"}, headers=admin).status_code == 422
