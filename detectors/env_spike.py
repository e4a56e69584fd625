"""The spike rule's robust z-scores for a whole batch of readings at once (numpy).

``StationMonitor._spike`` scores each reading against the median/MAD of the previous
``spike_window`` valid-flagged values of its code; done reading by reading in Python that
was the largest single cost of the env detector (two sorts per code per reading). Given the
monitor's state before a batch, which readings will enter each code's buffer is known in
advance (the same duplicate/late and primary-period tests ``observe`` makes), so every
window can be sorted in one ``np.sort`` call. The arithmetic is the same as
``env_rules.robust_z`` with no resolution step -- sorted values, the middle one or the mean
of the two middle ones, ``0.6745 * (x - med) / max(mad, 1e-9)`` -- so the z-scores are
bit-identical; the rare reading whose |z| is over the threshold is re-checked in Python
with the resolution step as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from contract.records import Reading

#: (code, data time) -> (valid values in the window, z-score without resolution step)
SpikeScores = dict[tuple[str, float], tuple[int, float]]


def _medians(ordered: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Row medians of the first ``counts[i]`` (sorted, finite) entries of each row."""
    rows = np.arange(len(ordered))
    half = np.maximum(counts // 2, 0)
    upper = ordered[rows, np.minimum(half, ordered.shape[1] - 1)]
    lower = ordered[rows, np.maximum(half - 1, 0)]
    return np.where(counts % 2 == 1, upper, (lower + upper) / 2)


def _scores(history: list[tuple[float, bool]], new: list[tuple[float, float, bool]],
            window: int) -> dict[float, tuple[int, float]]:
    """z of each new (t, value, valid flag) entry against the ``window`` entries before it."""
    seq = [(math.inf, False)] * window + history + [(v, ok) for _, v, ok in new]
    vals = np.array([v if ok else math.inf for v, ok in seq], dtype=np.float64)
    valid = np.array([ok for _, ok in seq], dtype=bool)
    start = window + len(history)  # position of the first new entry in ``seq``
    views = np.lib.stride_tricks.sliding_window_view(vals, window)[start - window:-1]
    counts = np.lib.stride_tricks.sliding_window_view(valid, window)[start - window:-1].sum(1)
    views = views[: len(new)]
    counts = counts[: len(new)]
    x = np.array([v for _, v, _ in new], dtype=np.float64)
    with np.errstate(all="ignore"):  # rows without a valid value (inf - inf): never used
        ordered = np.sort(views, axis=1)  # invalid entries (inf) sort last
        med = _medians(ordered, counts)
        dev = np.where(np.isfinite(views), np.abs(views - med[:, None]), math.inf)
        mad = _medians(np.sort(dev, axis=1), counts)
        z = 0.6745 * (x - med) / np.maximum(mad, 1e-9)
    return {t: (int(n), float(s)) for (t, _, _), n, s in zip(new, counts, z, strict=True)}


def batch_scores(state: dict[str, Any], readings: Sequence[Reading],
                 window: int, buffer: int) -> SpikeScores | None:
    """Spike z-scores for the readings ``observe`` will put into the code buffers, or None
    where the batch is not worth it or the fast path could differ (non-finite values)."""
    if len(readings) < 4 or buffer <= window:
        return None
    last = dict(state["last"])
    primary = state["period"]
    new: dict[str, list[tuple[float, float, bool]]] = {}
    for reading in readings:  # the same gates as StationMonitor.observe, in the same order
        if reading.event == "restart":
            continue
        t = reading.time.timestamp()
        seen = last.get(reading.period)
        if seen is not None and t <= seen:
            continue
        if primary is None:
            primary = reading.period
        last[reading.period] = t
        if reading.period != primary:
            continue
        for code, value in reading.values.items():
            if "-" in code:
                continue
            if not math.isfinite(value):
                return None
            new.setdefault(code, []).append((t, value, reading.flags.get(code, "N") == "N"))
    out: SpikeScores = {}
    for code, entries in new.items():
        buf = state["codes"].get(code, {}).get("buf", [])[-window:]
        history = [(p[1], p[2] == "N") for p in buf]
        if not all(math.isfinite(v) for v, _ in history):
            return None
        for t, score in _scores(history, entries, window).items():
            out[(code, t)] = score
    return out
