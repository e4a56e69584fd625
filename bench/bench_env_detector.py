"""The env detector alone, as the worker drives it: CPU time per reading (issue 19.2).

``EnvProcessor.observe`` (the stream's entry point: ``observe_many`` plus the per-batch state
snapshot for the table) over hourly readings of several stations, one station's batch after
another as the worker's take batches hold them. Series: ``noise`` is the pipeline bench's
ordinary air (6 codes, uniform noise, nothing to report), ``dongsi`` the real Dongsi record
(6 codes, gaps, floor-level runs, exceedances). No Kafka, no database, no evidence plots.

Run: ``.venv/bin/python -m bench.bench_env_detector [--series noise|dongsi] [--readings N]
[--batch B] [--stations S] [--rounds R]``; prints one JSON line (us of CPU per reading, each
round, and the median).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.bench_env_pipeline import values
from contract.records import Reading
from detectors.env_config import EnvConfig
from detectors.env_io import read_beijing
from streams.env import EnvProcessor, default_entry

DONGSI = "samples/sensors/beijing_dongsi_2013-2017.csv"


def series(kind: str, station: str, n: int, rng: random.Random) -> list[Reading]:
    if kind == "dongsi":
        return [r.model_copy(update={"station": station})
                for r in list(read_beijing(DONGSI, station))[:n]]
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    return [Reading(station=station, time=t0 + timedelta(hours=i), period="hour",
                    values=values(rng), interval_s=3600, source="mqtt") for i in range(n)]


def one_round(data: dict[str, list[Reading]], batch: int) -> float:
    """CPU seconds to observe every station's series in batches of ``batch`` readings."""
    proc = EnvProcessor(EnvConfig(evidence=False))
    stored: dict[str, Any] = {}
    longest = max(len(r) for r in data.values())
    t0 = time.process_time()
    for i in range(0, longest, batch):
        for station, readings in data.items():
            part = readings[i:i + batch]
            if part:
                _, stored[station] = proc.observe(station, 0, part, stored.get(station),
                                                  default_entry(station, known=True), 0.0)
    return time.process_time() - t0


def main(kind: str = "noise", readings: int = 5000, batch: int = 2500, stations: int = 5,
         rounds: int = 3) -> dict[str, Any]:
    rng = random.Random(9)
    data = {f"S{k}": series(kind, f"S{k}", readings, rng) for k in range(stations)}
    total = sum(len(r) for r in data.values())
    per = [round(one_round(data, batch) / total * 1e6, 1) for _ in range(rounds)]
    return {"benchmark": "env-detector", "series": kind, "readings": total, "batch": batch,
            "us_per_reading": per, "median_us_per_reading": statistics.median(per)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", choices=["noise", "dongsi"], default="noise")
    parser.add_argument("--readings", type=int, default=5000, help="per station")
    parser.add_argument("--batch", type=int, default=2500,
                        help="readings per station per batch (500 records of 100 readings "
                             "over 20 stations: 2,500)")
    parser.add_argument("--stations", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(main(args.series, args.readings, args.batch, args.stations,
                          args.rounds)))
