"""A real FIRMS file dropped in the satellite inbox of a running system becomes fire clues
with evidence and tasks: inbox -> `offsite ingest satellite` -> sat.fires -> fire agent
(thread, Faust table) -> clue exit -> clues topic -> clues sink, evidence store, tasks.

MODIS Collection 6.1 NRT Hotspot / Active Fire Detections MCD14DL, NASA FIRMS,
doi:10.5067/FIRMS/MODIS/MCD14DL.NRT.0061 (read by path from ``../shared/data``; copied only
into the test's inbox).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

from detectors.fire import FireParams, find_events
from detectors.fire_firms import parse_firms

Flow = Any  # the `flow` fixture of tests/e2e/conftest.py
FIRMS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "satellite" / \
    "firms" / "modis_2022-05-28_06-04_shandong_box.csv"


def test_firms_csv_in_inbox_becomes_fire_clues(flow: Flow) -> None:
    state = Path(flow.env["OFFSITE_STATE_DIR"])
    inbox = state / "fire-inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    offline = find_events(parse_firms(FIRMS.read_bytes()).detections, FireParams()).events
    log = flow.logs / "ingest-fires.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "offsite", "ingest", "satellite", "--inbox", str(inbox),
             "--scan-s", "0.5", "--settle-s", "0.5"],
            env=flow.env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        shutil.copy(FIRMS, inbox / ".firms.part")
        (inbox / ".firms.part").rename(inbox / "firms_shandong.csv")  # appears whole
        rows = flow.wait_for(
            "SELECT clue_id, kind, state, confidence, metrics, location, department FROM clues"
            " WHERE modality = 'satellite' AND kind IN ('open_fire', 'straw_burning')",
            lambda r: len(r) >= len(offline) * 0.95, timeout=240)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    # the stream groups per region cell: an event across a cell edge may come as two
    assert len(offline) * 0.95 <= len(rows) <= len(offline) * 1.05
    for _id, kind, st, conf, metrics, location, dept in rows:
        assert kind == "open_fire"  # no zone of the demo registry lies in Shandong
        assert st in ("open", "update") and 0 < conf <= 0.99 and location["type"] == "Point"
        assert metrics["source"] == "firms_shandong.csv" and len(metrics["source_sha256"]) == 64
        assert dept  # routed: the catch-all rule's department
    some = rows[0][0]
    with psycopg.connect(flow.database_url) as conn:
        media = {r[0] for r in conn.execute(
            "SELECT media_type FROM evidence WHERE clue_id = %s", (some,))}
        due = conn.execute("SELECT hours FROM task_due_rules WHERE kind = 'open_fire'"
                           ).fetchone()
    assert {"image/png", "text/csv", "application/json"} <= media
    assert due == (24.0,)
