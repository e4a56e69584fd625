"""The per-pixel arithmetic of satellite change detection: scene statistics, score, kinds.

Why it is written this way (profiled with py-spy on a 4000² 6-band pair, BENCHMARKS.md):

* The standardised difference of a band, ``((a - ma)/sa - (b - mb)/sb - md)/sd``, is one
  linear map ``a·α - b·β + γ``; applied strip by strip (a few hundred KB, so temporaries
  stay in the CPU cache) straight from the integer bands, it replaces six full-size passes
  and two float copies per band.
* Only changed pixels (a small fraction of a scene) need a *kind*, so the indices and the
  kind rules run on those pixels gathered into 1-D arrays, not on every pixel of a block.
* Scene statistics are computed on the valid pixels gathered once, the per-band medians on a
  thread pool (numpy's partition releases the GIL), and scratch copies are partitioned in
  place.

The maths is that of :mod:`detectors.satellite` (see its docstring); nothing here reads files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import cv2
import numpy as np

from detectors.order_stats import int_histogram, median_inplace, weighted_percentiles
from detectors.satellite import KIND_CODE, NODATA_CODE, SPECTRAL, DetectParams
from detectors.satellite_threshold import scene_threshold

T = TypeVar("T")
R = TypeVar("R")
_HIST_MAX = 1 << 20  # widest value range of an integer band counted into a histogram
_MEDIAN_MAX = 1 << 18  # values a median/MAD is computed from (evenly spaced subsample)
_STRIP = 1 << 16  # pixels per strip of the score pass (256 KiB per float32 temporary)


@dataclass
class SceneStats:
    """Robust per-scene statistics that pass 2 applies to every block."""

    bands: tuple[str, ...]
    before: dict[str, tuple[float, float]]
    after: dict[str, tuple[float, float]]
    diff: dict[str, tuple[float, float]]
    dark_before: dict[str, float]
    dark_after: dict[str, float]
    index_diff: dict[str, tuple[float, float]]
    threshold: float
    valid_fraction: float

    def as_dict(self) -> dict[str, Any]:
        return {"bands": list(self.bands), "threshold": round(self.threshold, 4),
                "valid_fraction": round(self.valid_fraction, 4)}


def _finite(values: np.ndarray) -> np.ndarray:
    ok = np.isfinite(values)
    return values if ok.all() else values[ok]


def _robust(values: np.ndarray, scratch: bool = False) -> tuple[float, float]:
    """Median and MAD scaled to a normal sigma; (0, 1) when there is nothing to measure.

    By partition, in place: on numpy 2.4 (2026-12-06) a partition of 700,000 float32
    values took 4.7 ms against 21 ms for numpy's SIMD sort, so the earlier sort-based
    version (faster on numpy 1.26) cost half of ``detect_files``'s CPU in the sample's
    eleven medians. Beyond ``_MEDIAN_MAX`` values an evenly spaced subsample is used: the
    median's standard error at 2^18 values is 0.2 % of the spread, far below anything the
    threshold or the kinds can resolve, and the cost is linear in the count.
    ``scratch``: ``values`` may be reordered.
    """
    v = _finite(values)
    if v.size == 0:
        return 0.0, 1.0
    if v.size > _MEDIAN_MAX:
        v = v[::-(-v.size // _MEDIAN_MAX)].copy()
    elif not (scratch or v is not values):
        v = v.copy()
    med = median_inplace(v)
    dev = np.abs(v - med, out=v)
    return med, 1.4826 * median_inplace(dev)


def _scratch_robust(values: np.ndarray) -> tuple[float, float]:
    return _robust(values, scratch=True)


def _band_stats(values: np.ndarray) -> tuple[tuple[float, float], float]:
    """Median/MAD and the 1st percentile (dark object) of one band's valid pixels.

    Integer bands (digital numbers) are counted into a histogram, from which the order
    statistics are exact and cost one pass; float bands are partitioned.
    """
    if values.dtype.kind in "ui" and values.size and (
            int(values.max()) - int(values.min()) < _HIST_MAX):
        return _int_band_stats(values)
    v = _finite(np.asarray(values, np.float32))
    if v.size == 0:
        return (0.0, 1.0), 0.0
    dark, med = (float(x) for x in np.percentile(v if v is not values else v.copy(),
                                                 [1, 50], overwrite_input=True))
    dev = np.abs(v - med)
    return (med, 1.4826 * float(np.median(dev, overwrite_input=True))), dark


def _int_band_stats(values: np.ndarray) -> tuple[tuple[float, float], float]:
    """As :func:`_band_stats` (same results as numpy's median and linear percentile)."""
    distinct, counts = int_histogram(values)
    dark, med = weighted_percentiles(distinct, counts, [1, 50])
    dev = np.abs(distinct - med)
    order = np.argsort(dev, kind="stable")
    return (med, 1.4826 * weighted_percentiles(dev[order], counts[order], [50])[0]), dark


def otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a 1-D sample (between-class variance maximum)."""
    v = _finite(values)
    if v.size < 2 or v.min() == v.max():
        return float("inf")
    hist, edges = np.histogram(v, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w1 = np.cumsum(hist)
    w2 = w1[-1] - w1
    s1 = np.cumsum(hist * centres)
    m1 = s1 / np.maximum(w1, 1)
    m2 = (s1[-1] - s1) / np.maximum(w2, 1)
    return float(centres[np.argmax(w1 * w2 * (m1 - m2) ** 2)])


def _nd(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(x - y) / (x + y)``, 0 where the sum is not positive; in place, no float64 copy."""
    den = x + y
    out = np.subtract(x, y, dtype=np.float32)
    pos = den > 0
    np.divide(out, den, out=out, where=pos)
    out[~pos] = 0.0
    return out


INDEX_BANDS = {"ndvi": ("nir", "red"), "ndbi": ("swir1", "nir"), "mndwi": ("green", "swir1"),
               "bsi": ("swir1", "red", "nir", "blue")}


def indices(bands: Mapping[str, np.ndarray], dark: Mapping[str, float]) -> dict[str, np.ndarray]:
    """NDVI, NDBI, MNDWI, BSI on dark-object-corrected bands (those the bands allow)."""
    c = {k: np.clip(np.asarray(v, np.float32) - dark.get(k, 0.0), 0, None)
         for k, v in bands.items()}
    out: dict[str, np.ndarray] = {}
    for name, need in INDEX_BANDS.items():
        if not all(n in c for n in need):
            continue
        if name == "bsi":
            out[name] = _nd(c["swir1"] + c["red"], c["nir"] + c["blue"])
        else:
            out[name] = _nd(c[need[0]], c[need[1]])
    return out


def coefficients(st: SceneStats, use_diff: bool = True) -> list[tuple[str, float, float, float]]:
    """Per band (name, α, β, γ) with standardised difference ``after·α - before·β + γ``."""
    out = []
    for n in st.bands:
        mb, sb = st.before[n]
        ma, sa = st.after[n]
        sa, sb = max(sa, 1e-6), max(sb, 1e-6)
        md, sd = st.diff[n] if use_diff else (0.0, 1.0)
        out.append((n, 1.0 / (sa * sd), 1.0 / (sb * sd), (mb / sb - ma / sa - md) / sd))
    return out


def _z_diffs(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray],
             st: SceneStats, use_diff: bool = True) -> dict[str, np.ndarray]:
    """Standardised per-band differences as float32 arrays (for gathered pixels)."""
    out = {}
    for n, al, be, ga in coefficients(st, use_diff):
        d = np.multiply(after[n], al, dtype=np.float32)
        d -= np.multiply(before[n], be, dtype=np.float32)
        d += np.float32(ga)
        out[n] = d
    return out


