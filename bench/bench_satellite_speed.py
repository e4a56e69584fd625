"""Detect throughput against the raw block-read throughput of the same files, and the
Sentinel-2 capacity figure.

Why: reading is the floor; the ratio says how much the detector adds on top of I/O. The
capacity plan needs scenes per hour per core for a Sentinel-2 tile (10,980² px, 6 bands).
Usage: ``python -m bench.bench_satellite_speed [SIZE] [DIR] [ROUNDS] [--s2]`` (default 4000,
/tmp, 2); the pair is the synthetic one of ``bench_satellite_memory`` (tiled uint16, 6
bands). Rounds alternate the raw read and ``detect_files``; medians are printed. ``--s2``
also synthesises a 10,980² pair in DIR (2.9 GB) and times ``detect_files`` on it with one
worker thread: its process CPU time is one core's cost of a tile.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import rasterio

from bench.bench_satellite_memory import synthesise

S2_SIDE = 10980


def raw_read(paths: list[Path]) -> float:
    """Seconds to read every block of every band of the files (one thread, no cache reuse)."""
    t = time.perf_counter()
    with rasterio.Env(GDAL_CACHEMAX=128 * 1024 * 1024):
        for p in paths:
            with rasterio.open(p) as ds:
                for _, win in ds.block_windows(1):
                    ds.read(window=win)
    return time.perf_counter() - t


def pair(size: int, out: Path) -> tuple[Path, Path]:
    before, after = out / f"bench_before_{size}.tif", out / f"bench_after_{size}.tif"
    if not before.exists():
        synthesise(before, size, False, 1)
    if not after.exists():
        synthesise(after, size, True, 2)
    return before, after


def timed(fn: Any, *args: Any, **kw: Any) -> tuple[Any, float, float]:
    """(result, wall s, process CPU s)."""
    t, cpu = time.perf_counter(), time.process_time()
    res = fn(*args, **kw)
    return res, time.perf_counter() - t, time.process_time() - cpu


def measure(size: int, out: Path, rounds: int = 2, workers: int = 2) -> dict[str, Any]:
    """Alternating rounds of raw read and detect on one pair: medians and ratios."""
    from detectors.satellite_files import detect_files

    before, after = pair(size, out)
    reads, detects, polygons = [], [], 0
    for _ in range(rounds):
        _, w, c = timed(raw_read, [before, after])
        reads.append((w, c))
        res, w, c = timed(detect_files, before, after, workers=workers)
        detects.append((w, c))
        polygons = len(res.polygons)
    rw, rc = (statistics.median(x[i] for x in reads) for i in (0, 1))
    dw, dc = (statistics.median(x[i] for x in detects) for i in (0, 1))
    mpx = size * size / 1e6
    return {"size": size, "rounds": rounds, "workers": workers, "polygons": polygons,
            "raw_read_s": round(rw, 3), "raw_read_cpu_s": round(rc, 3),
            "detect_s": round(dw, 3), "detect_cpu_s": round(dc, 3),
            "detect_mpx_per_s": round(mpx / dw, 2), "ratio_wall": round(rw / dw, 3),
            "ratio_cpu": round(rc / dc, 3),
            "ratio_wall_rounds": [round(r[0] / d[0], 3) for r, d in zip(reads, detects,
                                                                         strict=True)],
            "cpu_s_per_mpx": round(dc / mpx, 4)}


def s2_tile(out: Path, per_mpx_cpu: float | None = None) -> dict[str, Any]:
    """Sentinel-2 tiles per hour per core: measured on a synthesised 10,980² pair with one
    worker (process CPU s = one core's work), or extrapolated from ``per_mpx_cpu``."""
    mpx = S2_SIDE * S2_SIDE / 1e6
    if per_mpx_cpu is not None:
        cpu = per_mpx_cpu * mpx
        return {"s2_method": "extrapolated from the per-pixel CPU cost of the smaller pair",
                "s2_cpu_s": round(cpu, 2), "s2_tiles_per_hour_per_core": round(3600 / cpu, 1)}
    from detectors.satellite_files import detect_files

    before, after = pair(S2_SIDE, out)
    raw_read([before, after])  # page cache, as for the smaller pair
    res, wall, cpu = timed(detect_files, before, after, workers=1)
    return {"s2_method": "measured: synthetic 10980² uint16 6-band pair, workers=1",
            "s2_wall_s": round(wall, 2), "s2_cpu_s": round(cpu, 2),
            "s2_polygons": len(res.polygons),
            "s2_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "s2_tiles_per_hour_per_core": round(3600 / cpu, 1)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--s2"]
    s2 = "--s2" in (argv if argv is not None else sys.argv[1:])
    size = int(args[0]) if args else 4000
    out = Path(args[1] if len(args) > 1 else "/tmp")
    rounds = int(args[2]) if len(args) > 2 else 2
    figures = {"benchmark": "satellite_speed", **measure(size, out, rounds)}
    figures.update(s2_tile(out) if s2 else s2_tile(out, figures["cpu_s_per_mpx"]))
    return figures


if __name__ == "__main__":
    print(json.dumps(main()))
