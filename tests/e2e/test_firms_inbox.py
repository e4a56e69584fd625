"""A real FIRMS file dropped in the satellite inbox of a running system becomes fire clues
with evidence and tasks due in 24 h: inbox -> `offsite ingest satellite` -> sat.fires -> fire agent
(thread, Faust table) -> clue exit -> clues topic -> clues sink, evidence store, tasks.

MODIS Collection 6.1 NRT Hotspot / Active Fire Detections MCD14DL, NASA FIRMS,
doi:10.5067/FIRMS/MODIS/MCD14DL.NRT.0061 (in ``samples/satellite/firms``; written,
with its dates moved, only into the test's inbox).
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
import signal
import subprocess
import sys
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg

from detectors.fire import FireParams, find_events
from detectors.fire_firms import parse_firms

Flow = Any  # the `flow` fixture of tests/e2e/conftest.py
FIRMS = Path(__file__).resolve().parents[2] / "samples" / "satellite" / \
    "firms" / "modis_2022-05-28_06-04_shandong_box.csv"


def shifted(days: int) -> bytes:
    """The real file with every acquisition date moved by ``days``: other tests of the session
    send the same rows to ``sat.fires``, and the worker rightly drops repeated rows."""
    rows = list(csv.DictReader(io.StringIO(FIRMS.read_text())))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        moved = date.fromisoformat(row["acq_date"]) + timedelta(days=days)
        writer.writerow({**row, "acq_date": moved.isoformat()})
    return out.getvalue().encode()


def test_firms_csv_in_inbox_becomes_fire_clues(flow: Flow) -> None:
    state = Path(flow.env["OFFSITE_STATE_DIR"])
    inbox = state / "fire-inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    data = shifted(-random.randint(400, 4000))
    name = f"firms_{uuid.uuid4().hex[:8]}.csv"
    offline = find_events(parse_firms(data).detections, FireParams()).events
    log = flow.logs / "ingest-fires.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "offsite", "ingest", "satellite", "--inbox", str(inbox),
             "--scan-s", "0.5", "--settle-s", "0.5"],
            env=flow.env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        (inbox / ".firms.part").write_bytes(data)
        (inbox / ".firms.part").rename(inbox / name)  # appears whole
        rows = flow.wait_for(
            "SELECT clue_id, kind, state, confidence, metrics, location, department, time"
            " FROM clues WHERE modality = 'satellite' AND kind IN ('open_fire', 'straw_burning')"
            f" AND metrics->>'source' = '{name}'",
            lambda r: len(r) >= len(offline) * 0.95 and any(x[2] == "closed" for x in r),
            timeout=240)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    # the stream groups per region cell: an event across a cell edge may come as two
    assert len(offline) * 0.95 <= len(rows) <= len(offline) * 1.05
    newest = max(d.time for d in parse_firms(data).detections)
    for _id, kind, st, conf, metrics, location, dept, last in rows:
        assert kind == "open_fire"  # no zone of the demo registry lies in Shandong
        assert st in ("open", "update", "closed") and 0 < conf <= 0.99
        assert location["type"] == "Point"
        if st == "closed":  # a week of fires in one file: the early ones are over
            assert newest - last > timedelta(hours=12)
        assert metrics["source_sha256"] == hashlib.sha256(data).hexdigest()
        assert dept  # routed: the catch-all rule's department
    some = rows[0][0]
    with psycopg.connect(flow.database_url) as conn:
        media = {r[0] for r in conn.execute(
            "SELECT media_type FROM evidence WHERE clue_id = %s", (some,))}
        task = conn.execute("SELECT clue_kind, extract(epoch FROM due_at - created_at)"
                            " FROM tasks WHERE clue_id = %s", (some,)).fetchone()
    assert {"image/png", "text/csv", "application/json"} <= media
    assert task is not None and task[0] == "open_fire"
    assert abs(float(task[1]) - 24 * 3600) < 5  # due in 24 h (migration 011_fire.sql)
