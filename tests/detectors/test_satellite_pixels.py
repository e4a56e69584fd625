"""The fast paths of satellite detection give what the plain computations give.

Each fast path (histogram order statistics, sorted medians, the strip-wise linear score,
labelled polygon parts) is checked against the straightforward numpy computation it
replaces.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from detectors.satellite import KIND_CODE, NODATA_CODE, SPECTRAL
from detectors.satellite_pixels import SceneStats, _band_stats, _robust, change_score
from detectors.satellite_vector import block_parts


def _numpy_band_stats(x: np.ndarray) -> tuple[tuple[float, float], float]:
    f = x.astype(np.float32)
    med = float(np.median(f))
    return (med, 1.4826 * float(np.median(np.abs(f - med)))), float(np.percentile(f, 1))


@settings(max_examples=200, deadline=None)
@given(arrays(st.sampled_from([np.uint8, np.uint16, np.int16]), st.integers(1, 3000)))
def test_integer_band_stats_match_numpy(x: np.ndarray) -> None:
    (med, mad), dark = _band_stats(x)
    (rmed, rmad), rdark = _numpy_band_stats(x)
    assert (med, mad) == (rmed, rmad)
    assert dark == pytest.approx(rdark, rel=1e-6, abs=1e-3)  # numpy's is float32


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.integers(1, 3000),
              elements=st.floats(-1e4, 1e4, width=32) | st.just(np.nan)))
def test_sorted_robust_matches_numpy(x: np.ndarray) -> None:
    v = x[np.isfinite(x)]
    expect = (0.0, 1.0)
    if v.size:
        med = float(np.median(v))
        expect = (med, 1.4826 * float(np.median(np.abs(v - med))))
    assert _robust(x) == expect
    assert _robust(x.copy(), scratch=True) == expect


def test_strip_score_matches_the_plain_formula() -> None:
    rng = np.random.default_rng(3)
    shape = (300, 700)  # several strips, the last one short
    names = SPECTRAL[:4]
    before = {n: rng.integers(0, 4000, shape).astype(np.uint16) for n in names}
    after = {n: rng.normal(2000, 500, shape) for n in names}  # float64 input
    stats = SceneStats(names, {n: (2000.0, 900.0) for n in names},
                       {n: (1900.0, 450.0) for n in names},
                       {n: (0.1, 1.3) for n in names}, {}, {}, {}, 3.0, 1.0)
    plain = np.zeros(shape)
    for n in names:
        z = (after[n] - 1900.0) / 450.0 - (before[n] - 2000.0) / 900.0
        plain += ((z - 0.1) / 1.3) ** 2
    plain = np.sqrt(plain / len(names))
    got = change_score(before, after, stats)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, plain, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
def test_opencv_score_matches_the_numpy_strips(dtype: type) -> None:
    """2-D bands of one dtype go through OpenCV; the same pixels as 1-D go through the
    numpy strips: the two must agree to float32 rounding."""
    rng = np.random.default_rng(5)
    shape = (257, 513)
    names = SPECTRAL
    top = 250 if dtype == np.uint8 else 4000
    before = {n: rng.integers(0, top, shape).astype(dtype) for n in names}
    after = {n: rng.integers(0, top, shape).astype(dtype) for n in names}
    stats = SceneStats(names, {n: (120.0, 40.0) for n in names},
                       {n: (110.0, 45.0) for n in names},
                       {n: (0.1, 1.3) for n in names}, {}, {}, {}, 3.0, 1.0)
    two_d = change_score(before, after, stats)
    one_d = change_score({n: x.ravel() for n, x in before.items()},
                         {n: x.ravel() for n, x in after.items()}, stats)
    assert two_d.shape == shape and two_d.dtype == np.float32
    np.testing.assert_allclose(two_d.ravel(), one_d, rtol=1e-5, atol=1e-5)


def test_block_parts_count_every_pixel_of_each_component() -> None:
    codes = np.zeros((40, 50), np.uint8)
    codes[5:15, 5:15] = KIND_CODE["bare_or_built"]  # a square with a hole
    codes[8:10, 8:10] = 0
    codes[5:8, 5:15] = KIND_CODE["vegetation_loss"]  # mixed kinds in one component
    codes[20:22, 30:45] = KIND_CODE["water_gain"]
    codes[21, 31] = NODATA_CODE  # no data is neither change nor part
    codes[30, 10] = KIND_CODE["water_loss"]  # diagonal neighbours: two 4-connected parts
    codes[31, 11] = KIND_CODE["water_loss"]
    score = np.arange(codes.size, dtype=np.float32).reshape(codes.shape)
    parts = block_parts(codes, score, 100, 200)
    assert len(parts) == 4
    changed = (codes > 0) & (codes != NODATA_CODE)
    assert sum(int(p.counts.sum()) for p in parts) == int(changed.sum())
    assert sum(p.score_sum for p in parts) == pytest.approx(float(score[changed].sum()))
    for p in parts:
        assert p.geom.area == int(p.counts.sum())  # pixel units: polygon = its pixel set
        minx, miny, _, _ = p.geom.bounds
        assert minx >= 200 and miny >= 100  # placed at the block offset
    square = max(parts, key=lambda p: p.geom.area)
    assert square.geom.area == 96 and len(square.geom.interiors) == 1
    assert square.counts[KIND_CODE["vegetation_loss"] - 1] == 30
