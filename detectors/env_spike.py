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
from detectors.env_columns import Columns


class SpikeScores:
    """Per code, the scored entries of a batch: data times (strictly increasing: one primary
    period, after the last one seen), valid values in each window, and z-scores."""

    def __init__(self) -> None:
        self.codes: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._dicts: dict[str, dict[float, tuple[int, float]]] = {}

    def __len__(self) -> int:
        return sum(len(t) for t, _, _ in self.codes.values())

    def get(self, key: tuple[str, float]) -> tuple[int, float] | None:
        """(valid values in the window, z) of one entry, or None if it was not scored."""
        code, t = key
        table = self._dicts.get(code)
        if table is None:
            arrays = self.codes.get(code)
            if arrays is None:
                return None
            ts, n, z = arrays
            table = self._dicts[code] = dict(zip(ts.tolist(),
                                                 zip(n.tolist(), z.tolist(), strict=True),
                                                 strict=True))
        return table.get(t)

    def items(self) -> list[tuple[tuple[str, float], tuple[int, float]]]:
        return [((code, t), (int(k), float(z))) for code, (ts, n, zs) in self.codes.items()
                for t, k, z in zip(ts.tolist(), n.tolist(), zs.tolist(), strict=True)]

    def lookup(self, code: str, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For data times ``t``: whether each was scored, and its count and z (0 if not)."""
        arrays = self.codes.get(code)
        if arrays is None or not len(t):
            zero = np.zeros(len(t))
            return np.zeros(len(t), dtype=bool), zero, zero
        ts, n, z = arrays
        k = np.minimum(np.searchsorted(ts, t), len(ts) - 1)
        found = ts[k] == t
        return found, n[k], z[k]


def _medians(ordered: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Row medians of the first ``counts[i]`` (sorted, finite) entries of each row."""
    rows = np.arange(len(ordered))
    half = np.maximum(counts // 2, 0)
    upper = ordered[rows, np.minimum(half, ordered.shape[1] - 1)]
    lower = ordered[rows, np.maximum(half - 1, 0)]
    return np.where(counts % 2 == 1, upper, (lower + upper) / 2)


def _scores(hist_v: list[float], hist_ok: list[bool], x: np.ndarray, ok: np.ndarray,
            window: int) -> tuple[np.ndarray, np.ndarray]:
    """Valid counts and z of each new entry (value ``x``, valid flag ``ok``) against the
    ``window`` entries before it (the buffer's last entries, then the new ones)."""
    pad = np.full(window, math.inf)
    hist = np.where(np.array(hist_ok, dtype=bool), np.array(hist_v, dtype=np.float64),
                    math.inf) if hist_v else np.zeros(0)
    vals = np.concatenate([pad, hist, np.where(ok, x, math.inf)])
    valid = np.concatenate([np.zeros(window, dtype=bool), np.array(hist_ok, dtype=bool),
                            ok])
    start = window + len(hist_v)  # position of the first new entry
    views = np.lib.stride_tricks.sliding_window_view(vals, window)[start - window:-1]
    counts = np.lib.stride_tricks.sliding_window_view(valid, window)[start - window:-1].sum(1)
    views = views[: len(x)]
    counts = counts[: len(x)]
    with np.errstate(all="ignore"):  # rows without a valid value (inf - inf): never used
        ordered = np.sort(views, axis=1)  # invalid entries (inf) sort last
        med = _medians(ordered, counts)
        dev = np.where(np.isfinite(views), np.abs(views - med[:, None]), math.inf)
        mad = _medians(np.sort(dev, axis=1), counts)
        z = 0.6745 * (x - med) / np.maximum(mad, 1e-9)
    return counts, z


def batch_scores(state: dict[str, Any], readings: Sequence[Reading],
                 window: int, buffer: int, columns: Columns | None = None) -> SpikeScores | None:
    """Spike z-scores for the readings ``observe`` will put into the code buffers, or None
    where the batch is not worth it or the fast path could differ (non-finite values).
    ``columns``: the batch's columns if already made (else made here)."""
    if len(readings) < 4 or buffer <= window:
        return None
    cols = columns if columns is not None else Columns(readings)
    last = dict(state["last"])
    primary = state["period"]
    taken = np.zeros(len(readings), dtype=bool)
    for k, reading in enumerate(readings):  # the same gates as observe, in the same order
        if reading.event == "restart":
            continue
        t = cols.times[k]
        seen = last.get(reading.period)
        if seen is not None and t <= seen:
            continue
        if primary is None:
            primary = reading.period
        last[reading.period] = t
        taken[k] = reading.period == primary
    out = SpikeScores()
    for code, col in cols.codes.items():
        if "-" in code:
            continue
        mask = taken[col.pos_arr]
        if not mask.any():
            continue
        x = col.v_arr[mask]
        if not np.isfinite(x).all():
            return None
        buf = state["codes"].get(code, {}).get("buf", [])[-window:]
        hist_v = [p[1] for p in buf]
        if not all(math.isfinite(v) for v in hist_v):
            return None
        ok = np.array([f == "N" for f in col.flag], dtype=bool)[mask]
        counts, z = _scores(hist_v, [p[2] == "N" for p in buf], x, ok, window)
        out.codes[code] = (np.array(col.t)[mask], counts, z)
    return out
