"""Pass 1's statistics sample: a fixed budget of whole blocks spread over the scene.

Why: the scene statistics and the threshold (:func:`detectors.satellite_pixels.scene_stats`)
need a few hundred thousand pixels from all over the scene, not every pixel. A decimated
sample (every k-th pixel of every row) costs as much as reading the whole pair, because a
file is compressed block by block and every block holds some kept pixel; that was half of
``detect_files``'s reading. Whole blocks are the unit of reading, so the sample is made of
whole blocks: the block grid is cut into about ``n`` equal cells (rows and columns of cells
in the scene's aspect ratio) and one block per cell is drawn by a generator with a fixed
seed. The sample is therefore spatially stratified (every part of the scene is represented)
and deterministic (the same pair always gives the same statistics), and a random position
inside each cell cannot alias with a periodic pattern (field parcels, a tiling artefact)
the way a fixed lattice position could. Every ``stride``-th pixel of those blocks in each
direction is kept so the statistics stay under ``budget`` pixels (their cost is linear in
the pixel count). A scene of at most ``budget`` pixels uses every pixel, as before.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
from rasterio.windows import Window

Pair = tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]  # before, after, valid
MIN_UNITS = 24  # blocks read at least (when the scene has more): enough strata for spread
READ_SHARE = 8  # beyond that minimum, read at most one block in READ_SHARE
SEED = 20261201  # fixed: the sample, hence the statistics, are reproducible


def _lattice(n_rows: int, n_cols: int, n: int) -> tuple[int, int]:
    """Cells (rows, columns) about ``n`` in all, shaped like the block grid."""
    rows = max(1, min(n_rows, round(math.sqrt(n * n_rows / n_cols))))
    cols = max(1, min(n_cols, math.ceil(n / rows)))
    return rows, cols


def plan_sample(units: Sequence[Window], budget: int,
                seed: int | None = None) -> tuple[list[Window], int]:
    """(blocks to read, pixel stride) for a sample of at most about ``budget`` pixels.

    ``units`` are block-aligned windows covering the scene on a regular grid (raster order).
    """
    total = sum(int(w.width) * int(w.height) for w in units)
    if total <= budget:
        return list(units), 1
    row_offs = sorted({int(w.row_off) for w in units})
    col_offs = sorted({int(w.col_off) for w in units})
    grid = {(int(w.row_off), int(w.col_off)): w for w in units}
    n = min(len(units), max(MIN_UNITS, math.ceil(len(units) / READ_SHARE)))
    cell_rows, cell_cols = _lattice(len(row_offs), len(col_offs), n)
    r_edges = np.linspace(0, len(row_offs), cell_rows + 1).astype(int)
    c_edges = np.linspace(0, len(col_offs), cell_cols + 1).astype(int)
    rng = np.random.default_rng(SEED if seed is None else seed)
    picked = set()
    for i in range(cell_rows):
        for j in range(cell_cols):
            r = int(rng.integers(r_edges[i], r_edges[i + 1]))
            c = int(rng.integers(c_edges[j], c_edges[j + 1]))
            picked.add((row_offs[r], col_offs[c]))
    chosen = [grid[k] for k in sorted(picked)]
    read_px = sum(int(w.width) * int(w.height) for w in chosen)
    return chosen, max(1, math.ceil(math.sqrt(read_px / budget)))


def thin(pair: Pair, stride: int) -> Pair:
    """Every ``stride``-th pixel of one window in each direction, as 1-D copies."""
    if stride == 1:
        return ({n: x.ravel() for n, x in pair[0].items()},
                {n: x.ravel() for n, x in pair[1].items()}, pair[2].ravel())
    keep = np.s_[stride // 2::stride, stride // 2::stride]
    return ({n: x[keep].ravel() for n, x in pair[0].items()},
            {n: x[keep].ravel() for n, x in pair[1].items()}, pair[2][keep].ravel())


def gather(pairs: Iterable[Pair]) -> Pair:
    """The thinned windows joined into one 1-D sample per band (and validity)."""
    parts = list(pairs)
    if not parts:
        raise ValueError("empty statistics sample")
    return ({n: np.concatenate([p[0][n] for p in parts]) for n in parts[0][0]},
            {n: np.concatenate([p[1][n] for p in parts]) for n in parts[0][1]},
            np.concatenate([p[2] for p in parts]))


def pair_bytes(pair: Pair) -> int:
    return sum(x.nbytes for x in pair[0].values()) + sum(
        x.nbytes for x in pair[1].values()) + pair[2].nbytes


class KeptBlocks:
    """Pass 1's blocks, kept (up to a memory budget) so pass 2 does not read them again.

    Why: without overviews pass 1 reads about a third of the pair (24 of the 64 blocks of a
    4000² scene), and pass 2 read those blocks a second time: a third more reading than the
    raw read that bounds the detector's speed. A pass-2 window that holds kept units and is
    tiled exactly by units (blocks of pass 1's grid) is processed unit by unit: kept units
    from memory (then dropped), the others read; other windows are read whole as before.
    The pixels are the same either way, and polygon parts cut by unit edges are merged like
    those cut by window edges.
    """

    def __init__(self, grid: Sequence[Window], budget_bytes: int) -> None:
        self.grid = list(grid)
        self.room = budget_bytes
        self.kept: dict[tuple[int, int], Pair] = {}
        self.lock = threading.Lock()
        self._box = np.array([(int(u.row_off), int(u.col_off), int(u.height), int(u.width))
                              for u in self.grid], np.int64).reshape(-1, 4)

    def offer(self, win: Window, pair: Pair) -> None:
        """Keep one unit read by pass 1 if the budget allows."""
        size = pair_bytes(pair)
        if size <= self.room:
            self.kept[(int(win.row_off), int(win.col_off))] = pair
            self.room -= size

    def _units(self, win: Window) -> list[Window]:
        r, c, h, w = self._box.T
        r0, c0 = int(win.row_off), int(win.col_off)
        inside = ((r >= r0) & (r + h <= r0 + int(win.height))
                  & (c >= c0) & (c + w <= c0 + int(win.width)))
        idx = np.flatnonzero(inside)
        if int((h[idx] * w[idx]).sum()) != int(win.height) * int(win.width):
            return []  # the units do not tile this window
        return [self.grid[i] for i in idx]

    def pieces(self, win: Window, read: Callable[[Window], Pair]
               ) -> Iterator[tuple[Window, Pair]]:
        """One pass-2 window as (window, pixels) pieces: its units if any is kept, else
        the window itself, read once."""
        units: list[Window] = []
        mine: dict[tuple[int, int], Pair] = {}
        with self.lock:
            if self.kept:
                units = self._units(win)
                for u in units:
                    key = (int(u.row_off), int(u.col_off))
                    if key in self.kept:
                        mine[key] = self.kept.pop(key)
        if not mine:
            yield win, read(win)
            return
        for u in units:
            pair = mine.pop((int(u.row_off), int(u.col_off)), None)
            yield u, pair if pair is not None else read(u)
