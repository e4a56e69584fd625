"""Bounded table state (issue 20, case 3): a tile's confirmation state stays under its size
budget -- below ``max_record_bytes`` and Faust's 1 MB -- on the largest scene the ingester
accepts (``satellite_max_pixels``, lowered here to stay quick) read as one tile (a scene whose
one block is the whole scene), with changes scattered everywhere: the worst case for the
number and the outline size of change polygons. Two looks, as in the issue."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
from rasterio.crs import CRS
from rasterio.transform import from_origin

from contract.settings import Settings
from detectors.satellite import detect_tile
from detectors.satellite_confirm import ConfirmParams, new_state, observe, state_bytes
from detectors.satellite_evidence import to_clues

ROLES = ("blue", "green", "red", "nir", "swir1")
UTM = CRS.from_epsg(32651)
TRANSFORM = from_origin(203325.0, 3604935.0, 30.0, 30.0)


def _scene(side: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = np.array([400, 600, 500, 3000, 1500], np.float32)[:, None, None]
    before = base + rng.normal(0, 60, (5, side, side)).astype(np.float32)
    after = base + rng.normal(0, 60, (5, side, side)).astype(np.float32)
    built = np.array([1500, 1600, 1700, 2000, 2600], np.float32)[:, None, None]
    # ragged blobs every 14 px: many polygons with many vertices
    yy, xx = np.mgrid[0:side, 0:side]
    blob = ((yy % 14) < 6) & ((xx % 14) < 6) & (rng.random((side, side)) < 0.85)
    after = np.where(blob[None], built + rng.normal(0, 60, (5, side, side)), after)
    return before.astype(np.int16), after.astype(np.int16)


def test_tile_state_fits_its_budget_on_the_largest_scene() -> None:
    settings = Settings(satellite_max_pixels=640 * 640)
    side = math.isqrt(settings.satellite_max_pixels)
    params = ConfirmParams()
    assert params.max_state_bytes < settings.max_record_bytes < 1_000_000
    t0, t1, t2 = (datetime(2020, m, 1, tzinfo=UTC) for m in (1, 2, 3))
    b0, a1 = _scene(side, 1)
    polys = detect_tile(b0, a1, TRANSFORM, UTM, band_names=ROLES)
    clues = to_clues(polys, subject="tile", before_time=t0, after_time=t1)
    assert len(clues) > 300, len(clues)
    unbounded, _ = observe(new_state(), t1, "b0", clues, {},
                           ConfirmParams(max_state_bytes=10**9))
    assert state_bytes(unbounded) > params.max_state_bytes  # the case needs the budget
    state, sent = observe(new_state(), t1, "b0", clues, {}, params)
    assert len(sent) == len(clues)  # every change is still sent as a low clue
    assert state_bytes(state) <= params.max_state_bytes
    # the second look (the second scene) agrees on the same places: confirmations
    _, a2 = _scene(side, 2)
    again = to_clues(detect_tile(b0, a2, TRANSFORM, UTM, band_names=ROLES), subject="tile",
                     before_time=t0, after_time=t2)
    state, sent = observe(state, t2, "s1", again, {"b0": again}, params)
    assert state_bytes(state) <= params.max_state_bytes
    assert any(c.metrics.get("confirmation") == "confirmed" for c in sent)
    print(f"{side}x{side}: {len(clues)} polygons, unbounded state {state_bytes(unbounded)} B, "
          f"bounded {state_bytes(state)} B, {state.get('dropped', 0)} alerts dropped")