def change_score(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray],
                 st: SceneStats) -> np.ndarray:
    """Root mean square of the standardised per-band differences (unchanged land ~1).

    For 2-D bands of one OpenCV-supported dtype (a window of a file), OpenCV computes each
    band's ``after·α - before·β + γ`` in one pass from the integer pixels and squares it
    into the sum in another (``addWeighted``, ``accumulateSquare``): half the CPU of the
    numpy strips on a 1024² six-band uint16 window (3.8 against 7.6 ms), equal to 5e-7.
    Otherwise strip by strip along the first axis, in float32, straight from the input dtype.
    """
    coefs = coefficients(st)
    if _cv_ready(before, after, st.bands):
        return _cv_score(before, after, coefs)
    shape = np.shape(after[st.bands[0]])
    out = np.empty(shape, np.float32)
    inner = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    step = max(1, _STRIP // max(inner, 1))
    t1 = np.empty((min(step, shape[0]), *shape[1:]), np.float32)
    t2 = np.empty_like(t1)
    for r in range(0, shape[0], step):
        o = out[r:r + step]
        a1, a2 = t1[:o.shape[0]], t2[:o.shape[0]]
        o.fill(0.0)
        for n, al, be, ga in coefs:
            np.multiply(after[n][r:r + step], al, out=a1, dtype=np.float32)
            np.multiply(before[n][r:r + step], be, out=a2, dtype=np.float32)
            a1 -= a2
            a1 += np.float32(ga)
            np.square(a1, out=a1)
            o += a1
        o *= np.float32(1.0 / len(coefs))
        np.sqrt(o, out=o)
    return out


_CV_DTYPES = {np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.float32,
                                     np.float64)}


