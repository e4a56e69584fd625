"""Random inspection draws and joint inspections on a real PostgreSQL and Mosquitto: a
department draws, both inspectors of a pair see and may report the task (API and MQTT
push), a retry is the same draw, the public list needs no token and shows nothing private,
the draw is recomputed from its seed, and two departments' tasks at one entity merge into
one joint inspection that keeps each department's result."""

from __future__ import annotations

import json
import queue
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
import psycopg
import pytest

from tests.inspection_registry import ECO, ENTITIES, NAT, registry


@pytest.fixture()
def client(services, tmp_path, monkeypatch, request):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OFFSITE_MQTT_URL", services.mqtt_url)
    monkeypatch.setenv("OFFSITE_STATE_DIR", str(tmp_path))
    return request.getfixturevalue("api")


def add_clue(db: str, clue_id: str, department: str, subject: str) -> None:
    start = datetime.now(UTC) - timedelta(minutes=5)
    with psycopg.connect(db) as conn:
        conn.execute(
            "INSERT INTO clues (clue_id, modality, kind, rule, subject, state, start, time,"
            " confidence, department, jurisdiction, site, summary)"
            " VALUES (%s, 'env', 'exceedance', 'r1', %s, 'open', %s, %s, 0.9, %s, 'j1',"
            " 'site1', 's')", (clue_id, subject, start, start, department))


def pushes(url: str, topic: str) -> tuple[mqtt.Client, queue.Queue]:
    parsed = urlparse(url)
    got: queue.Queue = queue.Queue()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(topic, qos=1)
    c.on_message = lambda cl, u, m: got.put(json.loads(m.payload))
    c.username_pw_set(parsed.username, parsed.password)
    c.connect(parsed.hostname, parsed.port or 1883)
    c.loop_start()
    return c, got


def wait_push(got: queue.Queue, task_id: int, state: str) -> dict:
    seen = []
    for _ in range(150):
        try:
            msg = got.get(timeout=0.1)
        except queue.Empty:
            continue
        seen.append((msg.get("id"), msg.get("state")))
        if msg.get("id") == task_id and msg.get("state") == state:
            return msg
    raise AssertionError(f"no push of task {task_id} in state {state}; saw {seen}")


def test_draw_pair_public_list_and_verify(client, make_user, fresh_db, services):  # type: ignore[no-untyped-def]
    registry(fresh_db)
    boss = make_user("boss-eco", ECO, "department_user")
    other_boss = make_user("boss-nat", NAT, "department_user")
    inspectors = {n: make_user(n, ECO, "inspector") for n in ("eco-1", "eco-2", "eco-3")}
    body = {"department": ECO, "from": "2027-03-01", "to": "2027-03-31", "count": 2, "seed": 11}

    assert client.post("/inspections/draws", json=body, headers=other_boss).status_code == 403
    made = client.post("/inspections/draws", json=body, headers=boss)
    assert made.status_code == 201, made.text
    draw = made.json()
    assert draw["seed"] == 11 and draw["drawn"] == 2 == len(draw["items"])
    again = client.post("/inspections/draws", json=body, headers=boss)
    assert again.status_code == 200 and again.json() == draw  # a retry is the same draw

    # the public list: no token, entity, inspectors, date; nothing about risk or reasons
    public = client.get(f"/inspections/draws/{draw['id']}")
    assert public.status_code == 200 and public.json() == draw
    assert [d["id"] for d in client.get("/inspections/draws").json()] == [draw["id"]]
    for item in draw["items"]:
        assert set(item) == {"rank", "entity", "entity_name", "inspectors", "planned_date",
                             "inspection_id", "visit_date"}
        assert item["entity"] in ENTITIES and item["entity_name"] == f"企业{item['entity']}"
        assert len(set(item["inspectors"])) == 2 and set(item["inspectors"]) <= set(inspectors)
        assert "2027-03-01" <= item["planned_date"] <= "2027-03-31"
    check = client.get(f"/inspections/draws/{draw['id']}/verify", headers=boss).json()
    assert check["reproduced"] is True and check["recomputed"] == check["recorded"]
    with psycopg.connect(fresh_db) as conn:
        audited = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'inspection.draw'"
                               " AND resource_id = %s", (str(draw["id"]),)).fetchone()[0]
    assert audited == 1

    # each drawn entity is a task of the department for both inspectors of the pair
    item = draw["items"][0]
    first, second = item["inspectors"]
    sub, got = pushes(services.mqtt_url, f"offsite/tasks/{second}")
    try:
        tasks = client.get("/tasks", headers=inspectors[second]).json()
        task = next(t for t in tasks if t["entity"] == item["entity"])
        assert task["task_kind"] == "draw" and task["clue_id"] is None
        assert task["inspectors"] == [first, second] and task["co_assignee"] == second
        assert task["access"] == "owner" and task["inspection_id"] == item["inspection_id"]
        # the second inspector's retained topic holds its latest task, a task of its pair
        latest = got.get(timeout=15)
        assert second in latest["inspectors"] and latest["task_kind"] == "draw"
        accepted = client.post(f"/tasks/{task['id']}/accept", headers=inspectors[second])
        assert accepted.status_code == 200, accepted.text
        wait_push(got, task["id"], "accepted")
        done = client.post(f"/tasks/{task['id']}/report", headers=inspectors[first],
                           json={"result": "not_found", "note": "现场未见异常"})
        assert done.status_code == 200, done.text
        assert done.json()["state"] == "closed" and done.json()["result"] == "not_found"
        assert client.post(f"/tasks/{task['id']}/refer",
                           headers=inspectors[first]).status_code == 409
    finally:
        sub.disconnect()
        sub.loop_stop()
    third = next(n for n in inspectors if n not in item["inspectors"])
    assert client.get(f"/tasks/{task['id']}", headers=inspectors[third]).status_code == 404


