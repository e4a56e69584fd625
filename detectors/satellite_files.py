"""Whole-file change detection in constant memory: two passes over block-aligned windows.

Why: a Sentinel-2 or Landsat scene does not fit comfortably in memory once both dates and
float copies exist. Pass 1 takes a sample of both scenes to fix the scene statistics and
the threshold: GDAL's decimated read when both have overviews, else a fixed budget of
whole blocks spread over the scene (:mod:`detectors.satellite_sample`; reading a fraction
of the file, where a decimated read without overviews costs a full read); pass 2 reads
windows aligned to the AFTER file's blocks on a thread pool (GDAL and numpy release the
GIL), classifies, writes the mask and polygonises each window; only polygon parts stay
in memory, plus pass 1's blocks (up to ``keep_mb``) until pass 2 uses them, so that no
block is read twice (:class:`detectors.satellite_sample.KeptBlocks`). BEFORE is put on
AFTER's grid by a ``WarpedVRT`` when the grids differ (bilinear for bands, nearest for QA).
"""

from __future__ import annotations

import json
import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import MaskFlags, Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from detectors.raster_guard import gdal_env, open_raster
from detectors.satellite import (
    NODATA_CODE,
    SPECTRAL,
    ChangePolygon,
    DetectParams,
    qa_invalid,
    roles_from_descriptions,
)
from detectors.satellite_pixels import SceneStats, classify_block, scene_stats
from detectors.satellite_sample import KeptBlocks, Pair, gather, plan_sample, thin
from detectors.satellite_vector import PartCollector, block_parts


@dataclass
class FileResult:
    """Polygons plus what produced them (for clue params and reports)."""

    polygons: list[ChangePolygon]
    stats: SceneStats
    roles_before: dict[str, int]
    roles_after: dict[str, int]
    crs: str
    shape: tuple[int, int]


def band_roles(ds: Any, band_map: Mapping[str, int] | None) -> dict[str, int]:
    """Roles from an explicit band map, else from the band descriptions."""
    roles = dict(band_map) if band_map else roles_from_descriptions(ds.descriptions)
    bad = {r: i for r, i in roles.items() if not 1 <= i <= ds.count}
    if bad:
        raise ValueError(f"band index out of range 1..{ds.count}: {bad}")
    return roles


def _same_grid(a: Any, b: Any) -> bool:
    return (a.crs == b.crs and a.transform.almost_equals(b.transform)
            and a.width == b.width and a.height == b.height)


@contextmanager
def _open_pair(before: Path, after: Path, allowed: Sequence[str] = ()
               ) -> Iterator[tuple[Any, Any, Any]]:
    """(after, before-bands-on-after-grid, before-QA-on-after-grid) datasets. Both are
    opened by ``raster_guard.open_raster`` (GeoTIFF only, no network): a tile record's uri
    is input too."""
    with ExitStack() as stack:
        stack.enter_context(gdal_env())  # also for the WarpedVRTs' reads below
        a = stack.enter_context(open_raster(after, allowed))
        b = stack.enter_context(open_raster(before, allowed))
        if _same_grid(a, b):
            yield a, b, b
            return
        opts = {"crs": a.crs, "transform": a.transform, "width": a.width,
                "height": a.height, "add_alpha": b.nodata is None}
        bands = stack.enter_context(WarpedVRT(b, resampling=Resampling.bilinear, **opts))
        qa = stack.enter_context(WarpedVRT(b, resampling=Resampling.nearest, **opts))
        yield a, bands, qa


