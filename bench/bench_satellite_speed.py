"""Detect throughput against the raw block-read throughput of the same files.

Why: reading is the floor; the ratio says how much the detector adds on top of I/O.
Usage: ``python -m bench.bench_satellite_speed [SIZE] [DIR]`` (default 4000, /tmp); the
pair is the synthetic one of ``bench_satellite_memory`` (tiled uint16, 6 bands).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import rasterio

from bench.bench_satellite_memory import synthesise


def raw_read(paths: list[Path]) -> float:
    """Seconds to read every block of every band of the files (one thread, no cache reuse)."""
    t = time.perf_counter()
    with rasterio.Env(GDAL_CACHEMAX=128 * 1024 * 1024):
        for p in paths:
            with rasterio.open(p) as ds:
                for _, win in ds.block_windows(1):
                    ds.read(window=win)
    return time.perf_counter() - t


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp")
    before = out / f"bench_before_{size}.tif"
    after = out / f"bench_after_{size}.tif"
    if not before.exists():
        synthesise(before, size, False, 1)
    if not after.exists():
        synthesise(after, size, True, 2)
    from detectors.satellite_files import detect_files

    mpx = size * size / 1e6
    reads, detects = [], []
    for _ in range(2):
        reads.append(raw_read([before, after]))
        t, cpu = time.perf_counter(), time.process_time()
        res = detect_files(before, after, workers=2)
        detects.append((time.perf_counter() - t, time.process_time() - cpu))
    r, (d, c) = min(reads), min(detects)
    # CPU seconds near the wall seconds with 2 worker threads: the threads did not run in
    # parallel (the other core was busy).
    print(f"size {size} ({mpx:.1f} Mpx per date, 6 bands uint16): raw block read of both "
          f"files {r:.2f} s = {mpx / r:.1f} Mpx/s; detect {d:.2f} s ({c:.2f} CPU s) = "
          f"{mpx / d:.1f} Mpx/s ({len(res.polygons)} polygons); detect/read speed ratio "
          f"{r / d:.2f}")


if __name__ == "__main__":
    main()