def test_joint_inspection_keeps_each_departments_result(client, make_user, fresh_db):  # type: ignore[no-untyped-def]
    registry(fresh_db)
    admin = make_user("root", "hq", "admin")
    users = {}
    for dept, tag in ((ECO, "eco"), (NAT, "nat")):
        for i in (1, 2):
            users[f"{tag}-{i}"] = make_user(f"{tag}-{i}", dept, "inspector")
    # a clue about ent-d's station routed to the natural-resources bureau: a clue task
    add_clue(fresh_db, "clue-d", NAT, "st-d")
    today = datetime.now(UTC) + timedelta(hours=8)
    period = {"from": today.date().isoformat(),
              "to": (today + timedelta(days=6)).date().isoformat()}
    # the ecology bureau draws every entity of the county in the same week
    draw = client.post("/inspections/draws", headers=admin,
                       json={"department": ECO, **period, "count": 4, "seed": 5}).json()
    ent_d = next(i for i in draw["items"] if i["entity"] == "ent-d")
    visit = client.get(f"/inspections/{ent_d['inspection_id']}", headers=admin).json()
    assert visit["joint"] is True and visit["departments"] == [ECO, NAT]
    by_dept = {t["department"]: t for t in visit["tasks"]}
    assert by_dept[NAT]["clue_id"] == "clue-d" and by_dept[NAT]["task_kind"] == "clue"
    assert by_dept[ECO]["task_kind"] == "draw"
    # the public list names the joint visit; the natural-resources inspector sees it too
    public = client.get(f"/inspections/draws/{draw['id']}").json()
    assert next(i for i in public["items"] if i["entity"] == "ent-d")["inspection_id"] == \
        visit["id"]
    nat_task = client.get(f"/tasks/{by_dept[NAT]['id']}", headers=users[
        by_dept[NAT]["assignee"]]).json()
    assert nat_task["joint"] is True and nat_task["entity"] == "ent-d"

    # a second bureau's draw of the same entities joins the same visits
    draw2 = client.post("/inspections/draws", headers=admin,
                        json={"department": NAT, **period, "count": 4, "seed": 6}).json()
    ent_a = {d["entity"]: d for d in draw2["items"]}["ent-a"]
    ent_a_eco = {d["entity"]: d for d in draw["items"]}["ent-a"]
    assert ent_a["inspection_id"] == ent_a_eco["inspection_id"]
    joint_a = client.get(f"/inspections/{ent_a['inspection_id']}", headers=admin).json()
    assert joint_a["departments"] == [ECO, NAT] and len(joint_a["tasks"]) == 2
    # each department reports on its own task; both results stay
    for t, result in zip(joint_a["tasks"], ("confirmed", "false_positive"), strict=True):
        r = client.post(f"/tasks/{t['id']}/report", headers=users[t["co_assignee"]],
                        json={"result": result, "note": t["department"]})
        assert r.status_code == 200, r.text
    after = client.get(f"/inspections/{joint_a['id']}", headers=admin).json()
    assert {t["department"]: t["result"] for t in after["tasks"]} == \
        {ECO: "confirmed", NAT: "false_positive"}
    listed = client.get("/inspections", params={"joint": "true"}, headers=users["nat-1"]).json()
    assert joint_a["id"] in {v["id"] for v in listed}
    assert all(NAT in v["departments"] and v["joint"] for v in listed)
    # a clue task opened later at a drawn entity joins that entity's visit by itself
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO stations (id, owner_dept, entity) VALUES ('st-b', %s,"
                     " 'ent-b')", (NAT,))
    add_clue(fresh_db, "clue-b", NAT, "st-b")
    visit_b = {d["entity"]: d for d in draw["items"]}["ent-b"]["inspection_id"]
    deadline = time.monotonic() + 15
    while True:
        with psycopg.connect(fresh_db) as conn:
            got = conn.execute("SELECT inspection_id FROM tasks WHERE clue_id = 'clue-b'"
                               ).fetchone()[0]
        if got == visit_b:
            break
        assert time.monotonic() < deadline, f"clue-b's task stayed in inspection {got}"
        time.sleep(0.2)
    # merging again changes nothing (idempotent)
    groups = client.post("/inspections/merge", headers=admin).json()
    assert {g["entity"] for g in groups} <= set(ENTITIES)
    assert client.get(f"/inspections/{joint_a['id']}", headers=admin).json()["tasks"] == \
        after["tasks"]


def test_draw_refused_without_an_inspector_pair(client, make_user, fresh_db):  # type: ignore[no-untyped-def]
    registry(fresh_db)
    boss = make_user("boss-eco", ECO, "department_user")
    make_user("only-one", ECO, "inspector")
    r = client.post("/inspections/draws", headers=boss,
                    json={"department": ECO, "from": "2027-03-01", "to": "2027-03-31"})
    assert r.status_code == 422 and "two" in r.text
    r = client.post("/inspections/draws", headers=boss,
                    json={"department": ECO, "from": "2027-03-31", "to": "2027-03-01"})
    assert r.status_code == 422
