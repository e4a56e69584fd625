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
