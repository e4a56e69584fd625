"""The neighbour rules alone, as the region agent drives them: CPU time per station-hour.

``RegionJudge.judge_hours`` over the hours of a city of registered ambient stations (a grid
of ``--stations`` within one region cell, each judged against its nearest 6 within 50 km),
PM2.5, PM10 and CO of the pipeline bench's ordinary air (uniform noise around fixed levels,
nothing to report), one hour after another as a cell's hours become ready. It includes
the station's refits (bias, spread and the CO witness regression every 24 judged hours),
which is most of the cost; no Kafka, no table, no plots. Issue 19.2: in the env pipeline
bench every reading is an hour of an ambient station, so this is the region stage's part
of each reading.

Run: ``.venv/bin/python -m bench.bench_env_region [--stations S] [--hours H] [--rounds R]``;
prints one JSON line (us of CPU per station-hour, each round and the median).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

from bench.bench_env_pipeline import CODES
from detectors.env_neighbours import CO, PM10, PM25, NeighbourMap, Site
from detectors.env_region import RegionJudge

JUDGED = (PM25, PM10, CO)  # the judged codes and the witness, as the summaries carry them


def one_round(stations: int, hours: int, seed: int) -> float:
    """CPU seconds per station-hour of one run from empty states."""
    rng = random.Random(seed)
    side = max(1, round(stations ** 0.5))
    sites = [Site(f"BENCH-NB-{i:04d}", 116.0 + 0.05 * (i % side), 39.8 + 0.05 * (i // side))
             for i in range(stations)]
    judge = RegionJudge(NeighbourMap(sites))
    t0 = time.process_time()
    for h in range(hours):
        by_code = {c: {s.id: round(CODES[c] * (0.7 + 0.6 * rng.random()), 3) for s in sites}
                   for c in JUDGED}
        judge.judge_hours(1.7e9 + h * 3600.0, by_code)
    return (time.process_time() - t0) / (stations * hours)


def main(stations: int = 36, hours: int = 1000, rounds: int = 3) -> dict[str, Any]:
    us = [round(one_round(stations, hours, seed) * 1e6, 1) for seed in range(rounds)]
    return {"benchmark": "env-region", "stations": stations, "hours": hours,
            "us_per_station_hour": us, "median_us": statistics.median(us)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stations", type=int, default=36)
    parser.add_argument("--hours", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(main(args.stations, args.hours, args.rounds)))
