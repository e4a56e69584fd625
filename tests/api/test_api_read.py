"""The HTTP API on a real database: health, metrics, readings and dead letters (as admin)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from contract.settings import get_settings
from storage.users import add_user, issue_token


@pytest.fixture()
def client(fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("OFFSITE_DATABASE_URL", fresh_db)
    get_settings.cache_clear()
    from api.app import app

    with psycopg.connect(fresh_db) as conn:
        add_user(conn, "root", "hq", "admin")
        _, token = issue_token(conn, "root")
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
        yield c
    get_settings.cache_clear()


def test_health_and_metrics(client: TestClient) -> None:
    def healthz_count() -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith('offsite_api_requests_total{path="/healthz"}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = healthz_count()  # the counter is per process: other tests count too
    assert client.get("/healthz").json() == {"status": "ok"}
    client.get("/healthz")
    assert healthz_count() == before + 2


def test_readings_filtered_by_station_code_and_time(client: TestClient, fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "INSERT INTO readings (time, station, code, period, value, flag, source) VALUES"
            " ('2016-01-01 01:00+08', 'S1', 'a34004', 'hour', 80, 'N', 'mqtt'),"
            " ('2016-01-01 02:00+08', 'S1', 'a34004', 'hour', 90, 'N', 'mqtt'),"
            " ('2016-01-01 02:00+08', 'S1', 'a21026', 'hour', 3, 'N', 'mqtt'),"
            " ('2016-01-01 02:00+08', 'S2', 'a34004', 'hour', 10, 'N', 'mqtt')")
    rows = client.get("/api/readings", params={"station": "S1", "code": "a34004",
                                               "since": "2016-01-01T01:30:00+08:00"}).json()
    assert [(r["code"], r["value"]) for r in rows] == [("a34004", 90.0)]
    assert len(client.get("/api/readings", params={"station": "S1"}).json()) == 3
    assert client.get("/api/readings").status_code == 422  # station is required


def test_rejected_returns_raw_bytes(client: TestClient, fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO rejected (id, time, source, reason, raw) VALUES"
                     " ('x', now(), 'mqtt', 'not JSON', '\\x00ff'::bytea)")
    (row,) = client.get("/api/rejected").json()
    assert row["reason"] == "not JSON" and row["raw_base64"] == "AP8="