def _cv_ready(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray],
              bands: Iterable[str]) -> bool:
    arrays = [x for n in bands for x in (before[n], after[n])]
    first = arrays[0]
    return (isinstance(first, np.ndarray) and first.ndim == 2 and first.dtype in _CV_DTYPES
            and all(type(x) is np.ndarray and x.dtype == first.dtype
                    and x.shape == first.shape for x in arrays))


def _cv_score(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray],
              coefs: list[tuple[str, float, float, float]]) -> np.ndarray:
    out = np.zeros(after[coefs[0][0]].shape, np.float32)
    for n, al, be, ga in coefs:
        d = cv2.addWeighted(np.ascontiguousarray(after[n]), al,
                            np.ascontiguousarray(before[n]), -be, ga, dtype=cv2.CV_32F)
        cv2.accumulateSquare(d, out)
    out *= np.float32(1.0 / len(coefs))
    return np.sqrt(out, out=out)


def _pmap(fn: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    items = list(items)
    if workers <= 1 or len(items) < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def scene_stats(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray],
                valid: np.ndarray, params: DetectParams | None = None,
                workers: int = 1) -> SceneStats:
    """Gather robust statistics from a sample (a whole tile, or pixels spread over a scene)."""
    p = params or DetectParams()
    names = tuple(n for n in SPECTRAL if n in before and n in after)
    if not names:
        raise ValueError("before and after share no spectral band role; pass a band map")
    v = np.asarray(valid, bool)
    frac = float(v.mean()) if v.size else 0.0
    # The valid pixels, gathered once: every statistic below is over them only.
    pick = (lambda x: np.ravel(x)) if v.all() else (lambda x: np.asarray(x)[v])
    raw_b = {n: pick(before[n]) for n in names}  # read only below: views are fine
    raw_a = {n: pick(after[n]) for n in names}
    st = SceneStats(names, {}, {}, {}, {}, {}, {}, float("inf"), frac)
    jobs = [(st.before, st.dark_before, raw_b[n], n) for n in names] + [
        (st.after, st.dark_after, raw_a[n], n) for n in names]
    for (robust, dark, _, n), (rob, d) in zip(
            jobs, _pmap(lambda j: _band_stats(j[2]), jobs, workers), strict=True):
        robust[n], dark[n] = rob, d
    # The difference, index and score statistics below are medians and a histogram fit:
    # an evenly spaced subsample of at most _MEDIAN_MAX pixels serves them as well (see
    # _robust) at a fraction of the cost of the indices and differences of every pixel.
    step = max(1, -(-int(v.sum()) // _MEDIAN_MAX))
    b = {n: x[::step].astype(np.float32) for n, x in raw_b.items()}
    a = {n: x[::step].astype(np.float32) for n, x in raw_a.items()}
    del raw_b, raw_a
    diffs = _z_diffs(b, a, st, use_diff=False)
    for n, (med, mad) in zip(names, _pmap(_scratch_robust, diffs.values(), workers),
                             strict=True):
        st.diff[n] = (med, max(mad, p.min_spread))
    ib = indices(b, st.dark_before)
    ia = indices(a, st.dark_after)
    index_diffs = [ia[k] - ib[k] for k in ib]
    for k, (med, mad) in zip(ib, _pmap(_scratch_robust, index_diffs, workers), strict=True):
        st.index_diff[k] = (med, max(mad, 1e-3))
    del diffs, ib, ia, index_diffs
    if p.score_threshold is not None:
        st.threshold = float(p.score_threshold)
    elif b[names[0]].size >= 16:
        s = change_score(b, a, st)
        st.threshold = _threshold(s, p)
    return st


def _threshold(s: np.ndarray, p: DetectParams) -> float:
    """The scene's threshold from its score sample: ``p.threshold_method`` "em" (default,
    :mod:`detectors.satellite_threshold`) or "robust" (the rule before issue 15: the
    largest of Otsu, ``median + k_mad·MAD`` and ``min_score``)."""
    if p.threshold_method == "em":
        med, mad = _robust(s)
        return scene_threshold(s, med, mad, p.k_mad, p.min_score)
    th_otsu = otsu(s)
    med, mad = _robust(s, scratch=True)
    thr = max(med + p.k_mad * mad, p.min_score)
    if p.use_otsu and np.isfinite(th_otsu):
        thr = max(thr, th_otsu)
    return thr


def classify_block(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray],
                   valid: np.ndarray, st: SceneStats,
                   params: DetectParams | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel kind codes (0 none, 1.. ``KINDS``, 255 invalid) and the change score."""
    p = params or DetectParams()
    b = {n: np.asarray(before[n]) for n in st.bands}
    a = {n: np.asarray(after[n]) for n in st.bands}
    v = np.asarray(valid, bool)
    score = change_score(b, a, st)
    all_valid = bool(v.all())
    if not all_valid:
        score[~v] = 0.0
    changed = score > st.threshold
    if not all_valid:
        changed &= v
    codes = np.zeros(v.shape, np.uint8)
    if changed.any():
        codes[changed] = _kinds({n: x[changed] for n, x in b.items()},
                                {n: x[changed] for n, x in a.items()}, st, p)
    if not all_valid:
        codes[~v] = NODATA_CODE
    return codes, score


def _kinds(b: Mapping[str, np.ndarray], a: Mapping[str, np.ndarray], st: SceneStats,
           p: DetectParams) -> np.ndarray:
    """Kind code of each changed pixel (1-D arrays) from its index and band changes.

    Directions are scene-standardised (0 = the scene's typical change), because raw
    indices of uncalibrated digital numbers are biased by haze. New built-up land and bare
    soil brighten every band, which indices alone miss on winter farmland, so a mean
    brightening of the visible bands also counts as "built or bare". A changed pixel that
    fits no rule keeps code 0.
    """
    diffs = _z_diffs(b, a, st)
    ib = indices(b, st.dark_before)
    ia = indices(a, st.dark_after)
    zi = {}
    for name in ib:
        med, mad = st.index_diff[name]
        zi[name] = (ia[name] - ib[name] - med) / mad
    size = next(iter(diffs.values())).shape
    false = np.zeros(size, bool)
    k = p.k_index
    # Both relative to the scene and in absolute terms: a pixel that greened less than a
    # greening scene has not lost vegetation.
    veg_loss = (zi["ndvi"] < -k) & (ia["ndvi"] < ib["ndvi"]) if "ndvi" in zi else false
    built = false.copy()
    for name in ("ndbi", "bsi"):
        if name in zi:
            built |= (zi[name] > k) & (ia[name] > ib[name])
    visible = [diffs[n] for n in ("blue", "green", "red") if n in diffs]
    if visible:
        # Brightening with rising vegetation is a crop or canopy change, not construction.
        greener = (ia["ndvi"] - ib["ndvi"] > p.greening) if "ndvi" in zi else false
        built |= (sum(visible) / len(visible) > p.k_bright) & ~greener
    water_gain = water_loss = false
    if "mndwi" in zi:
        dark = false.copy() if not all(n in diffs for n in ("nir", "swir1")) else (
            (diffs["nir"] < -p.k_bright) & (diffs["swir1"] < -p.k_bright))
        water_gain = (zi["mndwi"] > k) & (ia["mndwi"] > p.water_index) & (
            ib["mndwi"] <= p.water_index) & dark
        bright = false.copy() if not all(n in diffs for n in ("nir", "swir1")) else (
            (diffs["nir"] > p.k_bright) & (diffs["swir1"] > p.k_bright))
        water_loss = (zi["mndwi"] < -k) & (ib["mndwi"] > p.water_index) & (
            ia["mndwi"] <= p.water_index) & bright
    codes = np.zeros(size, np.uint8)
    # Lowest priority first, so later (more specific) rules overwrite.
    for mask, kind in ((built, "bare_or_built"), (veg_loss, "vegetation_loss"),
                       (veg_loss & built, "vegetation_to_built"),
                       (water_loss, "water_loss"), (water_gain, "water_gain")):
        codes[mask] = KIND_CODE[kind]
    return codes
