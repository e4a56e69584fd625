"""The worker dies between an env clue and its evidence: neither is lost, neither doubled.

The env agent sends a clue at once and the same clue again with its PNG once the plot is
drawn (``streams/env.py``, "Clue first, pictures after"); the readings' offsets and the
station's state are written only after the second send. Here the plot pool's child is
stopped (SIGSTOP) so the PNG can never come, the clue row appears without evidence, and the
worker is SIGKILLed in that state. The restarted worker re-reads the readings, raises the
same clue (one row, one open event) and draws the PNG: one evidence record whose sha256 is
that of its bytes, listed in the case.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

Rig = Any  # tests/faults/conftest.py
HOUR = timedelta(hours=1)


def hours_then_exceedance(rig: Rig, station: str, hours: int = 30) -> None:
    """``hours`` ordinary hourly readings ending two hours ago, then SO2 at 900 ug/m3 (a
    1-hour exceedance with a PNG on arrival); each message PUBACKed."""
    rng = random.Random(station)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    client = rig.client()
    infos = []
    for k in range(hours + 1):
        t = now - (hours + 2 - k) * HOUR
        so2 = 900.0 if k == hours else round(6.0 * (0.7 + 0.6 * rng.random()), 3)
        doc = {"time": t.isoformat(), "period": "hour", "interval_s": 3600,
               "values": {"a34004": round(30 * (0.7 + 0.6 * rng.random()), 3),
                          "a21026": so2}}
        infos.append(client.publish(f"offsite/env/{station}/json", json.dumps(doc), qos=1))
    deadline = time.monotonic() + 60
    for info in infos:
        while not info.is_published():
            assert time.monotonic() < deadline, "mosquitto did not PUBACK in 60 s"
            time.sleep(0.05)


def exceedance_clue(rig: Rig, station: str) -> str | None:
    rows = rig.query("SELECT clue_id FROM clues WHERE subject = %s AND kind = 'exceedance'",
                     (station,))
    return rows[0][0] if rows else None


def evidence_rows(rig: Rig, clue_id: str) -> list[tuple[str, str, bytes]]:
    return [(name, sha, bytes(content)) for name, sha, content in rig.query(
        "SELECT name, sha256, content FROM evidence WHERE clue_id = %s", (clue_id,))]


def plot_children(worker_pid: int) -> list[int]:
    """The worker's plot pool processes (spawned children; not the resource tracker)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (proc / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == worker_pid and b"spawn_main" in cmd:
            pids.append(int(proc.name))
    return pids


def test_worker_killed_between_clue_and_evidence(rig: Rig) -> None:
    # an exceedance first starts the worker's plot pool (it starts on the first plot)
    hours_then_exceedance(rig, "FAULT-EV-WARM")
    rig.wait_for("the warm-up clue's evidence", lambda: (
        (cid := exceedance_clue(rig, "FAULT-EV-WARM")) is not None
        and bool(evidence_rows(rig, cid))), timeout=90)
    worker = rig.procs["worker"].pid
    children = plot_children(worker)
    assert children, "no plot pool process under the worker"
    for pid in children:  # the PNG can now never be drawn (the pool waits 60 s for it)
        os.kill(pid, signal.SIGSTOP)
    try:
        hours_then_exceedance(rig, "FAULT-EV")
        rig.wait_for("the clue row", lambda: exceedance_clue(rig, "FAULT-EV") is not None,
                     timeout=60)
        clue_id = exceedance_clue(rig, "FAULT-EV")
        assert clue_id is not None
        assert evidence_rows(rig, clue_id) == []  # the clue came without waiting for it
        rig.stop_proc("worker", sig=signal.SIGKILL)  # between the clue and its evidence
    finally:
        for pid in children:  # ours: the stopped pool of the killed worker
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    time.sleep(1)
    rig.start_proc("worker")
    rig.wait_for("the evidence after the restart",
                 lambda: bool(evidence_rows(rig, clue_id)), timeout=120)
    time.sleep(3)  # anything doubled by a re-delivery would be there by now
    assert rig.query("SELECT count(*) FROM clues WHERE clue_id = %s", (clue_id,)) == [(1,)]
    assert rig.query("SELECT state, count(*) FROM clue_events WHERE clue_id = %s"
                     " GROUP BY state", (clue_id,)) == [("open", 1)]
    items = evidence_rows(rig, clue_id)
    assert len(items) == 1, [(n, s) for n, s, _ in items]
    name, sha, content = items[0]
    assert name.endswith(".png") and content.startswith(b"\x89PNG\r\n\x1a\n")
    assert sha == hashlib.sha256(content).hexdigest()
    rig.wait_for("the case listing the PNG", lambda: any(
        e["clue_id"] == clue_id and e["sha256"] == sha
        for (evidence,) in rig.query("SELECT evidence FROM cases WHERE %s = ANY(clue_ids)",
                                     (clue_id,)) for e in evidence), timeout=30)
    assert rig.alive("worker") and rig.alive("ingest")
