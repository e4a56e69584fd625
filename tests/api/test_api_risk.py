"""``GET /risk`` and ``GET /risk/{entity}`` on a real PostgreSQL with the API's recomputer
running: filters, sort and paging, who sees which entity, contributions that link to their
clues, and a score that moves when an inspector rules a clue a false positive."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.risk_world import (
    ES1_ZONES,
    LIXIA_EE,
    LIXIA_NR,
    OTHER_EE,
    OWNER,
    add_clue,
    import_world,
)


def wait_for(client, headers, entity, check, timeout=15.0):  # type: ignore[no-untyped-def]
    """The entity's risk once ``check`` holds (the recomputer works in the background)."""
    deadline, body = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        got = client.get(f"/risk/{entity}", headers=headers)
        assert got.status_code == 200, got.text
        body = got.json()
        if body["computed_at"] and check(body):
            return body
        time.sleep(0.2)
    raise AssertionError(f"risk of {entity} never got there: {body}")


@pytest.fixture()
def world(api, make_user, fresh_db: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    import_world(fresh_db, tmp_path)
    users = {"center": make_user("center", OWNER, "center_operator"),
             "lixia": make_user("lixia", LIXIA_EE, "department_user"),
             "land": make_user("land", LIXIA_NR, "department_user"),
             "other": make_user("other", OTHER_EE, "department_user"),
             "insp": make_user("insp", LIXIA_EE, "inspector")}
    now = datetime.now(UTC)
    add_clue(fresh_db, "rep-1", kind="replay", subject="LX-0001", start=now - timedelta(hours=2),
             time=now, state="open", zones=ES1_ZONES)                      # E-1: 3 + 1
    add_clue(fresh_db, "exc-1", kind="exceedance", subject="LX-9001",
             start=now - timedelta(hours=3), time=now, end=now)            # E-1: 2
    add_clue(fresh_db, "exc-2", kind="exceedance", subject="HX-9001",
             start=now - timedelta(hours=3), time=now, end=now, department=OTHER_EE)  # E-2: 2
    wait_for(api, users["center"], "E-1", lambda b: b["score"] > 5.9)
    wait_for(api, users["center"], "E-2", lambda b: b["score"] > 1.9)
    return users


def entities(client, headers, **params):  # type: ignore[no-untyped-def]
    got = client.get("/risk", headers=headers, params=params)
    assert got.status_code == 200, got.text
    return [i["entity"] for i in got.json()["items"]]


def test_list_filters_sort_and_paging(api, world) -> None:  # type: ignore[no-untyped-def]
    center = world["center"]
    body = api.get("/risk", headers=center).json()
    assert [i["entity"] for i in body["items"]] == ["E-1", "E-2", "E-3"]
    first = body["items"][0]
    assert first["level"] == "medium" and first["credit_class"] == "C"
    assert first["score"] == pytest.approx(3 + 1 + 2, rel=1e-3)
    assert first["location"]["type"] == "GeometryCollection"  # drawn at its site zone
    assert body["items"][1]["location"]["type"] == "MultiPoint"  # no zone: at its station
    assert [c["clue_id"] for c in first["contributions"]] == ["rep-1", "exc-1"]
    names = {i["entity"]: i["name"] for i in body["items"]}
    assert entities(api, center, sort="name") == sorted(names, key=lambda e: names[e])
    assert entities(api, center, level="medium") == ["E-1"]
    assert entities(api, center, level="low") == ["E-2", "E-3"]
    assert entities(api, center, credit_class="A") == ["E-2"]
    assert entities(api, center, department=LIXIA_EE) == ["E-1", "E-3"]
    for sort in ("score", "name"):
        seen, cursor = [], None
        while True:
            params = {"limit": 1, "sort": sort, **({"after": cursor} if cursor else {})}
            page = api.get("/risk", headers=center, params=params).json()
            seen += [i["entity"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == entities(api, center, sort=sort)
    assert api.get("/risk", headers=center, params={"after": "nope"}).status_code == 422
    assert api.get("/risk", headers=center, params={"level": "extreme"}).status_code == 422


def test_departments_see_their_entities(api, world) -> None:  # type: ignore[no-untyped-def]
    assert entities(api, world["lixia"]) == ["E-1", "E-3"]  # it owns them
    assert entities(api, world["land"]) == ["E-1"]  # its county's enterprise site
    assert entities(api, world["other"]) == ["E-2"]
    assert api.get("/risk/E-2", headers=world["lixia"]).status_code == 404
    assert api.get("/risk/E-1", headers=world["other"]).status_code == 404
    assert api.get("/risk/NOPE", headers=world["center"]).status_code == 404
    assert api.get("/risk").status_code == 401


def test_contributions_link_clues_and_a_false_positive_lowers_the_score(
        api, world, fresh_db) -> None:  # type: ignore[no-untyped-def]
    center, insp = world["center"], world["insp"]
    before = api.get("/risk/E-1", headers=center).json()
    assert [c["clue_id"] for c in before["contributions"]] == ["rep-1", "exc-1"]
    for c in before["contributions"]:
        clue = api.get(c["link"], headers=center)
        assert clue.status_code == 200 and clue.json()["clue_id"] == c["clue_id"]
    assert len(before["history"]) >= 1
    task = next(t for t in api.get("/tasks", headers=insp).json() if t["clue_id"] == "rep-1")
    got = api.post(f"/tasks/{task['id']}/report", headers=insp,
                   json={"result": "false_positive", "note": "a calibration run"})
    assert got.status_code == 200, got.text
    after = wait_for(api, center, "E-1", lambda b: b["score"] < before["score"] - 3.9)
    assert after["score"] == pytest.approx(before["score"] - 4, rel=1e-3)  # 3 + 1 open: gone
    assert [c["clue_id"] for c in after["contributions"]] == ["exc-1"]
    assert after["level"] == "low"
    assert after["history"][0]["level"] == "low" and len(after["history"]) >= 2
