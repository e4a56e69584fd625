"""Peak RSS of ``detect_files`` on a synthetic large pair (not run by the tests).

Why: the windowed two-pass design promises memory independent of scene size; this measures
it. Usage: ``python -m bench.bench_satellite_memory [SIZE] [DIR]`` (default 10980, /tmp).
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

ROLES = ("blue", "green", "red", "nir", "swir1", "swir2")


def synthesise(path: Path, size: int, changed: bool, seed: int) -> Path:
    """Tiled uint16 6-band scene written window by window (never whole in memory)."""
    base = np.array([400, 600, 500, 3000, 1500, 900], np.float32)[:, None, None]
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 6,
               "dtype": "uint16", "crs": "EPSG:32651", "tiled": True, "blockxsize": 512,
               "blockysize": 512, "transform": from_origin(200000, 3700000, 10, 10)}
    rng = np.random.default_rng(seed)
    with rasterio.open(path, "w", **profile) as dst:
        dst.descriptions = ROLES
        for r in range(0, size, 512):
            for c in range(0, size, 512):
                h, w = min(512, size - r), min(512, size - c)
                block = base + rng.normal(0, 60, (6, h, w)).astype(np.float32)
                if changed and (r // 512 + c // 512) % 7 == 0:
                    block[:, 100:160, 100:160] = np.array(
                        [1500, 1600, 1700, 2000, 2600, 2400])[:, None, None]
                dst.write(block.astype(np.uint16), window=Window(c, r, w, h))
    return path


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 10980
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp")
    before = synthesise(out / f"bench_before_{size}.tif", size, False, 1)
    after = synthesise(out / f"bench_after_{size}.tif", size, True, 2)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from detectors.satellite_files import detect_files

    t = time.perf_counter()
    res = detect_files(before, after, mask_out=out / f"bench_mask_{size}.tif")
    dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"size {size}: {len(res.polygons)} polygons in {dt:.1f} s, "
          f"peak RSS {rss:.0f} MiB (before detect {rss0:.0f} MiB)")


if __name__ == "__main__":
    main()
