"""Fire events on the real FIRMS files: counts (detections, duplicates, events, masked, kinds)
and the time each step takes, offline and through the stream's per-cell monitor.

    .venv/bin/python -m bench.bench_fires [FIRMS.csv ...] [--quick]
    offsite bench fires [--quick]

Default files: ``samples/satellite/firms/*.csv`` (MODIS Collection 6.1 NRT Hotspot /
Active Fire Detections MCD14DL, NASA FIRMS, doi:10.5067/FIRMS/MODIS/MCD14DL.NRT.0061), read
by path. ``--quick`` draws evidence for the first 20 events only.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from contract.records import FireBatch
from detectors.fire import (
    FireEvent,
    FireParams,
    History,
    dedupe,
    find_events,
    group,
    persistent_days,
)
from detectors.fire_evidence import event_evidence
from detectors.fire_firms import parse_firms
from detectors.fire_monitor import FireConfig, FireMonitor
from ingest.firms import batches

FIRMS = Path(__file__).resolve().parents[1] / "samples" / "satellite" / "firms"


def one_file(paths: list[Path], quick: bool) -> dict[str, Any]:
    data = [p.read_bytes() for p in paths]
    t0 = time.perf_counter()
    parsed = [parse_firms(d) for d in data]
    t1 = time.perf_counter()
    dets = [d for p in parsed for d in p.detections]
    params = FireParams()
    result = find_events(dets, params)
    t2 = time.perf_counter()
    unmasked = [e for e in result.events if e.masked is None]
    drawn = unmasked[:20] if quick else unmasked
    for e in drawn:
        event_evidence(e, None, paths[0].name, parsed[0].sha256)
    t3 = time.perf_counter()
    kept, _ = dedupe(dets, params)
    hist = History(kept)
    days = Counter(persistent_days(FireEvent(g), hist, params) for g in group(kept, params))
    # the stream's path: per region cell, one monitor each, evidence included
    records = [r for p, d in zip(paths, parsed, strict=True)
               for r in batches(d.detections, p.name, d.sha256)]
    monitors: dict[str, FireMonitor] = {}
    t4 = time.perf_counter()
    clues = 0
    for r in records[:3] if quick else records:
        mon = monitors.setdefault(r.cell, FireMonitor(FireConfig(), r.cell))
        clues += len(mon.observe(FireBatch.model_validate(r.model_dump())))
    t5 = time.perf_counter()
    return {
        "files": [p.name for p in paths], "detections": result.detections,
        "bad_rows": sum(len(p.bad_rows) for p in parsed), "duplicates": result.duplicates,
        "events": len(result.events),
        "masked": dict(Counter(e.masked.split(":")[0] for e in result.events if e.masked)),
        "kinds": dict(Counter(e.kind for e in unmasked)),
        "detections_per_event": dict(sorted(Counter(len(e.detections)
                                                    for e in result.events).items())),
        "days_within_1km_of_event": dict(sorted(days.items())),
        "parse_s": round(t1 - t0, 4), "events_s": round(t2 - t1, 4),
        "evidence_s_per_event": round((t3 - t2) / max(len(drawn), 1), 4),
        "stream_records": len(records), "stream_cells": len({r.cell for r in records}),
        "stream_clues": clues, "stream_s": round(t5 - t4, 2),
    }


def main(quick: bool = False, files: list[Path] | None = None) -> dict[str, Any]:
    files = files or sorted(FIRMS.glob("*.csv"))
    runs = [one_file([f], quick) for f in files]
    if len(files) > 1:
        runs.append(one_file(files, quick))  # overlapping downloads together
    return {"benchmark": "fires", "quick": quick, "runs": runs}


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--quick"]
    print(json.dumps(main("--quick" in sys.argv, [Path(a) for a in args] or None), indent=1))
