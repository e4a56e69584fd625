"""Bearer tokens: issued and revoked from the CLI, hashed at rest, checked on every endpoint;
and the request / approve / revoke flow of department access."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from contract.settings import get_settings
from offsite.cli import app as cli


def test_cli_users_and_tokens_hashed_at_rest(api: TestClient, fresh_db: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFSITE_DATABASE_URL", fresh_db)
    get_settings.cache_clear()
    runner = CliRunner()
    out = runner.invoke(cli, ["user", "add", "alice", "--department", "env-bureau",
                              "--role", "inspector"])
    assert out.exit_code == 0, out.output
    assert runner.invoke(cli, ["user", "add", "bob", "-d", "x", "-r", "king"]).exit_code != 0
    issued = runner.invoke(cli, ["token", "issue", "alice"])
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.strip().splitlines()[-1]
    token_id = token.split(".")[0]
    assert token_id.startswith("tok_") and len(token) > 40

    auth = {"Authorization": f"Bearer {token}"}
    assert api.get("/me", headers=auth).json() == {
        "id": "alice", "department": "env-bureau", "role": "inspector"}

    # nothing in users or api_tokens holds the token or its secret part
    secret = token.split(".", 1)[1]
    with psycopg.connect(fresh_db) as conn:
        for table in ("users", "api_tokens"):
            dump = " ".join(str(v) for row in conn.execute(f"SELECT * FROM {table}")
                            for v in row)
            assert token not in dump and secret not in dump
        stored = conn.execute("SELECT token_sha256 FROM api_tokens WHERE id = %s",
                              (token_id,)).fetchone()
    assert stored is not None and len(stored[0]) == 64

    revoked = runner.invoke(cli, ["token", "revoke", token_id])
    assert revoked.exit_code == 0, revoked.output
    assert api.get("/me", headers=auth).status_code == 401
    assert runner.invoke(cli, ["token", "revoke", token_id]).exit_code == 1
    assert runner.invoke(cli, ["token", "issue", "nobody"]).exit_code != 0


def test_every_data_endpoint_needs_a_valid_token(api: TestClient, fresh_db: str,
                                                 make_user: Callable[..., dict]) -> None:
    good = make_user("root", "hq", "admin")
    with psycopg.connect(fresh_db) as conn:
        conn.execute("UPDATE api_tokens SET expires_at = now() - interval '1 s'")
    expired = good
    paths = ["/clues", "/clues/x", "/clues/stream", "/evidence/x", "/evidence/x/content",
             "/health/cameras", "/health/stations", "/api/readings?station=S1",
             "/api/rejected", "/access-requests", "/grants", "/audit", "/me"]
    for path in paths:
        for headers in ({}, {"Authorization": "Bearer nope"}, expired,
                        {"Authorization": "Basic YTpi"}):
            assert api.get(path, headers=headers).status_code == 401, (path, headers)
    assert api.get("/healthz").status_code == 200  # service endpoints stay open
    assert api.get("/metrics").status_code == 200


def test_openapi_document(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    for path in ("/clues", "/clues/{clue_id}", "/clues/stream", "/evidence/{evidence_id}",
                 "/evidence/{evidence_id}/content", "/health/cameras", "/health/stations",
                 "/access-requests", "/access-requests/{request_id}/approve",
                 "/grants/{grant_id}/revoke", "/audit"):
        assert path in doc["paths"], path
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_request_approve_revoke(api: TestClient, fresh_db: str,
                                make_user: Callable[..., dict]) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO departments (id, name) VALUES ('water', 'Water'),"
                     " ('eco', 'Ecology')")
        conn.execute("INSERT INTO stations (id, owner_dept, interval_s) VALUES"
                     " ('S1', 'water', 3600)")
        conn.execute("INSERT INTO readings (time, station, code, period, value, source) VALUES"
                     " (now(), 'S1', 'w01018', 'hour', 12, 'mqtt')")
    owner = make_user("wanda", "water", "department_user")
    owner_inspector = make_user("ivan", "water", "inspector")
    asker = make_user("erin", "eco", "department_user")
    read = {"station": "S1"}
    assert api.get("/api/readings", params=read, headers=asker).status_code == 404
    assert len(api.get("/api/readings", params=read, headers=owner).json()) == 1

    body = {"resources": [{"kind": "station", "id": "S1"}], "purpose": "river survey",
            "permissions": ["history"], "valid_until": "2999-01-01T00:00:00Z"}
    assert api.post("/access-requests", json={**body, "resources": [
        {"kind": "station", "id": "nope"}]}, headers=asker).status_code == 404
    assert api.post("/access-requests", json=body, headers=owner).status_code == 400
    (req,) = api.post("/access-requests", json=body, headers=asker).json()
    assert req["state"] == "pending" and req["owner_dept"] == "water"
    assert [r["id"] for r in api.get("/access-requests", headers=owner).json()] == [req["id"]]

    rid = req["id"]
    assert api.post(f"/access-requests/{rid}/approve", headers=asker).status_code == 403
    assert api.post(f"/access-requests/{rid}/approve",
                    headers=owner_inspector).status_code == 403
    assert api.get("/api/readings", params=read, headers=asker).status_code == 404
    done = api.post(f"/access-requests/{rid}/approve", json={"note": "ok"}, headers=owner)
    assert done.status_code == 200 and done.json()["state"] == "approved"
    assert api.post(f"/access-requests/{rid}/deny", headers=owner).status_code == 409
    assert len(api.get("/api/readings", params=read, headers=asker).json()) == 1

    (grant,) = api.get("/grants", headers=asker).json()
    assert grant["status"] == "live" and grant["permissions"] == ["history"]
    assert api.post(f"/grants/{grant['id']}/revoke", headers=asker).status_code == 403
    revoked = api.post(f"/grants/{grant['id']}/revoke", headers=owner)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert api.get("/api/readings", params=read, headers=asker).status_code == 404
    assert api.post(f"/grants/{grant['id']}/revoke", headers=owner).status_code == 409


def test_raw_token_is_nowhere_in_the_database(api: TestClient, fresh_db: str) -> None:
    """After a token was used on every kind of endpoint (reads, audited evidence access,
    writes), no row of any table holds the token or its secret part; only its sha256."""
    from bench.fuzz_api import seed_world
    from storage.users import hash_token

    with psycopg.connect(fresh_db) as conn:
        tokens = seed_world(conn)
    token = tokens["root"]
    auth = {"Authorization": f"Bearer {token}"}
    for path in ("/me", "/clues", "/clues/c-env", "/evidence/e-c-env/content", "/tasks",
                 "/audit", "/stats", "/grants"):
        assert api.get(path, headers=auth).status_code == 200, path
    assert api.post("/access-requests/1/approve", json={"note": "ok"},
                    headers=auth).status_code == 200
    secret = token.split(".", 1)[1]
    with psycopg.connect(fresh_db) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        dump = "\n".join(row[0] for t in tables
                         for row in conn.execute(f'SELECT t::text FROM "{t}" t'))
    assert len(tables) > 10 and "evidence.content" in dump  # the audit row is there
    assert token not in dump and secret not in dump
    assert hash_token(token) in dump
