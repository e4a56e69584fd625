"""Inspector tasks on a real PostgreSQL and a real Mosquitto: routing -> task in turn ->
inbox -> accept -> report with a photo (signed evidence) -> MQTT push -> referral."""

from __future__ import annotations

import io
import json
import queue
import time
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
import psycopg
import pytest

from storage.evidence_store import verify_database
from storage.evidence_trust import trusted_keys

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4 + b"\r\n--not-a-boundary\r\n"


@pytest.fixture()
def client(services, tmp_path, monkeypatch, request):  # type: ignore[no-untyped-def]
    # the credentials apart from the URL, as docker-compose.yml passes them
    url = urlparse(services.mqtt_url)
    monkeypatch.setenv("OFFSITE_MQTT_URL", f"mqtt://{url.hostname}:{url.port}")
    monkeypatch.setenv("OFFSITE_MQTT_USERNAME", url.username or "")
    monkeypatch.setenv("OFFSITE_MQTT_PASSWORD", url.password or "")
    monkeypatch.setenv("OFFSITE_STATE_DIR", str(tmp_path))
    return request.getfixturevalue("api")


def add_clue(db: str, clue_id: str, department: str | None, kind: str = "exceedance",
             start: datetime | None = None, owner: str | None = None) -> None:
    """A clue routed to ``department`` about a station owned by ``owner`` (default: the
    routed department, or deptA for an unrouted clue)."""
    start = start or datetime.now(UTC) - timedelta(minutes=5)
    owner = owner or department or "deptA"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO departments (id, name) VALUES (%s, %s)"
                     " ON CONFLICT (id) DO NOTHING", (owner, owner))
        conn.execute("INSERT INTO stations (id, owner_dept) VALUES (%s, %s)"
                     " ON CONFLICT (id) DO NOTHING", (f"st-{owner}", owner))
        conn.execute(
            "INSERT INTO clues (clue_id, modality, kind, rule, subject, state, start, time,"
            " confidence, department, jurisdiction, site, summary)"
            " VALUES (%s, 'env', %s, 'r1', %s, 'open', %s, %s, 0.9, %s, 'j1', 'site1', 's')"
            " ON CONFLICT (clue_id) DO UPDATE SET time = EXCLUDED.time,"
            " department = EXCLUDED.department",
            (clue_id, kind, f"st-{owner}", start, start + timedelta(minutes=1), department))


def task_of(db: str, clue_id: str) -> dict:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT id, assignee, state FROM tasks WHERE clue_id = %s",
                           (clue_id,)).fetchone()
    assert row is not None, f"no task for {clue_id}"
    return {"id": row[0], "assignee": row[1], "state": row[2]}


