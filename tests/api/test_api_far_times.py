"""Times out of range (issue 20, case 4). The edge refuses them now (tests/ingest/
test_poison_mqtt.py, test_poison_hj212.py), but rows stored before -- year 10000 and year
0001 -- must not turn ``/health/stations`` and ``/api/readings`` into 500s: the valid
reading stored right after them is still served."""

from __future__ import annotations

import psycopg
from fastapi.testclient import TestClient

from tests.api.test_api_read import client as client  # noqa: F401 - fixture


def test_far_stored_times_do_not_break_reads(client: TestClient, fresh_db: str) -> None:  # noqa: F811
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO stations (id, name, interval_s) VALUES ('FAR', 'far', 3600)")
        conn.execute(
            "INSERT INTO readings (time, station, code, period, value, flag, source) VALUES"
            " ('9999-12-31 23:59:59-14', 'FAR', 'a34004', 'hour', 1, 'N', 'mqtt'),"
            " ('0001-01-01 00:00:00+00', 'FAR', 'a34004', 'hour', 2, 'N', 'mqtt'),"
            " (now() - interval '10 minutes', 'FAR', 'a34004', 'hour', 3, 'N', 'mqtt')")
        year = conn.execute("SELECT max(extract(year FROM time)) FROM readings").fetchone()
    assert year is not None and year[0] == 10000  # what the issue found stored
    readings = client.get("/api/readings", params={"station": "FAR"})
    assert readings.status_code == 200, readings.text
    assert [r["value"] for r in readings.json()] == [3.0]
    health = client.get("/health/stations")
    assert health.status_code == 200, health.text
    far = next(s for s in health.json() if s["station"] == "FAR")
    assert far["status"] == "ok"
