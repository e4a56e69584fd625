"""Pass 1's block sample: deterministic, spread over the scene, and good for the statistics.

The sample replaces a decimated read of every block, so it must give thresholds and
statistics close to those of every pixel, on the real Taizhou pair and through
``detect_files`` on a synthetic pair large enough to be sampled.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from detectors.satellite import SPECTRAL, DetectParams
from detectors.satellite_files import detect_files
from detectors.satellite_pixels import classify_block, scene_stats
from detectors.satellite_sample import MIN_UNITS, gather, plan_sample, thin

TZ = Path(__file__).resolve().parents[2] / "samples" / "satellite" / "taizhou"


def _grid(height: int, width: int, unit: int) -> list[Window]:
    return [Window(c, r, min(unit, width - c), min(unit, height - r))
            for r in range(0, height, unit) for c in range(0, width, unit)]


def _kept(w: Window, stride: int) -> int:
    return math.ceil((w.height - stride // 2) / stride) * math.ceil(
        (w.width - stride // 2) / stride)


def test_small_scene_uses_every_pixel() -> None:
    units = _grid(400, 400, 128)
    assert plan_sample(units, 400 * 400) == (units, 1)


def test_plan_is_deterministic_spread_and_within_budget() -> None:
    units = _grid(2000, 3000, 64)  # 32 x 47 blocks
    chosen, stride = plan_sample(units, 256 ** 2)
    assert plan_sample(units, 256 ** 2) == (chosen, stride)
    assert MIN_UNITS <= len(chosen) <= len(units) // 4  # a fraction of the file is read
    assert sum(_kept(w, stride) for w in chosen) <= 256 ** 2
    rows = {int(w.row_off) // 500 for w in chosen}
    cols = {int(w.col_off) // 750 for w in chosen}
    assert rows == {0, 1, 2, 3} and cols == {0, 1, 2, 3}  # every quarter in each direction
    assert plan_sample(units, 256 ** 2, seed=1) != (chosen, stride)


def _load(path: Path) -> dict[str, np.ndarray]:
    with rasterio.open(path) as ds:
        x = ds.read()
    return dict(zip(SPECTRAL, x, strict=True))


def test_taizhou_sampled_statistics_close_to_all_pixels() -> None:
    b, a = _load(TZ / "taizhou_2000_6band.tif"), _load(TZ / "taizhou_2003_6band.tif")
    valid = np.ones(b["red"].shape, bool)
    full = scene_stats(b, a, valid)
    chosen, stride = plan_sample(_grid(400, 400, 32), 100 ** 2)
    assert len(chosen) < 169 // 4

    def cut(w: Window):
        sl = np.s_[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width]
        return {n: x[sl] for n, x in b.items()}, {n: x[sl] for n, x in a.items()}, valid[sl]

    sb, sa, sv = gather(thin(cut(w), stride) for w in chosen)
    st = scene_stats(sb, sa, sv)
    # measured: threshold 2.60 from the sample, 2.80 from every pixel
    assert abs(st.threshold - full.threshold) < 0.1 * full.threshold
    for n in st.bands:  # digital numbers (uint8): medians and MADs within 2 and 1 DN
        for got, ref in ((st.before[n], full.before[n]), (st.after[n], full.after[n])):
            assert abs(got[0] - ref[0]) <= 2
            assert abs(got[1] - ref[1]) <= 1.4826 + 1e-9
    with rasterio.open(TZ / "taizhou_change_mask.tif") as ds:
        ch = ds.read(1) == 1
    with rasterio.open(TZ / "taizhou_unchanged_mask.tif") as ds:
        un = ds.read(1) == 1
    codes, _ = classify_block(b, a, valid, st)
    changed = (codes > 0) & (codes < 255)
    tp, fp = int((changed & ch).sum()), int((changed & un).sum())
    # measured: precision 0.999, recall 0.737 (every pixel: 0.998, 0.780)
    assert tp / (tp + fp) >= 0.95 and tp / int(ch.sum()) >= 0.7


def _synthetic(path: Path, changed: bool, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    base = np.array([400, 600, 500, 3000, 1500, 900], np.float32)[:, None, None]
    data = base + rng.normal(0, 60, (6, 1024, 1024)).astype(np.float32)
    if changed:
        spots = np.random.default_rng(99).integers(0, 1000, (40, 2))
        for r, c in spots:  # bright "construction" patches all over the scene
            data[:, r:r + 24, c:c + 24] = np.array(
                [1500, 1600, 1700, 2000, 2600, 2400])[:, None, None]
    with rasterio.open(path, "w", driver="GTiff", width=1024, height=1024, count=6,
                       dtype="uint16", crs="EPSG:32651", tiled=True, blockxsize=64,
                       blockysize=64, transform=from_origin(200000, 3700000, 10, 10)) as dst:
        dst.write(data.astype(np.uint16))
        dst.descriptions = SPECTRAL
    return path


def test_detect_files_sample_gives_the_all_pixel_result(tmp_path: Path) -> None:
    before = _synthetic(tmp_path / "b.tif", False, 1)
    after = _synthetic(tmp_path / "a.tif", True, 2)
    every = detect_files(before, after)  # 1024² pixels: within the default budget
    sampled = detect_files(before, after, params=DetectParams(sample_size=256))
    # measured: threshold 2.52 from 24 of 64 windows, 2.49 from every pixel; 37 polygons
    assert abs(sampled.stats.threshold - every.stats.threshold) < 0.1 * every.stats.threshold
    assert len(sampled.polygons) == len(every.polygons) > 0
    assert sum(p.pixels for p in sampled.polygons) == sum(p.pixels for p in every.polygons)


@pytest.mark.parametrize("window_size", [1024, 192])
def test_kept_blocks_give_the_same_result_as_reading_twice(tmp_path: Path,
                                                           window_size: int) -> None:
    """Pass 2 served from pass 1's kept blocks (units tiling the windows, 1024) or not
    (192-px windows, which 128-px units do not tile) gives exactly what re-reading gives."""
    before = _synthetic(tmp_path / "b.tif", False, 1)
    after = _synthetic(tmp_path / "a.tif", True, 2)
    p = DetectParams(sample_size=256)
    runs = {}
    for keep_mb in (0, 192):
        mask = tmp_path / f"m{keep_mb}.tif"
        res = detect_files(before, after, params=p, keep_mb=keep_mb, mask_out=mask,
                           window_size=window_size)
        with rasterio.open(mask) as m:
            runs[keep_mb] = (res, m.read(1))
    (r0, m0), (r1, m1) = runs[0], runs[192]
    assert np.array_equal(m0, m1) and (m1 == 1).any()
    assert r0.stats.threshold == r1.stats.threshold
    assert sorted((q.pixels, q.kind, round(q.area_m2)) for q in r0.polygons) == sorted(
        (q.pixels, q.kind, round(q.area_m2)) for q in r1.polygons)
