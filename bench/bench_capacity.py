"""The capacity plan (issue 19, point 4): three per-core figures measured in one run, and
the sizing of a province from them.

Measured here, one after the other on the same machine:

* env: readings per second per worker core with all env detection (``bench_env_pipeline``:
  MQTT -> Kafka -> worker -> PostgreSQL, CPU of the worker process tree);
* video: cameras per core at 2 fps analysis, decode of every frame included
  (``bench_video.camera_capacity``, H.264 768x432);
* satellite: Sentinel-2 tiles per hour per core (``bench_satellite_speed.s2_tile`` on a
  synthesised 10,980² six-band pair, one worker thread).

The province (issue 19): 20,000 stations at 1-minute data, 50,000 cameras, and the daily
Sentinel-2 tiles over it. ``plan`` turns the three figures into cores, partitions, workers
and the database write rate; its assumptions are the constants below, each with its why.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

STATIONS = 20_000
READINGS_PER_STATION_S = 1 / 60  # 1-minute data
CODES_PER_READING = 6  # an air station's PM2.5, PM10, SO2, NO2, CO, O3 (one row each)
CATCH_UP = 12  # after an hour's outage, the backlog is worked off in 5 minutes
CAMERAS = 50_000
ANALYSIS_FPS = 2
JPEG_KB = 45  # a 640 px wide frame at quality 80 (the ingester's encode_frame), measured ~35-55
S2_TILES_PER_DAY = 60  # a 150,000 km² province: ~25 MGRS tiles, overlaps, two satellites
S2_WINDOW_H = 2.0  # the day's tiles should be judged within two hours of delivery
HEADROOM = 0.6  # plan cores at 60 % busy: rebalances, bursts, a failed node's share
PARTITION_MB_S = 10.0  # a Kafka partition kept under ~10 MB/s for one consumer to follow


def measure(quick: bool = True) -> dict[str, Any]:
    """The three figures, measured now (the env one on embedded services)."""
    from bench import bench_env_pipeline, bench_satellite_speed, bench_video

    env = bench_env_pipeline.main(quick=quick)
    video = bench_video.camera_capacity(seconds=30.0 if quick else None)
    with tempfile.TemporaryDirectory() as tmp:
        s2 = bench_satellite_speed.s2_tile(Path(tmp))
    return {"readings_per_core_with_detection": env.get("readings_per_core_with_detection"),
            "env_detected_ratio_to_floor": env.get("detected_ratio_to_floor"),
            "env_clue_latency_p99_s": env.get("clue_latency_p99_s"),
            "cameras_per_core_2fps": video.get("cameras_per_core_2fps"),
            "s2_tiles_per_hour_per_core": s2.get("s2_tiles_per_hour_per_core"),
            "s2_cpu_s": s2.get("s2_cpu_s")}


def plan(figures: dict[str, Any]) -> dict[str, Any]:
    """Cores, partitions, workers and write rates for the province from measured figures."""
    readings_s = STATIONS * READINGS_PER_STATION_S
    env_cores = readings_s * CATCH_UP / figures["readings_per_core_with_detection"] / HEADROOM
    video_cores = CAMERAS / figures["cameras_per_core_2fps"] / HEADROOM
    frames_mb_s = CAMERAS * ANALYSIS_FPS * JPEG_KB / 1024
    s2_cores = S2_TILES_PER_DAY / S2_WINDOW_H / figures["s2_tiles_per_hour_per_core"] / HEADROOM
    env_workers = max(2, math.ceil(env_cores))
    return {
        "env": {"readings_per_s": round(readings_s), "rows_per_s": round(readings_s *
                                                                        CODES_PER_READING),
                "catch_up_rows_per_s": round(readings_s * CODES_PER_READING * CATCH_UP),
                "cores": round(env_cores, 2), "workers": env_workers,
                "partitions": max(12, 2 * env_workers)},
        "video": {"cores": math.ceil(video_cores),
                  "frames_per_s": CAMERAS * ANALYSIS_FPS,
                  "frames_mb_per_s": round(frames_mb_s),
                  "partitions": math.ceil(frames_mb_s / PARTITION_MB_S)},
        "satellite": {"tiles_per_day": S2_TILES_PER_DAY, "cores": round(s2_cores, 3)},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = argv if argv is not None else sys.argv[1:]
    figures = measure(quick="--full" not in args)
    return {"benchmark": "capacity", **figures, "plan": plan(figures)}


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
