"""A batch of readings turned into columns once: data times, and per code its entries.

The batch path of the env detector reads a batch several times -- the spike scores for all
of it, the quiet runs (``env_quiet``) for stretches of it -- and each pass used to walk every
reading and every code in Python again, calling ``datetime.timestamp`` each time. Here the
batch is walked once: each reading's data time, and per code the offsets of the readings
that carry it with their values, flags and declared intervals (Python lists, so the window
sums that must stay bit-identical are still folded as Python floats; numpy arrays of the
offsets and values on demand, for the vectorised rules).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Sequence

import numpy as np

from contract.records import Reading


class CodeColumn:
    """One code's entries in a batch, in reading order."""

    __slots__ = ("code", "pos", "t", "v", "flag", "declared", "_pos_arr", "_v_arr")

    def __init__(self, code: str) -> None:
        self.code = code
        self.pos: list[int] = []  # offsets of the readings in the batch
        self.t: list[float] = []
        self.v: list[float] = []
        self.flag: list[str] = []
        self.declared: list[int | None] = []
        self._pos_arr: np.ndarray | None = None
        self._v_arr: np.ndarray | None = None

    def span(self, i: int, end: int) -> tuple[int, int]:
        """Entry indices of the readings at offsets ``i..end`` (end excluded)."""
        return bisect_left(self.pos, i), bisect_left(self.pos, end)

    @property
    def pos_arr(self) -> np.ndarray:
        if self._pos_arr is None:
            self._pos_arr = np.array(self.pos, dtype=np.int64)
        return self._pos_arr

    @property
    def v_arr(self) -> np.ndarray:
        if self._v_arr is None:
            self._v_arr = np.array(self.v, dtype=np.float64)
        return self._v_arr


class Columns:
    """The batch by code; ``times[k]`` is reading ``k``'s data time (epoch seconds)."""

    def __init__(self, readings: Sequence[Reading]) -> None:
        self.times = [r.time.timestamp() for r in readings]
        self.codes: dict[str, CodeColumn] = {}
        self.uniform = False  # every reading with the same codes and no flags
        if readings and self._uniform(readings):
            return
        codes = self.codes
        for k, r in enumerate(readings):
            t, flags, declared = self.times[k], r.flags, r.interval_s
            for code, value in r.values.items():
                col = codes.get(code)
                if col is None:
                    col = codes[code] = CodeColumn(code)
                col.pos.append(k)
                col.t.append(t)
                col.v.append(value)
                col.flag.append(flags.get(code, "N") if flags else "N")
                col.declared.append(declared)

    def _uniform(self, readings: Sequence[Reading]) -> bool:
        """The common case, every reading with the same codes and no flags, column by
        column (list comprehensions instead of appends per value); False if not that case."""
        keys = readings[0].values.keys()
        if any(r.flags or r.values.keys() != keys for r in readings):
            return False
        n = len(readings)
        pos, flags = list(range(n)), ["N"] * n
        declared = [r.interval_s for r in readings]
        for code in keys:
            col = self.codes[code] = CodeColumn(code)
            col.pos, col.t, col.flag, col.declared = pos, self.times, flags, declared
            col.v = [r.values[code] for r in readings]
        self.uniform = True
        return True

    def payload_hashes(self, i: int, end: int) -> list[str] | None:
        """``env_rules.payload_hash`` of readings ``i..end`` (the same text, so the same
        digests), built column by column; None unless the batch is uniform."""
        if not self.uniform:
            return None
        parts = [[f"{code}={v!r}" for v in self.codes[code].v[i:end]]
                 for code in sorted(self.codes)]
        return [hashlib.blake2b(";".join(texts).encode(), digest_size=6).hexdigest()
                for texts in zip(*parts, strict=True)]
