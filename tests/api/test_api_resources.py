"""The resource directory and single-resource changes, on the real API and PostgreSQL.

Resources are registered through the API itself, access is asked for and granted through
``/access-requests``, and each department's user then reads the directory: the owner sees
``owner``, the department with an approved request ``granted`` (with its end), the one whose
request waits ``pending``, any other ``none``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

DEPTS = ("water", "grantee", "asker", "stranger", "provincial-monitoring-center")
Auth = dict[str, str]


@pytest.fixture()
def users(api: TestClient, fresh_db: str,
          make_user: Callable[..., Auth]) -> dict[str, Auth]:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO departments (id, name) SELECT d, d FROM unnest(%s::text[]) d",
                     (list(DEPTS),))
    return {"admin": make_user("root", "provincial-monitoring-center", "admin"),
            "water": make_user("wanda", "water", "department_user"),
            "water_inspector": make_user("ivan", "water", "inspector"),
            "grantee": make_user("gary", "grantee", "department_user"),
            "asker": make_user("anna", "asker", "department_user"),
            "stranger": make_user("sam", "stranger", "department_user")}


STATION = {"id": "S1", "name": "东四 Dongsi", "lon": 116.417, "lat": 39.929, "st": "22",
           "interval_s": 3600, "password": "secret-pw", "properties": {"county": "110101"}}
CAMERA = {"id": "C1", "name": "Gate camera", "url": "rtsp://admin:pw@10.0.0.5/stream1",
          "lon": 121.4, "lat": 28.6}
COLLECTION = {"id": "SC1", "name": "Taizhou Landsat"}


def _register(api: TestClient, users: dict[str, Auth]) -> None:
    for kind, body in (("station", STATION), ("camera", CAMERA),
                       ("scene_collection", COLLECTION)):
        resp = api.post(f"/resources/{kind}", json=body, headers=users["water"])
        assert resp.status_code == 201, resp.text
        assert resp.json()["owner_dept"] == "water" and resp.json()["access"] == "owner"


def _items(api: TestClient, auth: Auth, **params: object) -> list[dict]:
    resp = api.get("/resources", params=params, headers=auth)
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


def test_directory_shows_each_access_state_to_the_right_user(
        api: TestClient, users: dict[str, Auth]) -> None:
    _register(api, users)
    until = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    ask = {"resources": [{"kind": "station", "id": "S1"}], "purpose": "joint inspection",
           "permissions": ["history"], "valid_until": until.isoformat()}
    granted = api.post("/access-requests", json=ask, headers=users["grantee"]).json()
    assert api.post(f"/access-requests/{granted[0]['id']}/approve",
                    headers=users["water"]).status_code == 200
    assert api.post("/access-requests", json=ask, headers=users["asker"]).status_code == 201

    def station_seen_by(who: str) -> dict:
        return next(i for i in _items(api, users[who]) if i["id"] == "S1")

    owner, grant, pending, none = (station_seen_by(w) for w in
                                   ("water", "grantee", "asker", "stranger"))
    assert (owner["access"], owner["granted_until"]) == ("owner", None)
    assert grant["access"] == "granted" and grant["permissions"] == ["history"]
    assert datetime.fromisoformat(grant["granted_until"]) == until
    assert (pending["access"], pending["granted_until"]) == ("pending", None)
    assert (none["access"], none["granted_until"], none["permissions"]) == ("none", None, [])
    # every signed-in user sees the whole directory, with name, owner, place and status
    for who in ("water", "grantee", "asker", "stranger", "water_inspector", "admin"):
        assert {(i["kind"], i["id"]) for i in _items(api, users[who])} == {
            ("camera", "C1"), ("scene_collection", "SC1"), ("station", "S1")}
    assert none["name"] == "东四 Dongsi" and none["owner_dept"] == "water"
    assert none["location"] == {"type": "Point", "coordinates": [116.417, 39.929]}
    assert none["status"] == "active"
    # only the owner (and admins) see the details; never the password nor the camera's
    cam = api.get("/resources/camera/C1", headers=users["water"]).json()
    assert cam["detail"]["url"] == "rtsp://admin:***@10.0.0.5/stream1"
    assert api.get("/resources/camera/C1", headers=users["stranger"]).json()["detail"] is None
    station = api.get("/resources/station/S1", headers=users["admin"]).json()
    assert station["detail"]["has_password"] is True and "secret-pw" not in str(station)
    assert station["properties"] == {"county": "110101"}
    # the directory is where the request flow starts: the stranger asks, and it is pending
    api.post("/access-requests", json={**ask, "resources": [{"kind": "camera", "id": "C1"}]},
             headers=users["stranger"])
    assert next(i for i in _items(api, users["stranger"], kind="camera"))["access"] == "pending"
    # a revoked grant is none again
    grant_id = api.get("/grants", headers=users["grantee"]).json()[0]["id"]
    assert api.post(f"/grants/{grant_id}/revoke", headers=users["water"]).status_code == 200
    assert station_seen_by("grantee")["access"] == "none"


def test_filters_and_paging(api: TestClient, users: dict[str, Auth], fresh_db: str) -> None:
    _register(api, users)
    with psycopg.connect(fresh_db) as conn:  # a bulk registry, as an import would leave it
        conn.execute(
            "INSERT INTO stations (id, name, owner_dept, lon, lat) SELECT 'B' || lpad(i::text,"
            " 3, '0'), '北京站 ' || i, 'grantee', 116 + i / 100.0, 40 FROM generate_series(1,"
            " 25) i")
        conn.execute("INSERT INTO stations (id, name, owner_dept, lon, lat, status) VALUES"
                     " ('OLD', 'retired station', 'water', 1, 1, 'retired')")
    auth = users["stranger"]
    assert {i["id"] for i in _items(api, auth, kind="camera")} == {"C1"}
    assert len(_items(api, auth, owner="grantee")) == 25
    assert {i["id"] for i in _items(api, auth, q="dongsi")} == {"S1"}  # name, any case
    assert {i["id"] for i in _items(api, auth, q="sc")} == {"SC1"}  # id
    assert len(_items(api, auth, q="北京站")) == 25
    assert _items(api, auth, q="%") == []  # taken literally
    # bbox over lon/lat: Dongsi (116.417) and the stations from 116.10 to 116.20
    inside = {i["id"] for i in _items(api, auth, bbox="116.095,39.5,116.205,40.5")}
    assert inside == {f"B{n:03d}" for n in range(10, 21)}
    assert {i["id"] for i in _items(api, auth, bbox="116.4,39.9,116.5,40")} == {"S1"}
    assert "OLD" not in {i["id"] for i in _items(api, auth)}
    assert [i["id"] for i in _items(api, auth, status="retired")] == ["OLD"]
    # pages of 10 give every resource once, in (kind, id) order, then next_cursor null
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        body = api.get("/resources", params=params, headers=auth).json()
        seen += [(i["kind"], i["id"]) for i in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 28 and seen == sorted(seen) and len(set(seen)) == 28
    for bad in ({"bbox": "1,2,3"}, {"bbox": "5,0,1,1"}, {"bbox": "a,b,c,d"},
                {"cursor": "not-a-cursor"}, {"kind": "zone"}):
        resp = api.get("/resources", params=bad, headers=auth)
        assert resp.status_code == 422, bad
        assert isinstance(resp.json()["detail"], list)
    assert api.get("/resources").status_code == 401


def _audit(fresh_db: str, rid: str) -> list[tuple]:
    with psycopg.connect(fresh_db) as conn:
        return conn.execute("SELECT action, user_id, detail FROM audit_log WHERE resource_id"
                            " = %s AND action LIKE 'registry.%%' ORDER BY time, id",
                            (rid,)).fetchall()


def test_create_change_retire_validated_and_audited(api: TestClient, users: dict[str, Auth],
                                                    fresh_db: str) -> None:
    water, admin = users["water"], users["admin"]
    # the checks of `offsite registry validate`, all reported at once, per field
    bad = api.post("/resources/camera", headers=water,
                   json={"id": " C9", "url": "ftp://x/y", "lon": 200, "name": "x"})
    assert bad.status_code == 422
    fields = {d["loc"][-1] for d in bad.json()["detail"]}
    assert fields == {"id", "url", "location"}
    msgs = {d["loc"][-1]: d["msg"] for d in bad.json()["detail"]}
    assert "ftp" in msgs["url"] and "outside WGS84" in str(bad.json())
    assert "lat: empty coordinate" in str(bad.json())
    for kind, body in (("station", {"id": "S9", "lon": 116, "lat": 95}),
                       ("station", {"id": "S9", "lon": 116, "lat": 39, "owner_dept": "nobody"}),
                       ("station", {"id": "S9", "lon": 116, "lat": 39, "url": "rtsp://x"}),
                       ("station", {"id": "S9", "lon": 116, "lat": 39, "interval_s": 0}),
                       ("station", {"id": "S9"}),
                       ("scene_collection", {"id": "SC9", "properties": {"a": "x\u0000"}}),
                       ("camera", {"id": "C9", "url": "rtsp://h/s", "lon": 1, "lat": 1,
                                   "config": {"motion": {"threshold": "very"}}})):
        resp = api.post(f"/resources/{kind}", json=body, headers=admin)
        assert resp.status_code == 422, (body, resp.text)
    assert _audit(fresh_db, "S9") == [] and _audit(fresh_db, "C9") == []

    # create: an owner for its own department; not for another one; not an inspector
    made = api.post("/resources/station", headers=water,
                    json={"id": "S2", "name": "Wusi", "lon": 121.3, "lat": 28.5,
                          "interval_s": 60, "password": "pw1"})
    assert made.status_code == 201 and made.json()["owner_dept"] == "water"
    assert api.post("/resources/station", headers=water,
                    json={"id": "S2", "lon": 1, "lat": 1}).status_code == 409
    assert api.post("/resources/station", headers=water, json={
        "id": "S3", "lon": 1, "lat": 1, "owner_dept": "grantee"}).status_code == 403
    assert api.post("/resources/station", headers=users["water_inspector"],
                    json={"id": "S3", "lon": 1, "lat": 1}).status_code == 403
    # an admin's resource without an owner belongs to the monitoring center
    center = api.post("/resources/scene_collection", headers=admin, json={"id": "SC2"})
    assert center.status_code == 201
    assert center.json()["owner_dept"] == "provincial-monitoring-center"

    # change: fields given change, others stay; checks again; others may not
    changed = api.patch("/resources/station/S2", headers=water,
                        json={"name": "五四", "lat": 28.6, "password": "pw2"})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["name"] == "五四" and body["location"]["coordinates"] == [121.3, 28.6]
    assert body["detail"]["interval_s"] == 60
    assert api.patch("/resources/station/S2", headers=water,
                     json={"lon": -181}).status_code == 422
    assert api.patch("/resources/station/S2", headers=users["grantee"],
                     json={"name": "mine"}).status_code == 403
    assert api.patch("/resources/station/S2", headers=water,
                     json={"owner_dept": "grantee"}).status_code == 403  # admins move
    assert api.patch("/resources/station/S404", headers=water,
                     json={"name": "x"}).status_code == 404
    moved = api.patch("/resources/station/S2", headers=admin, json={"owner_dept": "grantee"})
    assert moved.status_code == 200 and moved.json()["owner_dept"] == "grantee"

    # retire: out of the directory, the row and its history kept
    gone = api.delete("/resources/station/S2", headers=admin)
    assert gone.status_code == 200 and gone.json()["status"] == "retired"
    assert "S2" not in {i["id"] for i in _items(api, water)}
    assert api.get("/resources/station/S2", headers=water).json()["status"] == "retired"

    trail = _audit(fresh_db, "S2")
    assert [(a, u) for a, u, _ in trail] == [("registry.added", "wanda"),
                                             ("registry.changed", "wanda"),
                                             ("registry.changed", "root"),
                                             ("registry.retired", "root")]
    assert trail[0][2]["values"]["password"] == "(set)"
    assert trail[1][2]["changes"] == {"name": ["Wusi", "五四"], "lat": [28.5, 28.6],
                                      "password": ["(set)", "(set)"]}
    assert trail[3][2]["changes"] == {"status": ["active", "retired"]}
    assert "pw1" not in str(trail) and "pw2" not in str(trail)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT password, status FROM stations WHERE id = 'S2'"
                            ).fetchone() == ("pw2", "retired")


def test_zones_follow_the_registry_without_a_restart(api: TestClient, users: dict[str, Auth],
                                                     fresh_db: str) -> None:
    import time

    def zone_ids() -> set[str]:
        resp = api.get("/zones", headers=users["stranger"])
        assert resp.status_code == 200
        return {f["properties"]["id"] for f in resp.json()["features"]}

    assert zone_ids() == set()  # nothing registered yet
    square = {"type": "Polygon", "coordinates": [[[116, 39], [117, 39], [117, 40], [116, 40],
                                                  [116, 39]]]}
    with psycopg.connect(fresh_db) as conn:  # as `offsite registry import` writes them
        conn.execute("INSERT INTO zones (id, kind, name, county, owner_dept, geometry) VALUES"
                     " ('BJ-DC', 'jurisdiction', '东城区', '110101', 'water', %s)",
                     (json.dumps(square),))
        conn.execute("SELECT pg_notify('offsite_registry', 'zone')")
    deadline = time.monotonic() + 10
    while zone_ids() != {"BJ-DC"}:
        assert time.monotonic() < deadline, "the API kept its old zones"
        time.sleep(0.1)
    feature = api.get("/zones", headers=users["stranger"]).json()["features"][0]
    assert feature["properties"]["name"] == "东城区" and feature["geometry"] == square


def test_unregistered_sources_listed_for_the_center(api: TestClient, users: dict[str, Auth],
                                                    fresh_db: str,
                                                    make_user: Callable[..., Auth]) -> None:
    import asyncio

    from contract.records import Reading
    from storage.db import open_pool
    from storage.sinks import ReadingsSink

    _register(api, users)  # S1 is registered, X7 is not
    t0 = datetime(2026, 3, 1, tzinfo=UTC)

    async def flow() -> None:
        pool = await open_pool(fresh_db, max_size=1)
        sink = ReadingsSink()
        for h in range(3):
            for station in ("S1", "X7"):
                sink.add(Reading(station=station, time=t0 + timedelta(hours=h),
                                 values={"a34004": 1.0}, source="mqtt"))
        await sink.flush(pool)  # the readings sink counts unregistered stations as it writes
        await pool.close()

    asyncio.run(flow())
    operator = make_user("olga", "provincial-monitoring-center", "center_operator")
    listed = api.get("/unregistered-sources", headers=operator)
    assert listed.status_code == 200
    assert [(u["id"], u["readings"], u["registered"]) for u in listed.json()] == [
        ("X7", 3, False)]
    assert api.get("/unregistered-sources", headers=users["water"]).status_code == 403
    # registered through the API: it leaves the list (still there with ?all=true)
    assert api.post("/resources/station", json={"id": "X7", "lon": 116, "lat": 40},
                    headers=users["admin"]).status_code == 201
    assert api.get("/unregistered-sources", headers=operator).json() == []
    assert [u["registered"] for u in api.get("/unregistered-sources", params={"all": True},
                                             headers=operator).json()] == [True]


def test_the_monitoring_center_owns_what_names_no_owner(
        api: TestClient, fresh_db: str, make_user: Callable[..., Auth]) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO departments (id, name) VALUES ('hq', 'HQ')")
    admin = make_user("root", "hq", "admin")
    made = api.post("/resources/scene_collection", json={"id": "SC7"}, headers=admin)
    assert made.status_code == 201 and made.json()["owner_dept"] == "provincial-monitoring-center"
    with psycopg.connect(fresh_db) as conn:  # created on the way, as an import does
        assert conn.execute("SELECT action FROM audit_log WHERE resource_kind = 'department'"
                            " AND resource_id = 'provincial-monitoring-center'"
                            ).fetchall() == [("registry.added",)]
