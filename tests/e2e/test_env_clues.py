"""Hourly readings of a registered station over MQTT become a routed exceedance clue and a
case: MQTT -> env.readings -> env monitor (Faust table) -> clues topic -> clues sink with
routing, and the fusion agent -> cases."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import psycopg

Flow = Any  # the `flow` fixture of tests/e2e/conftest.py

STATION = "E2E-ENV-DONGSI"
RULE = "GB3095-2012/II/a34004/24h"


def test_pm25_day_over_limit_gives_routed_clue_and_case(flow: Flow) -> None:
    with psycopg.connect(flow.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO stations (id, name, st, lon, lat, interval_s)"
                     " VALUES (%s, 'Dongsi (e2e)', '22', 116.417, 39.929, 3600)"
                     " ON CONFLICT (id) DO NOTHING", (STATION,))
    day = [80.0 + 5 * (h % 5) for h in range(24)]  # mean 89.6 over 24 valid hours
    batch = [{"time": f"2025-03-10T{h:02d}:00:00+08:00", "period": "hour",
              "values": {"a34004": v}} for h, v in enumerate(day)]
    batch.append({"time": "2025-03-11T00:00:00+08:00", "period": "hour",
                  "values": {"a34004": 20.0}})  # the next day's first hour closes the day
    flow.publish(f"offsite/env/{STATION}/json", json.dumps(batch).encode())

    rows = flow.wait_for(
        "SELECT clue_id, kind, state, metrics, site, department, jurisdiction, zones, location,"
        " start FROM clues WHERE subject = %s AND rule = %s", lambda r: len(r) == 1,
        timeout=60, params=(STATION, RULE))
    clue_id, kind, state, metrics, site, dept, juris, zones, location, start = rows[0]
    assert kind == "exceedance" and state == "open"
    assert metrics["limit"] == 75 and metrics["window_mean"] == round(sum(day) / 24, 4)
    assert metrics["valid_hours"] == 24 and metrics["exceeding_windows"] == 1
    assert start.isoformat() == "2025-03-09T16:00:00+00:00"  # local midnight, UTC+8
    assert location == {"type": "Point", "coordinates": [116.417, 39.929]}
    assert site == "gh:wx4g1h" and dept == "110101-ecology-environment"
    assert juris == "cn-110101" and [z["id"] for z in zones] == ["cn-110101"]

    events = flow.wait_for("SELECT payload->'routing'->>'department' FROM clue_events"
                           " WHERE clue_id = %s", bool, timeout=10, params=(clue_id,))
    assert events[0][0] == dept

    cases = flow.wait_for(
        "SELECT case_id, modalities, clue_ids, confidence, department, evidence FROM cases"
        " WHERE site = %s AND %s = ANY(clue_ids)",
        # the clue comes first, its PNG after it (streams.evidence): wait for both
        lambda r: bool(r) and any(e["clue_id"] == clue_id for e in r[0][5]),
        timeout=30, params=(site, clue_id))
    case_id, modalities, clue_ids, confidence, case_dept, evidence = cases[0]
    assert case_id.startswith(f"case:{site}:") and modalities == ["env"]
    assert confidence == 1.0 and case_dept == dept
    assert any(e["clue_id"] == clue_id and e["media_type"] == "image/png" for e in evidence)

    # the clue's plot is fixed in the evidence store: hashed, chained, signed, verifiable
    fixed = flow.wait_for("SELECT media_type, sha256, seq, signature FROM evidence"
                          " WHERE clue_id = %s", bool, timeout=30, params=(clue_id,))
    assert fixed[0][0] == "image/png" and len(fixed[0][1]) == 64 and fixed[0][3]
    assert {e["sha256"] for e in evidence} >= {fixed[0][1]}
    verify = subprocess.run([sys.executable, "-m", "offsite", "evidence", "verify"],
                            env=flow.env, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
