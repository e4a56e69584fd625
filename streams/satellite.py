"""Satellite agent: ``sat.tiles`` to ``clues``, with multi-look confirmation per tile.

Tiles are keyed by their grid-derived tile id, so every acquisition of a tile arrives in
order on one partition. For each tile the agent reads the window of the new scene and of
its baseline (put on the new scene's grid by a WarpedVRT when the grids differ) and runs
``detect_tile`` in a thread pool (GDAL and numpy release the GIL; the event loop keeps
serving Kafka). Pending alerts of the tile are also checked against their *own* baseline,
because against the latest scene an old change no longer shows.

Confirmation (``detectors.satellite_confirm``): low on one look, confirmed when 2 of the
next 4 acquisitions agree, expired otherwise after ``sat_expire_days``. The tile's state is
in the Faust table ``sat-tiles`` (changelog-backed). Settings (``contract.settings``):
``sat_confirm_looks`` (2), ``sat_window_looks`` (4), ``sat_expire_days`` (90),
``sat_threads`` (2). A tile's clues leave through the one clue exit before its state is
written, so a crash in between re-sends them rather than losing them.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.windows import Window

from contract.clue import Clue
from contract.records import Tile
from contract.topics import SAT_TILES
from detectors.satellite import DetectParams, detect_tile
from detectors.satellite_confirm import ConfirmParams, new_state, observe, pending_baselines
from detectors.satellite_evidence import to_clues
from storage.sinks import RejectedSink
from streams.sinks import decode_or_reject, flush_until_durable
from streams.table_state import put_state

if TYPE_CHECKING:
    from streams.app import Streams

log = logging.getLogger(__name__)

PARAMS = DetectParams()


def _roles(ds: Any, bands: dict[str, int], qa_band: int | None) -> dict[str, int]:
    from detectors.satellite_files import band_roles

    roles = dict(bands) if bands else band_roles(ds, None)
    if qa_band:
        roles["qa"] = qa_band
    return roles


def detect_pair(baseline_uri: str, tile: Tile, params: DetectParams = PARAMS) -> list[Clue]:
    """Clues of one tile window: ``tile.uri`` against ``baseline_uri`` (runs in a thread)."""
    import rasterio

    from detectors.satellite_files import _open_pair, _read

    c, r, w, h = tile.window
    win = Window(c, r, w, h)
    with _open_pair(Path(baseline_uri), Path(tile.uri)) as (a_ds, b_ds, bq_ds):
        ra = _roles(a_ds, tile.bands, tile.qa_band)
        with rasterio.open(baseline_uri) as raw:
            rb = _roles(raw, {}, None) or ra
        names = tuple(n for n in ra if n in rb and n != "qa")
        bb, vb = _read(b_ds, bq_ds, rb, names, win, None, params.qa_kind)
        aa, va = _read(a_ds, a_ds, ra, names, win, None, params.qa_kind)
        transform, crs = a_ds.window_transform(win), a_ds.crs
    valid = vb & va
    before = {n: np.where(valid, v.astype(np.float32), np.nan) for n, v in bb.items()}
    after = {n: np.where(valid, v.astype(np.float32), np.nan) for n, v in aa.items()}
    if valid.sum() < 16:
        return []
    polys = detect_tile(before, after, transform, crs, params=params)
    base_time = tile.baseline_time or tile.time
    return to_clues(polys, subject=tile.tile_id, before_time=base_time, after_time=tile.time,
                    before_label=Path(baseline_uri).name, after_label=tile.scene_id,
                    params=params)


def look(tile: Tile, pending: set[str]) -> tuple[list[Clue], dict[str, list[Clue]]]:
    """New changes against the tile's baseline, and against each pending alert's baseline."""
    new = detect_pair(tile.baseline_uri, tile) if tile.baseline_uri else []
    by_base: dict[str, list[Clue]] = {}
    for uri in pending:
        if uri == tile.baseline_uri:
            by_base[uri] = new
        elif uri and Path(uri).exists():
            by_base[uri] = detect_pair(uri, tile)
    return new, by_base


class SatelliteAgent:
    """The ``sat.tiles`` agent and its ``sat-tiles`` confirmation table."""

    def __init__(self, streams: Streams) -> None:
        settings = streams.settings
        self.confirm = ConfirmParams(confirm_looks=settings.sat_confirm_looks,
                                     window_looks=settings.sat_window_looks,
                                     expire_days=settings.sat_expire_days)
        self.executor = ThreadPoolExecutor(max_workers=settings.sat_threads,
                                           thread_name_prefix="sat-detect")
        self.tiles = streams.app.Table("sat-tiles", default=None,
                                       partitions=settings.partitions, key_type=str,
                                       help="alert confirmation state per satellite tile")
        self.send_clues = streams.clue_exit.publish

        async def sat_tiles(stream: Any) -> None:
            dead = RejectedSink()
            async for event in stream.events():
                tile = decode_or_reject(SAT_TILES, event.value, dead)
                if len(dead):
                    await flush_until_durable(streams.db_pool, dead)
                if isinstance(tile, Tile):
                    await self.handle(tile, event.message.partition)

        self.agent = streams.app.agent(streams.topic(SAT_TILES),
                                       name="streams.satellite.sat_tiles")(sat_tiles)

    async def handle(self, tile: Tile, partition: int) -> int:
        """Look at one tile; returns the number of clues sent."""
        state = self.tiles.data.get(tile.tile_id) or new_state()
        if state["last_time"] is not None and tile.time.timestamp() <= state["last_time"]:
            return 0  # re-sent or out of order: already looked at
        loop = asyncio.get_running_loop()
        try:
            new, by_base = await loop.run_in_executor(
                self.executor, look, tile, pending_baselines(state))
        except Exception:
            log.exception("tile %s of %s: detection failed", tile.tile_id, tile.scene_id)
            return 0
        state, clues = observe(state, tile.time, tile.baseline_uri, new, by_base, self.confirm)
        await self.send_clues(clues)  # clues before state (see the module doc)
        put_state(self.tiles, partition, tile.tile_id, state)
        log.info("tile %s of %s: %d new change(s), %d clue(s) sent", tile.tile_id,
                 tile.scene_id, len(new), len(clues))
        return len(clues)


def register(streams: Streams) -> SatelliteAgent:
    return SatelliteAgent(streams)
