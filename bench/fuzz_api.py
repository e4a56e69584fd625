"""Fuzz the HTTP API with schemathesis from its own OpenAPI document, on a real PostgreSQL.

A fresh database is seeded with one world (``seed_world``): two departments, a station, a
camera and a scene collection of ``water``, a clue of each modality with evidence, the
tasks the database opens for them, an access request and a live grant, and one user with a
bearer token per role. The real API runs under uvicorn (``serve_api``); schemathesis then sends
every operation of ``/openapi.json`` (all phases: examples, coverage, fuzzing, stateful) once
with the admin's token, once with a ``department_user``'s and once with an inspector's
(the only one who may report on a task), with the checks below. The
live stream (``GET /clues/stream``) is left out: it never ends by design.

``tests/api/test_api_schemathesis.py`` runs a bounded version of this in ``make test``.

Run: ``.venv/bin/python -m bench.fuzz_api [--max-examples 200] [--seed 1]``
(exit status 1 when schemathesis found a failure).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from offsite.services import remove_state, serve_api
from storage.users import add_user, issue_token

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ("not_a_server_error", "response_schema_conformance", "status_code_conformance",
          "content_type_conformance")
NEVER_ENDS = ("/clues/stream",)
ROLES = {"root": ("hq", "admin"), "wanda": ("water", "department_user"),
         "ivan": ("water", "inspector"), "olga": ("center", "center_operator"),
         "gary": ("grantee", "department_user")}
CLUES = {"c-env": ("env", "S1", "{}"), "c-video": ("video", "C1", "{}"),
         "c-sat": ("satellite", "T-42", '{"collection": "SC1"}'),
         "c-other": ("env", "S2", "{}")}


def seed_world(conn: psycopg.Connection) -> dict[str, str]:
    """Seed an empty, migrated database; returns the bearer token of each user (by name)."""
    conn.execute("INSERT INTO departments (id, name) VALUES ('water', 'Water bureau'),"
                 " ('other', 'Other bureau')")
    tokens: dict[str, str] = {}
    for name, (dept, role) in ROLES.items():
        add_user(conn, name, dept, role)
        tokens[name] = issue_token(conn, name)[1]
    conn.execute("INSERT INTO stations (id, owner_dept, interval_s) VALUES ('S1', 'water', 60),"
                 " ('S2', 'other', 60)")
    conn.execute("INSERT INTO cameras (id, owner_dept, url) VALUES ('C1', 'water', 'rtsp://x')")
    conn.execute("INSERT INTO scene_collections (id, owner_dept) VALUES ('SC1', 'water')")
    conn.execute("INSERT INTO readings (time, station, code, period, value, source) VALUES"
                 " (now(), 'S1', 'a34004', 'hour', 80, 'mqtt'),"
                 " (now(), 'S2', 'a34004', 'hour', 20, 'mqtt')")
    conn.execute("INSERT INTO camera_health (time, camera, online, fps) VALUES"
                 " (now(), 'C1', true, 2.0)")
    conn.execute("INSERT INTO rejected (id, time, source, reason, raw) VALUES ('r1', now(),"
                 " 'mqtt', 'not JSON', '\\x00'::bytea)")
    for clue_id, (modality, subject, metrics) in CLUES.items():
        dept = "other" if subject == "S2" else "water"
        conn.execute(
            "INSERT INTO clues (clue_id, modality, kind, rule, subject, state, start, time,"
            " confidence, metrics, location, department, zones) VALUES (%s, %s, 'exceedance',"
            " 'r', %s, 'open', now() - interval '1 hour', now(), 0.9, %s::jsonb,"
            " '{\"type\": \"Point\", \"coordinates\": [120, 30]}', %s,"
            " '[{\"id\": \"z1\", \"kind\": \"water_source\"}]')",
            (clue_id, modality, subject, metrics, dept))
    conn.execute("INSERT INTO evidence_keys (key_id, public_key_hex, public_key_pem) VALUES"
                 " ('k1', repeat('a', 64), 'pem')")
    for seq, clue_id in enumerate(CLUES, 1):
        conn.execute(
            "INSERT INTO evidence (time, id, clue_id, source, seq, fixed_at, sha256, prev_hash,"
            " record_hash, key_id, signature, media_type, name, content) VALUES (now(), %s, %s,"
            " 'src', %s, now(), repeat('b', 64), repeat('0', 64), repeat('c', 64), 'k1', 's',"
            " 'image/jpeg', 'frame.jpg', %s)",
            (f"e-{clue_id}", clue_id, seq, b"JPEG-" + clue_id.encode()))
    conn.execute(
        "INSERT INTO access_requests (requester_dept, requested_by, resource_kind, resource_id,"
        " owner_dept, purpose, permissions, valid_from, valid_until, state) VALUES"
        " ('grantee', 'gary', 'station', 'S1', 'water', 'p', ARRAY['history'], now(),"
        " now() + interval '1 day', 'pending'), ('grantee', 'gary', 'camera', 'C1', 'water',"
        " 'p', ARRAY['live','history','evidence'], now() - interval '1 day',"
        " now() + interval '1 day', 'approved')")
    conn.execute(
        "INSERT INTO grants (request_id, grantee_dept, resource_kind, resource_id, permissions,"
        " valid_from, valid_until, granted_by) SELECT id, requester_dept, resource_kind,"
        " resource_id, permissions, valid_from, valid_until, 'wanda' FROM access_requests"
        " WHERE state = 'approved'")
    conn.execute("INSERT INTO audit_log (user_id, department, action, resource_kind,"
                 " resource_id, owner_dept) VALUES ('root', 'hq', 'evidence.metadata',"
                 " 'camera', 'C1', 'water')")
    return tokens


def known_values() -> dict[str, list[str | int]]:
    """Ids that ``seed_world`` makes, by parameter (``path.clue_id``...): schemathesis uses
    one of them in half the cases, so requests get past the 404 to the code behind it. The
    serial ids (tasks: one per routed clue) are those of a fresh database; ``stored_values``
    reads the same from the database, to check."""
    return {"path.clue_id": sorted(CLUES), "path.evidence_id": sorted(f"e-{c}" for c in CLUES),
            "path.task_id": list(range(1, len(CLUES) + 1)), "path.request_id": [1, 2],
            "path.grant_id": [1], "query.station": ["S1", "S2"],
            "path.resource_id": ["C1", "S1", "S2", "SC1"],
            "query.department": sorted({"water", "other", *(d for d, _ in ROLES.values())}),
            "body.inspector": sorted(u for u, (_, r) in ROLES.items() if r == "inspector")}


def stored_values(conn: psycopg.Connection) -> dict[str, list[str | int]]:
    """What ``known_values`` says, read from the database."""
    sql = {"path.clue_id": "SELECT clue_id FROM clues", "path.evidence_id": "SELECT id FROM"
           " evidence", "path.task_id": "SELECT id FROM tasks", "path.request_id": "SELECT id"
           " FROM access_requests", "path.grant_id": "SELECT id FROM grants",
           "query.station": "SELECT id FROM stations",
           "path.resource_id": "SELECT id FROM resources", "query.department": "SELECT id FROM"
           " departments", "body.inspector": "SELECT id FROM users WHERE role = 'inspector'"}
    return {key: sorted(row[0] for row in conn.execute(q)) for key, q in sql.items()}


def config_toml(known: dict[str, list[str | int]]) -> str:
    """A ``schemathesis.toml`` binding each parameter to its known values."""
    lines = []
    for key, values in known.items():
        lines += [f'[dictionaries."{key}"]', f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    lines += [f'"{key}" = {{ dictionary = "{key}", probability = 0.5 }}' for key in known]
    return "\n".join(lines) + "\n"


def run_cli(base: str, token: str, config: Path, max_examples: int, seed: int) -> int:
    """One schemathesis CLI run with this bearer token; its exit status."""
    exe = Path(sys.executable).with_name("schemathesis")
    argv = [str(exe), "--config-file", str(config), "run", f"{base}/openapi.json",
            "--header", f"Authorization: Bearer {token}",
            "--checks", ",".join(CHECKS), "--max-examples", str(max_examples),
            "--seed", str(seed), "--workers", "1", "--no-color",
            *(a for p in NEVER_ENDS for a in ("--exclude-path", p))]
    return subprocess.run(argv, check=False).returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from offsite.services import EmbeddedServices
    from storage.migrate import migrate

    state = Path(tempfile.mkdtemp(prefix="fuzz-api-", dir=ROOT / ".state"
                                  if (ROOT / ".state").is_dir() else None))
    svc = EmbeddedServices(state)
    svc.start(kafka=False, mqtt=False)
    failed = 0
    try:
        migrate(svc.database_url)
        with psycopg.connect(svc.database_url) as conn:
            tokens = seed_world(conn)
            config = state / "schemathesis.toml"
            known = known_values()
            assert stored_values(conn) == known, "seed_world and known_values disagree"
            config.write_text(config_toml(known))
        with serve_api(svc.database_url) as base:
            for user in ("root", "wanda", "ivan"):
                started = time.monotonic()
                print(f"== schemathesis as {user} ({ROLES[user][1]})", flush=True)
                rc = run_cli(base, tokens[user], config, args.max_examples, args.seed)
                print(f"== {user}: exit {rc} in {time.monotonic() - started:.1f} s", flush=True)
                failed |= rc != 0
    finally:
        svc.stop()
        remove_state(state)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
