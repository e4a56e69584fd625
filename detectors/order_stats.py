"""Percentiles from a histogram, equal to numpy's ``percentile(..., method="linear")``.

Why: integer data (satellite digital numbers, uint8 video frames) take few distinct values,
so counting them (one ``bincount`` pass) and reading order statistics off the cumulative
counts is several times cheaper than numpy's partition of the whole array, and gives the
same numbers (numpy's virtual index and interpolation are mirrored below).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def weighted_percentiles(values: np.ndarray, counts: np.ndarray,
                         qs: Sequence[float]) -> list[float]:
    """Percentiles ``qs`` (0..100) of ``values`` (ascending) each repeated ``counts`` times."""
    cum = np.cumsum(counts)
    n = int(cum[-1])
    out = []
    for q in qs:
        virtual = (n - 1) * (q / 100.0)  # numpy's virtual index for "linear"
        below = min(max(int(np.floor(virtual)), 0), n - 1)
        above = min(below + 1, n - 1)
        a = float(values[np.searchsorted(cum, below, side="right")])
        b = float(values[np.searchsorted(cum, above, side="right")])
        t = virtual - np.floor(virtual)
        out.append(b - (b - a) * (1.0 - t) if t >= 0.5 else a + (b - a) * t)
    return out


def median_inplace(v: np.ndarray) -> float:
    """Median as ``np.median`` computes it (the mean of the two middle values of an even
    count), by an in-place partition: ``v`` is reordered. Why: ``np.median`` spends most of
    its time on a small array in generic reduction and NaN checks (3x the partition
    itself on 720 values), and the refits of the neighbour rules take thousands a second."""
    k = v.size // 2
    if v.size % 2:
        v.partition(k)
        return float(v[k])
    v.partition([k - 1, k])
    return float((v[k - 1] + v[k]) / 2)


def int_histogram(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values (ascending, float64) of a non-empty integer array and counts."""
    lo = int(values.min())
    # bincount wants values >= 0; cast first where subtracting could overflow the dtype.
    counts = np.bincount((values - lo if lo >= 0 else values.astype(np.int64) - lo).ravel())
    keep = np.flatnonzero(counts)
    return keep.astype(np.float64) + lo, counts[keep]


def int_percentiles(values: np.ndarray, qs: Sequence[float]) -> list[float]:
    """Percentiles of a non-empty integer array via its histogram."""
    return weighted_percentiles(*int_histogram(values), qs)
