"""Grid alignment (WarpedVRT), the tile API, band maps and clues on synthetic data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import Resampling, calculate_default_transform, reproject
from shapely.geometry import shape

from detectors.satellite import detect_tile, parse_band_map
from detectors.satellite_evidence import to_clues
from detectors.satellite_files import detect_files

ROLES = ("blue", "green", "red", "nir", "swir1")
UTM = CRS.from_epsg(32651)
TRANSFORM = from_origin(203325.0, 3604935.0, 30.0, 30.0)


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Vegetated noisy field; AFTER has a bright bare/built square (rows 40-59, cols 50-69)."""
    rng = np.random.default_rng(seed)
    base = np.array([400, 600, 500, 3000, 1500], np.float32)[:, None, None]
    before = base + rng.normal(0, 60, (5, 128, 128)).astype(np.float32)
    after = base + rng.normal(0, 60, (5, 128, 128)).astype(np.float32)
    after[:, 40:60, 50:70] = np.array([1500, 1600, 1700, 2000, 2600])[:, None, None]
    return before.astype(np.int16), after.astype(np.int16)


def _write(path: Path, data: np.ndarray, crs: CRS = UTM, transform=TRANSFORM) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype, crs=crs, transform=transform,
                       nodata=-9999) as dst:
        dst.write(data)
        dst.descriptions = ROLES
    return path


def test_detect_tile_finds_the_square() -> None:
    before, after = _pair()
    polys = detect_tile(before, after, TRANSFORM, UTM, band_names=ROLES)
    assert len(polys) == 1
    p = polys[0]
    assert p.pixels == 400 and p.kind in {"vegetation_to_built", "bare_or_built"}
    assert abs(p.area_m2 - 400 * 900) / (400 * 900) < 0.01
    assert shape(p.geometry).is_valid and p.confidence > 0.8


def test_detect_tile_masks_nodata_and_qa() -> None:
    before, after = _pair()
    qa = np.zeros((128, 128), np.uint8)
    qa[35:65, 45:75] = 4  # cloud over the change in AFTER
    b = dict(zip(ROLES, before, strict=True))
    a = dict(zip(ROLES, after, strict=True)) | {"fmask": qa}
    assert detect_tile(b, a, TRANSFORM, UTM) == []
    a2 = dict(zip(ROLES, after.copy(), strict=True))
    for arr in a2.values():
        arr[40:60, 50:70] = -9999
    assert detect_tile(b, a2, TRANSFORM, UTM, nodata=-9999) == []


def test_after_on_other_grid_is_aligned_by_warpedvrt(tmp_path: Path) -> None:
    before, after = _pair()
    b_path = _write(tmp_path / "before.tif", before)
    # AFTER reprojected into UTM 50N (another CRS) and shifted by half a pixel.
    dst_crs = CRS.from_epsg(32650)
    src_t = TRANSFORM @ rasterio.Affine.translation(0.5, 0.5)
    t, w, h = calculate_default_transform(
        UTM, dst_crs, 128, 128, *rasterio.transform.array_bounds(128, 128, src_t))
    out = np.full((5, h, w), -9999, np.int16)
    reproject(after, out, src_transform=src_t, src_crs=UTM, dst_transform=t, dst_crs=dst_crs,
              resampling=Resampling.nearest, src_nodata=-9999, dst_nodata=-9999)
    a_path = _write(tmp_path / "after.tif", out, dst_crs, t)
    res = detect_files(b_path, a_path, mask_out=tmp_path / "m.tif")
    with rasterio.open(tmp_path / "m.tif") as m:
        assert m.crs == dst_crs and m.shape == (h, w)
    big = [p for p in res.polygons if p.pixels > 50]
    assert len(big) == 1
    # The detected square sits where the true square is (in lon/lat), within ~1 pixel.
    with rasterio.open(b_path) as ds:
        from rasterio.warp import transform_geom
        truth = shape(transform_geom(UTM, "EPSG:4326", {
            "type": "Polygon", "coordinates": [[
                ds.transform @ (50 + 0.5, 40 + 0.5), ds.transform @ (70 + 0.5, 40 + 0.5),
                ds.transform @ (70 + 0.5, 60 + 0.5), ds.transform @ (50 + 0.5, 60 + 0.5),
                ds.transform @ (50 + 0.5, 40 + 0.5)]]}))
    found = shape(big[0].geometry)
    iou = found.intersection(truth).area / found.union(truth).area
    assert iou > 0.8
    assert abs(big[0].area_m2 - 360_000) / 360_000 < 0.25


def test_band_map_parsing() -> None:
    assert parse_band_map("red=3, nir=4,swir=5,fmask=6") == {
        "red": 3, "nir": 4, "swir1": 5, "qa": 6}
    with pytest.raises(ValueError):
        parse_band_map("red=0")


def test_clues_one_per_polygon() -> None:
    before, after = _pair()
    polys = detect_tile(before, after, TRANSFORM, UTM, band_names=ROLES)
    t0 = datetime(2000, 3, 17, tzinfo=UTC)
    t1 = datetime(2003, 2, 6, tzinfo=UTC)
    clues = to_clues(polys, subject="taizhou", before_time=t0, after_time=t1)
    assert len(clues) == 1
    c = clues[0]
    assert c.modality == "satellite" and c.kind == polys[0].kind and c.start == t1
    assert c.location == polys[0].geometry and c.metrics["area_m2"] > 0
    assert c.clue_id.startswith("satellite:taizhou:")