class Subscriber:
    def __init__(self, url: str, topic: str) -> None:
        parsed = urlparse(url)
        self.messages: queue.Queue[dict] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"test-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_message = lambda c, u, m: self.messages.put(
            {"retain": m.retain, "qos": m.qos, "payload": json.loads(m.payload)})
        self.client.username_pw_set(parsed.username, parsed.password)
        self.client.connect(parsed.hostname, parsed.port or 1883)
        self.client.loop_start()

    def wait_for(self, expected: dict, timeout: float = 15.0) -> dict:
        deadline, seen = time.monotonic() + timeout, []
        while time.monotonic() < deadline:
            try:
                msg = self.messages.get(timeout=0.2)
            except queue.Empty:
                continue
            seen.append(msg["payload"])
            if msg["payload"] == expected:
                return msg
        raise AssertionError(f"no push equal to {expected}; saw {seen}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_task_flow(client, make_user, fresh_db, services, tmp_path):  # type: ignore[no-untyped-def]
    insp1 = make_user("insp1", "deptA", "inspector")
    insp2 = make_user("insp2", "deptA", "inspector")
    boss = make_user("bossA", "deptA", "department_user")
    other = make_user("inspB", "deptB", "inspector")
    admin = make_user("root", "hq", "admin")

    # routed clues become tasks, assigned in turn; a clue without department makes none
    for cid in ("c1", "c2", "c3"):
        add_clue(fresh_db, cid, "deptA")
    add_clue(fresh_db, "c0", None)
    add_clue(fresh_db, "c1", "deptA")  # redelivered: still one task
    assert [task_of(fresh_db, c)["assignee"] for c in ("c1", "c2", "c3")] == \
        ["insp1", "insp2", "insp1"]
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 3
    # a clue routed later (department set by an update) gets its task then
    add_clue(fresh_db, "c0", "deptA")
    assert task_of(fresh_db, "c0")["assignee"] == "insp2"

    t1 = task_of(fresh_db, "c1")["id"]
    inbox = client.get("/tasks", headers=insp1).json()
    assert sorted(t["clue_id"] for t in inbox) == ["c1", "c3"]
    assert all(t["state"] == "assigned" and not t["overdue"] for t in inbox)
    assert len(client.get("/tasks", headers=boss).json()) == 4
    assert len(client.get("/tasks", headers=admin).json()) == 4
    assert client.get("/tasks", headers=other).json() == []

    # another department's inspector (or a colleague) cannot see or act on it
    for headers in (other, insp2):
        assert client.get(f"/tasks/{t1}", headers=headers).status_code == 404
        assert client.post(f"/tasks/{t1}/accept", headers=headers).status_code == 404
        assert client.post(f"/tasks/{t1}/report", headers=headers,
                           json={"result": "confirmed"}).status_code == 404
    assert client.post(f"/tasks/{t1}/assign", headers=other,
                       json={"inspector": "inspB"}).status_code == 404

    got = client.post(f"/tasks/{t1}/accept", headers=insp1)
    assert got.status_code == 200, got.text
    assert got.json()["state"] == "accepted" and got.json()["accepted_at"]
    assert client.post(f"/tasks/{t1}/accept", headers=insp1).status_code == 409

    got = client.post(f"/tasks/{t1}/report", headers=insp1,
                      data={"result": "false_positive", "note": "a steam plume"},
                      files=[("photos", ("field.png", PNG, "image/png"))])
    assert got.status_code == 200, got.text
    task = got.json()
    assert task["state"] == "closed" and task["result"] == "false_positive"
    assert task["note"] == "a steam plume" and len(task["evidence_ids"]) == 1
    with psycopg.connect(fresh_db) as conn:
        src, content, clue_id = conn.execute(
            "SELECT source, content, clue_id FROM evidence WHERE id = %s",
            (task["evidence_ids"][0],)).fetchone()
    assert (src, bytes(content), clue_id) == ("inspector:insp1", PNG, "c1")
    report = verify_database(fresh_db, trusted_keys=trusted_keys(tmp_path))
    assert report.ok and report.checked == 1, report.issues

    # the terminal gets the retained task, equal to what the API returns
    expected = client.get(f"/tasks/{t1}", headers=insp1).json()
    assert expected == task
    sub = Subscriber(services.mqtt_url, "offsite/tasks/insp1")
    try:
        msg = sub.wait_for(expected)
        assert msg["retain"] and msg["qos"] == 1
    finally:
        sub.close()

    # hand assignment by the department, pushed to the new inspector
    t3 = task_of(fresh_db, "c3")["id"]
    assert client.post(f"/tasks/{t3}/assign", headers=boss,
                       json={"inspector": "inspB"}).status_code == 422
    assert client.post(f"/tasks/{t3}/assign", headers=insp1,
                       json={"inspector": "insp2"}).status_code == 403
    got = client.post(f"/tasks/{t3}/assign", headers=boss, json={"inspector": "insp2"})
    assert got.status_code == 200, got.text
    assert got.json()["assignee"] == "insp2" and got.json()["assigned_by"] == "bossA"
    sub = Subscriber(services.mqtt_url, "offsite/tasks/insp2")
    try:
        sub.wait_for(client.get(f"/tasks/{t3}", headers=insp2).json())
    finally:
        sub.close()

    # a confirmed result is referred with the case bundle
    assert client.post(f"/tasks/{t3}/report", headers=insp2,
                       json={"result": "confirmed", "note": "seen"}).status_code == 200
    assert client.post(f"/tasks/{t1}/refer", headers=boss).status_code == 409
    got = client.post(f"/tasks/{t3}/refer", headers=boss)
    assert got.status_code == 200, got.text
    assert got.json()["bundle_sha256"] and got.json()["referred_by"] == "bossA"
    zipped = client.get(f"/tasks/{t3}/bundle", headers=boss)
    assert zipped.status_code == 200
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as zf:
        assert json.loads(zf.read("manifest.json"))["clue_id"] == "c3"
    assert client.get(f"/tasks/{t3}/bundle", headers=other).status_code == 404


def test_due_time_by_kind_and_overdue(client, make_user, fresh_db):  # type: ignore[no-untyped-def]
    insp = make_user("i1", "deptA", "inspector")
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("INSERT INTO task_due_rules (kind, hours) VALUES ('smoke', 0.0001)")
    add_clue(fresh_db, "fast", "deptA", kind="smoke")
    add_clue(fresh_db, "slow", "deptA", kind="exceedance")
    time.sleep(0.6)
    tasks = {t["clue_id"]: t for t in client.get("/tasks", headers=insp).json()}
    assert tasks["fast"]["overdue"] and not tasks["slow"]["overdue"]
    due = datetime.fromisoformat(tasks["slow"]["due_at"])
    created = datetime.fromisoformat(tasks["slow"]["created_at"])
    assert abs((due - created) - timedelta(hours=72)) < timedelta(seconds=1)


def test_unassigned_without_inspectors(client, make_user, fresh_db):  # type: ignore[no-untyped-def]
    boss = make_user("b", "deptC", "department_user")
    add_clue(fresh_db, "lonely", "deptC")
    [task] = client.get("/tasks", headers=boss).json()
    assert task["state"] == "open" and task["assignee"] is None
    make_user("late", "deptC", "inspector")
    got = client.post(f"/tasks/{task['id']}/assign", headers=boss, json={"inspector": "late"})
    assert got.status_code == 200 and got.json()["state"] == "assigned"


def test_stream_sink_opens_one_task(client, make_user, fresh_db):  # type: ignore[no-untyped-def]
    """The stream's own path: the clue exit routes the clue, CluesSink stores it, the
    database opens the task."""
    import asyncio

    from contract.clue import Clue
    from geo.routing import Router
    from storage.db import open_pool
    from storage.sinks import CluesSink
    from streams.publish import ClueExit

    dept = "110101-ecology-environment"  # where the demo router sends Dongsi
    insp = make_user("dongsi", dept, "inspector")
    t0 = datetime(2025, 6, 1, 8, tzinfo=UTC)
    clues = [Clue(modality="env", kind="exceedance", rule="r1", subject="env-1",
                  state=state, start=t0, time=t0 + timedelta(hours=hours),
                  confidence=0.5,
                  location={"type": "Point", "coordinates": [116.417, 39.929]})
             for hours, state in ((1, "open"), (2, "update"))]

    async def write() -> None:
        sink, routed = CluesSink(), ClueExit(None, Router.demo()).routed
        for c in clues:
            sink.add(routed(c))
        pool = await open_pool(fresh_db)
        try:
            await sink.flush(pool)
        finally:
            await pool.close()

    asyncio.run(write())
    asyncio.run(write())  # a redelivered batch adds nothing
    [task] = client.get("/tasks", headers=insp).json()
    assert task["department"] == dept and task["assignee"] == "dongsi"
    assert task["jurisdiction"] == "cn-110101" and task["kind"] == "exceedance"


def test_task_of_another_departments_resource(client, make_user, fresh_db,  # type: ignore[no-untyped-def]
                                              tmp_path):
    """Issue 20 case 6: a clue on deptB's station routed into deptA's district becomes A's
    task. A sees that it exists and whose it is, but accepting, reporting, referring and
    the bundle need B's data (a live grant); every attempt is audited; one call asks."""
    import asyncio

    from contract.clue import Clue, EvidenceRef
    from contract.settings import Settings
    from storage.case_verify import verify_bundle
    from storage.db import open_pool
    from storage.evidence_store import EvidenceStore

    insp = make_user("inspA", "deptA", "inspector")
    boss = make_user("bossA", "deptA", "department_user")
    owner = make_user("bossB", "deptB", "department_user")
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    b_clue = Clue(modality="env", kind="exceedance", rule="r1", subject="st-deptB", start=t0,
                  time=t0, evidence=[EvidenceRef(media_type="application/json",
                                                 name="window.json", content=b'{"pm25": 99}')])

    async def fix() -> None:  # B's evidence, fixed as the worker would, under clue x1
        pool = await open_pool(fresh_db, min_size=1, max_size=1)
        try:
            store = await EvidenceStore.open(pool, Settings(database_url=fresh_db,
                                                            state_dir=tmp_path))
            await store.add(b_clue)
        finally:
            await pool.close()

    asyncio.run(fix())
    x1 = b_clue.clue_id
    add_clue(fresh_db, x1, "deptA", owner="deptB")
    task_id = task_of(fresh_db, x1)["id"]

    # A sees the task, who owns its resource, and nothing of B's data
    [listed] = client.get("/tasks", headers=insp).json()
    got = client.get(f"/tasks/{task_id}", headers=insp).json()
    for task in (listed, got):
        assert task["owner_dept"] == "deptB" and task["access"] == "none"
        assert task["resource"] == {"kind": "station", "id": "st-deptB"}
        assert task["summary"] is None and task["location"] is None
        assert task["access_request"] == f"/tasks/{task_id}/access-request"
    assert client.get(f"/clues/{x1}", headers=insp).status_code == 404  # the same rule

    refused = client.post(f"/tasks/{task_id}/accept", headers=insp)
    assert refused.status_code == 403 and "deptB" in refused.json()["detail"]
    assert client.post(f"/tasks/{task_id}/report", headers=insp,
                       json={"result": "confirmed"}).status_code == 403
    assert task_of(fresh_db, x1)["state"] == "assigned"

    # one call asks B; B grants history only: A may work the task, not refer it
    ask = client.post(f"/tasks/{task_id}/access-request", headers=insp,
                      json={"permissions": ["history"], "purpose": "inspect the site"})
    assert ask.status_code == 201, ask.text
    assert ask.json()["owner_dept"] == "deptB" and ask.json()["resource_id"] == "st-deptB"
    assert client.post(f"/access-requests/{ask.json()['id']}/approve",
                       headers=owner).status_code == 200
    task = client.get(f"/tasks/{task_id}", headers=insp).json()
    assert task["access"] == "grant" and task["summary"] == "s"
    assert client.post(f"/tasks/{task_id}/accept", headers=insp).status_code == 200
    assert client.post(f"/tasks/{task_id}/report", headers=insp,
                       json={"result": "confirmed"}).status_code == 200
    refused = client.post(f"/tasks/{task_id}/refer", headers=boss)
    assert refused.status_code == 403 and "evidence" in refused.json()["detail"]

    ask = client.post(f"/tasks/{task_id}/access-request", headers=boss)  # the defaults
    assert ask.status_code == 201 and ask.json()["permissions"] == ["evidence", "history"]
    grant = client.post(f"/access-requests/{ask.json()['id']}/approve", headers=owner).json()
    got = client.post(f"/tasks/{task_id}/refer", headers=boss)
    assert got.status_code == 200, got.text
    zipped = client.get(f"/tasks/{task_id}/bundle", headers=boss)
    assert zipped.status_code == 200
    bundle = tmp_path / "x1.zip"
    bundle.write_bytes(zipped.content)
    manifest = json.loads(zipfile.ZipFile(bundle).read("manifest.json"))
    assert [i["record"]["name"] for i in manifest["items"]] == ["window.json"]
    assert verify_bundle(bundle).ok

    # revoked: the bundle of B's evidence is refused again
    assert client.post(f"/grants/{grant['grant_id']}/revoke", headers=owner).status_code == 200
    assert client.get(f"/tasks/{task_id}/bundle", headers=boss).status_code == 403

    # B's audit shows every use of its data through the task, refused ones included
    log = client.get("/audit", headers=owner).json()
    seen = [(e["action"], e["user_id"], e["detail"]["allowed"]) for e in reversed(log)
            if e["action"].startswith("task.")]
    assert seen == [("task.accept", "inspA", False), ("task.report", "inspA", False),
                    ("task.view", "inspA", True), ("task.accept", "inspA", True),
                    ("task.report", "inspA", True), ("task.refer", "bossA", False),
                    ("task.refer", "bossA", True), ("task.bundle", "bossA", True),
                    ("task.bundle", "bossA", False)], seen
    assert all(e["owner_dept"] == "deptB" and e["clue_id"] == x1
               for e in log if e["action"].startswith("task."))
    # the owner's own department gets no access request to itself
    add_clue(fresh_db, "y1", "deptB")
    own = task_of(fresh_db, "y1")["id"]
    assert client.post(f"/tasks/{own}/access-request", headers=owner).status_code == 400


def test_photo_report_refuses_a_second_key(client, make_user, fresh_db,  # type: ignore[no-untyped-def]
                                           tmp_path):
    """Issue 20 case 8: an API whose state folder is not the writers' does not sign field
    photos with a new key of its own next to the evidence signed by theirs."""
    import asyncio

    from contract.clue import Clue, EvidenceRef
    from contract.settings import Settings
    from storage.db import open_pool
    from storage.evidence_store import EvidenceStore

    insp = make_user("i9", "deptA", "inspector")
    t0 = datetime.now(UTC) - timedelta(minutes=5)

    async def fix() -> None:  # the worker's evidence, under its own state folder
        pool = await open_pool(fresh_db, min_size=1, max_size=1)
        try:
            store = await EvidenceStore.open(pool, Settings(database_url=fresh_db,
                                                            state_dir=tmp_path / "writers"))
            await store.add(Clue(modality="env", kind="exceedance", rule="r1", subject="s",
                                 start=t0, time=t0, evidence=[EvidenceRef(
                                     media_type="application/json", name="w.json",
                                     content=b"{}")]))
        finally:
            await pool.close()

    asyncio.run(fix())
    add_clue(fresh_db, "p1", "deptA")
    task_id = task_of(fresh_db, "p1")["id"]
    got = client.post(f"/tasks/{task_id}/report", headers=insp, data={"result": "confirmed"},
                      files=[("photos", ("field.png", PNG, "image/png"))])
    assert got.status_code == 503 and "OFFSITE_STATE_DIR" in got.json()["detail"], got.text
    assert not (tmp_path / "evidence_ed25519.pem").exists()
    assert task_of(fresh_db, "p1")["state"] == "assigned"
