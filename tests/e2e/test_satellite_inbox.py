"""Two Taizhou scenes dropped in the inbox of a running system become satellite clues:
inbox -> `offsite ingest satellite` -> sat.scenes/sat.tiles -> satellite agent (thread pool,
Faust table) -> clues topic -> clues sink."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

Flow = Any  # the `flow` fixture of tests/e2e/conftest.py

TZ = Path(__file__).resolve().parents[2] / "samples" / "satellite" / "taizhou"


def _wait(predicate: Any, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text(errors='replace')}")


def test_scenes_in_inbox_become_satellite_clues(flow: Flow) -> None:
    state = Path(flow.env["OFFSITE_STATE_DIR"])
    inbox = state / "sat-inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    log = flow.logs / "ingest-satellite.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "offsite", "ingest", "satellite", "--inbox", str(inbox),
             "--scan-s", "0.5", "--settle-s", "0.5"],
            env=flow.env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        index = state / "satellite" / "scenes.json"
        for name in ("taizhou_2000_6band.tif", "taizhou_2003_6band.tif"):
            shutil.copy(TZ / name, inbox / f".{name}.part")
            (inbox / f".{name}.part").rename(inbox / name)  # appears whole
            stem = name.removesuffix(".tif")
            _wait(lambda s=stem: index.exists() and s in json.loads(index.read_text()),
                  30, f"scene {stem} published", log)
        rows = flow.wait_for(
            "SELECT kind, state, confidence, metrics, location, start FROM clues"
            " WHERE modality = 'satellite' AND kind NOT IN ('open_fire', 'straw_burning')",
            lambda r: len(r) > 20, timeout=45)  # fire clues: tests/e2e/test_firms_inbox.py
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    kinds = [r[0] for r in rows]
    assert max(set(kinds), key=kinds.count) == "vegetation_to_built"
    for _kind, st, conf, metrics, location, start in rows:
        assert st == "open" and metrics["confirmation"] == "low" and 0 < conf <= 0.5
        assert metrics["area_m2"] >= 1000 and location["type"] in ("Polygon", "MultiPolygon")
        assert start.year == 2003
