"""SQL injection and hostile values in every filter and path parameter of the data endpoints.

The caller is ``gary``, a ``department_user`` of ``grantee``, which holds one live grant (the
camera ``C1`` of ``water``) in ``bench.fuzz_api.seed_world``. For each parameter and each
payload: no 5xx; what a 200 returns is a subset of what the same endpoint returns gary
without the parameter (nothing outside his rights comes back); and afterwards every table
is still there with the same row count (the audit log only grows). The stream's resume
point gets the same payloads. All SQL in the API takes
values as bound parameters; this proves it holds at the edges. Also the regression tests of
the server errors schemathesis found (``test_api_schemathesis.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from bench.fuzz_api import seed_world

PAYLOADS = ["'", '"', "' OR '1'='1", "' OR 1=1 --", "x') OR ('1'='1", "'; DROP TABLE clues; --",
            "1; DROP TABLE users", "' UNION SELECT token_sha256 FROM api_tokens --",
            "water' --", "/* */ OR /**/ 1=1", "%", "_", "\\", "\\x00", "\x00", "a\x00b",
            "😀 ü 中文 \u202e", "\ufeff", "-1", "0", "99999999999999999999999999",
            "1e309", "NaN", "null", "[]", "{}", "x" * 20_000]
# the legitimate request of each endpoint (no filter), and how to name what it returned
ENDPOINTS: dict[str, tuple[list[str], Callable[[object], set]]] = {
    "/clues": (["kind", "status", "modality", "since", "until", "bbox", "zone", "department",
                "limit", "cursor"], lambda b: {c["clue_id"] for c in b["items"]}),
    "/tasks": (["state", "department", "limit"], lambda b: {t["id"] for t in b}),
    "/audit": (["since", "limit"], lambda b: {a["id"] for a in b}),
    "/stats": (["department", "since", "until"], lambda b: {b["department"]}),
    "/access-requests": (["state"], lambda b: {r["id"] for r in b}),
    "/grants": ([], lambda b: {g["id"] for g in b}),
    "/api/readings": (["code", "since", "limit"], lambda b: {(r["time"], r["code"]) for r in b}),
    "/zones": (["kind"], lambda b: {f["properties"]["id"] for f in b["features"]}),
    "/resources": (["kind", "owner", "bbox", "q", "status", "limit", "cursor"],
                   lambda b: {(i["kind"], i["id"], i["access"]) for i in b["items"]}),
    "/risk": (["department", "credit_class", "level", "sort", "limit", "after"],
              lambda b: {i["entity"] for i in b["items"]}),
}
PATHS = ["/clues/{}", "/evidence/{}", "/evidence/{}/content", "/tasks/{}", "/tasks/{}/bundle",
         "/resources/station/{}", "/risk/{}"]


@pytest.fixture()
def world(api: TestClient, fresh_db: str) -> dict:
    with psycopg.connect(fresh_db) as conn:
        tokens = seed_world(conn)
    return {"auth": {"Authorization": f"Bearer {tokens['gary']}"},
            "admin": {"Authorization": f"Bearer {tokens['root']}"}}


def table_counts(db: str) -> dict[str, int]:
    with psycopg.connect(db) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def assert_intact(before: dict[str, int], db: str) -> None:
    after = table_counts(db)
    assert after.keys() == before.keys()
    grown = {t for t in after if after[t] != before[t]}
    assert grown <= {"audit_log"} and after["audit_log"] >= before["audit_log"], (before, after)


def test_injection_in_every_filter(api: TestClient, world: dict, fresh_db: str) -> None:
    before = table_counts(fresh_db)
    failures = []
    for path, (params, keys) in ENDPOINTS.items():
        legit_params = {"station": "S1"} if path == "/api/readings" else {}
        legit = api.get(path, params=legit_params, headers=world["auth"])
        assert legit.status_code in (200, 404), (path, legit.text)
        allowed = keys(legit.json()) if legit.status_code == 200 else set()
        for param in (["station", *params] if path == "/api/readings" else params):
            for payload in PAYLOADS:
                query = {**legit_params, param: payload}
                got = api.get(path, params=query, headers=world["auth"])
                if got.status_code >= 500:
                    failures.append((path, param, payload[:40], got.status_code))
                elif got.status_code == 200 and not keys(got.json()) <= allowed:
                    failures.append((path, param, payload[:40], "LEAK",
                                     keys(got.json()) - allowed))
    assert not failures, failures
    assert_intact(before, fresh_db)


def test_injection_in_every_path_parameter(api: TestClient, world: dict, fresh_db: str) -> None:
    before = table_counts(fresh_db)
    failures = []
    for template in PATHS:
        for payload in PAYLOADS:
            got = api.get(template.format(quote(payload, safe="")), headers=world["auth"])
            # gary may see only c-video and its evidence; none of these names it
            if got.status_code >= 500 or got.status_code == 200:
                failures.append((template, payload[:40], got.status_code))
    for payload in PAYLOADS:  # ids in JSON bodies and in the paths of POSTs
        for path, body in ((f"/tasks/{quote(payload, safe='')}/assign", {"inspector": "ivan"}),
                           ("/tasks/1/assign", {"inspector": payload}),
                           (f"/access-requests/{quote(payload, safe='')}/approve", {}),
                           ("/access-requests/2/deny", {"note": payload}),
                           ("/access-requests", {"resources": [{"kind": "camera", "id": payload}],
                                                 "purpose": payload, "permissions": ["live"],
                                                 "valid_until": "2099-01-01T00:00:00Z"})):
            got = api.post(path, json=body, headers=world["auth"])
            if got.status_code >= 500 or got.status_code in (200, 201):
                failures.append((path, str(body)[:60], got.status_code))
    assert not failures, failures
    assert_intact(before, fresh_db)


def test_injection_in_the_stream_resume_point(live_api: str, fresh_db: str) -> None:
    """``GET /clues/stream`` (Last-Event-ID header or ``last_event_id``): an event id or a
    422, never a 5xx; a stream that opens starts with its preamble."""
    with psycopg.connect(fresh_db) as conn:
        token = seed_world(conn)["gary"]
    auth = {"Authorization": f"Bearer {token}"}
    statuses = set()
    with httpx.Client(base_url=live_api, timeout=httpx.Timeout(10, read=10)) as client:
        for payload in [p for p in PAYLOADS if p.isascii() and p.isprintable()]:
            for headers, params in (({**auth, "Last-Event-ID": payload}, {}),
                                    (auth, {"last_event_id": payload})):
                with client.stream("GET", "/clues/stream", headers=headers,
                                   params=params) as got:
                    statuses.add(got.status_code)
                    assert got.status_code in (200, 422), (payload[:40], got.status_code)
                    if got.status_code == 200:
                        assert next(got.iter_lines()).startswith("retry:")
    assert statuses == {200, 422}


def test_injected_values_match_nothing(api: TestClient, world: dict) -> None:
    """A quote-breaking filter is compared as a plain value: the admin, who sees every clue,
    gets none back (the SQL did not turn it into ``OR true``)."""
    everything = api.get("/clues", headers=world["admin"]).json()["items"]
    assert len(everything) == 4
    for param in ("kind", "status", "zone", "department"):
        for payload in ("' OR '1'='1", "x' OR 1=1 --", "') OR TRUE --"):
            got = api.get("/clues", params={param: payload}, headers=world["admin"])
            assert got.status_code == 200 and got.json()["items"] == [], (param, payload)


# Regressions: server errors that schemathesis found (each was a 500 before)

def test_nul_character_in_text_is_422(api: TestClient, world: dict) -> None:
    """PostgreSQL text holds no NUL: psycopg raised DataError (``GET /tasks?department=``
    with a NUL, then every other text parameter and JSON field)."""
    for path, params in (("/tasks", {"department": "a\x00b"}), ("/clues", {"kind": "\x00"}),
                         ("/api/readings", {"station": "S\x001"})):
        got = api.get(path, params=params, headers=world["admin"])
        assert got.status_code == 422, (path, got.text)
        assert got.json()["detail"][0]["loc"] == ["query", next(iter(params))]
    assert api.get("/clues/c-env%00", headers=world["admin"]).status_code == 422
    got = api.post("/tasks/1/assign", json={"inspector": "iv\x00an"}, headers=world["admin"])
    assert got.status_code == 422 and got.json()["detail"][0]["loc"] == ["body", "inspector"]


def test_lone_surrogate_in_json_is_422(api: TestClient, world: dict) -> None:
    """``"\\udb39"`` in a JSON string parses to a str that cannot be encoded for the
    database (UnicodeEncodeError)."""
    got = api.post("/tasks/1/assign", content=b'{"inspector": "\\udb39x"}',
                   headers={**world["admin"], "Content-Type": "application/json"})
    assert got.status_code == 422, got.text


def test_stats_period_at_year_one_is_422(api: TestClient, world: dict) -> None:
    """``/stats?until=0001-01-01T00:00:00Z``: the default ``since`` (30 days before)
    overflowed datetime (OverflowError)."""
    for params in ({"until": "0001-01-01T00:00:00Z"}, {"since": "0001-01-01T00:00:00+05:00"},
                   {"until": "9999-12-31T23:59:59-05:00"}):
        got = api.get("/stats", params=params, headers=world["admin"])
        assert got.status_code == 422, (params, got.text)
    assert api.get("/clues", params={"since": "0001-01-01T00:00:00+14:00"},
                   headers=world["admin"]).status_code == 422


def test_hand_made_422_has_fastapi_shape(api: TestClient, world: dict) -> None:
    """Checks made after parsing answered ``{"detail": "text"}`` where the OpenAPI document
    promises FastAPI's list of ``{loc, msg, type}`` (schemathesis: schema violation)."""
    for params in ({"cursor": "!!"}, {"bbox": "1,2,3"}):
        got = api.get("/clues", params=params, headers=world["admin"])
        assert got.status_code == 422
        (error,) = got.json()["detail"]
        assert error["loc"] == ["query", next(iter(params))] and error["msg"]