def _read(ds: Any, qa_ds: Any, roles: Mapping[str, int], names: tuple[str, ...],
          window: Window | None, out_shape: tuple[int, int] | None,
          qa_kind: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Bands by role and a validity mask (dataset masks, NaN, QA) for one window."""
    idx = [roles[n] for n in names]
    kw: dict[str, Any] = {"window": window}
    if out_shape is not None:
        kw["out_shape"] = (len(idx), *out_shape)
    data = ds.read(idx, **kw)
    if all(ds.mask_flag_enums[i - 1] == [MaskFlags.all_valid] for i in idx):
        # No nodata, mask band or alpha: GDAL's masks would be all 255, so skip reading them.
        valid = np.ones(data.shape[1:], bool)
    else:
        valid = np.all(ds.read_masks(idx, **kw) > 0, axis=0)
    if data.dtype.kind == "f":
        valid &= np.all(np.isfinite(data), axis=0)
    if "qa" in roles:
        qkw = dict(kw)
        if out_shape is not None:
            qkw["out_shape"] = out_shape
        qa = qa_ds.read(roles["qa"], resampling=Resampling.nearest, **qkw)
        valid &= ~qa_invalid(qa, qa_kind)
        if qa_ds is not ds:
            valid &= qa_ds.read_masks(roles["qa"], **qkw) > 0
    return dict(zip(names, data, strict=True)), valid


def _windows(ds: Any, target: int = 1024) -> list[Window]:
    """Windows that are whole multiples of the file's blocks, about ``target`` pixels."""
    bh, bw = ds.block_shapes[0]
    wh = max(bh, (target // bh) * bh) if bh < ds.height else ds.height
    ww = max(bw, (target // bw) * bw) if bw < ds.width else ds.width
    return [Window(c, r, min(ww, ds.width - c), min(wh, ds.height - r))
            for r in range(0, ds.height, wh) for c in range(0, ds.width, ww)]


def detect_files(before_path: str | Path, after_path: str | Path, *,
                 band_map: Mapping[str, int] | None = None,
                 before_band_map: Mapping[str, int] | None = None,
                 zones: Mapping[str, Any] | None = None,
                 params: DetectParams | None = None, mask_out: str | Path | None = None,
                 workers: int = 2, window_size: int = 1024, cache_mb: int = 128,
                 keep_mb: int = 192) -> FileResult:
    """Change polygons of a whole scene pair, window by window (see module docstring).

    ``cache_mb`` caps GDAL's block cache (default 5 % of RAM), which otherwise grows with
    the scene during a decimated pass 1 (overview reads) and dominates peak memory.
    ``keep_mb`` bounds pass 1's blocks kept for pass 2 (:class:`KeptBlocks`); the default
    holds the minimum sample (24 blocks) of a 512²-tiled 6-band uint16 pair, 157 MB.
    """
    with rasterio.Env(GDAL_CACHEMAX=cache_mb * 1024 * 1024):
        return _detect_files(Path(before_path), Path(after_path), band_map, before_band_map,
                             zones, params, mask_out, workers, window_size, keep_mb)


class _PairReader:
    """Reads one window of both dates from a few handle sets opened once.

    Why: rasterio datasets are not thread-safe, and opening a pair per window (CRS parsing,
    VRT set-up) profiled at about a tenth of the run. So one handle set per worker thread
    is opened here, on the caller's thread (rasterio's GDAL environment is per thread, so
    the datasets must be closed where they were opened), and each read borrows one.
    """

    def __init__(self, stack: ExitStack, before_path: Path, after_path: Path,
                 rb: Mapping[str, int], ra: Mapping[str, int], names: tuple[str, ...],
                 qa_kind: str, workers: int) -> None:
        self.rb, self.ra, self.names, self.qa_kind = rb, ra, names, qa_kind
        self.free: queue.SimpleQueue[tuple[Any, Any, Any]] = queue.SimpleQueue()
        for _ in range(max(1, workers)):
            self.free.put(stack.enter_context(_open_pair(before_path, after_path)))

    def __call__(self, win: Window) -> Pair:
        handles = self.free.get()  # never waits: no more readers than handle sets
        try:
            a2, b2, bq2 = handles
            bb, valid = _read(b2, bq2, self.rb, self.names, win, None, self.qa_kind)
            aa, va = _read(a2, a2, self.ra, self.names, win, None, self.qa_kind)
        finally:
            self.free.put(handles)
        valid &= va
        return bb, aa, valid


def _in_order(pool: ThreadPoolExecutor, fn: Callable[[Any], Any], items: Iterable[Any],
              depth: int) -> Iterator[Any]:
    """``fn`` over ``items`` on the pool, results in order; few in flight (bounds memory)."""
    inflight: deque[Future[Any]] = deque()
    for item in items:
        inflight.append(pool.submit(fn, item))
        if len(inflight) >= depth:
            yield inflight.popleft().result()
    while inflight:
        yield inflight.popleft().result()


def _has_overviews(ds: Any, roles: Mapping[str, int], names: tuple[str, ...]) -> bool:
    return all(ds.overviews(roles[n]) for n in names)


def _detect_files(before_path: Path, after_path: Path, band_map: Mapping[str, int] | None,
                  before_band_map: Mapping[str, int] | None, zones: Mapping[str, Any] | None,
                  params: DetectParams | None, mask_out: str | Path | None, workers: int,
                  window_size: int, keep_mb: int) -> FileResult:
    p = params or DetectParams()
    depth = 2 * max(1, workers)  # windows in flight: bounds memory
    with ExitStack() as stack:
        a_ds, b_ds, bq_ds = stack.enter_context(_open_pair(before_path, after_path))
        ra = band_roles(a_ds, band_map)
        with open_raster(before_path) as raw:
            rb = band_roles(raw, before_band_map or band_map)
        names = tuple(n for n in SPECTRAL if n in ra and n in rb)
        if not names:
            raise ValueError(f"no common band roles (before {rb}, after {ra}); use --bands")
        scale = max(1.0, max(a_ds.width, a_ds.height) / p.sample_size)
        shape = (max(1, int(a_ds.height / scale)), max(1, int(a_ds.width / scale)))
        profile = {"driver": "GTiff", "dtype": "uint8", "count": 1, "nodata": NODATA_CODE,
                   "crs": a_ds.crs, "transform": a_ds.transform, "width": a_ds.width,
                   "height": a_ds.height, "tiled": True, "blockxsize": 256,
                   "blockysize": 256, "compress": "deflate"}
        transform, crs, dims = a_ds.transform, a_ds.crs, (a_ds.height, a_ds.width)
        windows = _windows(a_ds, window_size)
        read = _PairReader(stack, before_path, after_path, rb, ra, names, p.qa_kind, workers)
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=max(1, workers)))
        budget = p.sample_size ** 2
        units = _windows(a_ds, 128)
        kept = KeptBlocks(units, keep_mb << 20)
        if (dims[0] * dims[1] > budget and _has_overviews(a_ds, ra, names)
                and _has_overviews(b_ds, rb, names)):
            # Overviews make GDAL's decimated read cheap: it reads a reduced level.
            sb, vb = _read(b_ds, bq_ds, rb, names, None, shape, p.qa_kind)
            sa, va = _read(a_ds, a_ds, ra, names, None, shape, p.qa_kind)
            vb &= va
        else:
            chosen, stride = plan_sample(units, budget)
            thinned = []
            for win, pair in _in_order(pool, lambda w: (w, read(w)), chosen, depth):
                kept.offer(win, pair)
                thinned.append(thin(pair, stride))
            sb, sa, vb = gather(thinned)
            del thinned
        st = scene_stats(sb, sa, vb, p, workers=workers)
        del sb, sa, vb
        collector = PartCollector(dims)

        def work(win: Window) -> list[tuple[Window, np.ndarray, list[Any]]]:
            out = []
            for w, (bb, aa, valid) in kept.pieces(win, read):
                codes, score = classify_block(bb, aa, valid, st, p)
                out.append((w, codes, block_parts(codes, score, int(w.row_off),
                                                  int(w.col_off))))
            return out

        dst = stack.enter_context(rasterio.open(mask_out, "w", **profile)) if mask_out else None
        if dst is not None:
            dst.update_tags(1, CODES=json.dumps(MASK_CODES))
        for pieces in _in_order(pool, work, windows, depth):
            for win, codes, parts in pieces:
                if dst is not None:
                    dst.write(change_mask(codes), 1, window=win)
                collector.add_parts(parts, codes.shape, int(win.row_off), int(win.col_off))
    polys = collector.finish(transform, crs, st.threshold, p, zones)
    return FileResult(polys, st, rb, ra, str(crs), dims)


MASK_CODES = {"0": "unchanged", "1": "changed", "255": "masked or no data"}


def change_mask(codes: np.ndarray) -> np.ndarray:
    """The contract's mask from kind codes: 1 changed, 0 unchanged, 255 masked or no-data."""
    out = (codes > 0).astype(np.uint8)
    out[codes == NODATA_CODE] = NODATA_CODE
    return out


def stack_bands(paths: Mapping[str, str | Path], out: str | Path) -> Path:
    """Stack single-band files (role -> path, same grid) into one GeoTIFF with descriptions.

    Landsat deliveries come one band per file; the detector wants one file per date.
    """
    items = list(paths.items())
    with open_raster(items[0][1]) as first:
        profile = first.profile.copy()
    dtypes = []
    for _, path in items:
        with open_raster(path) as ds:
            dtypes.append(ds.dtypes[0])
    profile.update(count=len(items), dtype=np.result_type(*dtypes).name, driver="GTiff")
    with rasterio.open(out, "w", **profile) as dst:
        for i, (role, path) in enumerate(items, start=1):
            with open_raster(path) as ds:
                dst.write(ds.read(1).astype(profile["dtype"]), i)
            dst.set_band_description(i, role)
    return Path(out)
