"""Declaring a heavy-pollution shutdown through the API: the monitoring center declares,
a department may only read, the scope must be registered, and the declaration is audited
and announced to the workers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

from storage.registry import Actor, import_folder
from tests.storage.test_registry_power import with_power

OWNER = "provincial-monitoring-center"


def test_center_declares_a_shutdown_and_departments_read_it(
        api: TestClient, fresh_db: str, tmp_path: Path,
        make_user: Callable[..., dict[str, str]]) -> None:
    with psycopg.connect(fresh_db) as conn:
        import_folder(conn, with_power(tmp_path / "f"), default_owner=OWNER,
                      actor=Actor("t", OWNER))
    center = make_user("zhou", OWNER, "center_operator")
    dept = make_user("li", "370102-ecology-environment", "department_user")
    body = {"scope": "cn-370102", "level": "红色", "start": "2099-01-10T00:00:00+08:00",
            "end": "2099-01-12T00:00:00+08:00"}
    assert api.post("/shutdowns", json=body, headers=dept).status_code == 403
    with psycopg.connect(fresh_db, autocommit=True) as listener:
        listener.execute("LISTEN offsite_registry")
        res = api.post("/shutdowns", json=body, headers=center)
        assert res.status_code == 201, res.text
        notices = [n.payload for n in listener.notifies(timeout=2, stop_after=1)]
    assert notices == ["shutdown"]
    assert res.json()["id"] == "cn-370102@2099-01-09T16:00:00+00:00"
    again = api.post("/shutdowns", json={**body, "level": "橙色"}, headers=center)
    assert again.status_code == 201 and again.json()["level"] == "橙色"  # same id, new level
    listed = api.get("/shutdowns", headers=dept).json()
    # the folder's own two (in force or to come) and the declared one, by start
    assert [(s["scope"], s["level"]) for s in listed][-1] == ("cn-370102", "橙色")
    assert sum(s["start"].startswith("2099") for s in listed) == 1
    bad = api.post("/shutdowns", json={**body, "scope": "nowhere"}, headers=center)
    assert bad.status_code == 422 and "nowhere" in bad.text
    backwards = api.post("/shutdowns", json={**body, "end": body["start"]}, headers=center)
    assert backwards.status_code == 422
    with psycopg.connect(fresh_db) as conn:
        audit = conn.execute("SELECT user_id, resource_id FROM audit_log"
                             " WHERE action = 'shutdown.declared' ORDER BY id").fetchall()
    assert audit == [("zhou", "cn-370102@2099-01-09T16:00:00+00:00")] * 2
