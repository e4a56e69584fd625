"""Satellite agent: ``sat.tiles`` to ``clues``, with multi-look confirmation per tile.

Tiles are keyed by their grid-derived tile id, so every acquisition of a tile arrives in
order on one partition. For each tile the agent runs the tile's detector
(``detectors.satellite_tile.TileMonitor``, the satellite plug-in) in a thread pool (GDAL
and numpy release the GIL; the event loop keeps serving Kafka): it reads the window of the
new scene and of its baseline, and checks pending alerts against their *own* baseline,
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
import copy
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import orjson

from contract.clue import Clue
from contract.records import Tile
from contract.topics import SAT_TILES
from detectors.raster_guard import harden_process
from detectors.satellite_tile import SatelliteConfig, TileMonitor
from storage.sinks import RejectedSink
from streams.sinks import decode_or_reject, flush_until_durable, reject_failed
from streams.table_state import put_state

if TYPE_CHECKING:
    from streams.app import Streams

log = logging.getLogger(__name__)


class SatelliteAgent:
    """The ``sat.tiles`` agent and its ``sat-tiles`` confirmation table."""

    def __init__(self, streams: Streams) -> None:
        settings = streams.settings
        self.config = SatelliteConfig(confirm_looks=settings.sat_confirm_looks,
                                      window_looks=settings.sat_window_looks,
                                      expire_days=settings.sat_expire_days,
                                      allowed_prefixes=settings.satellite_allowed_prefixes)
        harden_process()  # no network for GDAL, also in the detection threads
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
                    await self.handle(tile, event.message.partition, event.value, dead)
                    if len(dead):
                        await flush_until_durable(streams.db_pool, dead)

        self.agent = streams.app.agent(streams.topic(SAT_TILES),
                                       name="streams.satellite.sat_tiles")(sat_tiles)

    async def handle(self, tile: Tile, partition: int, raw: bytes = b"",
                     dead: RejectedSink | None = None) -> int:
        """Look at one tile; returns the number of clues sent. A tile that cannot be looked
        at (a file refused or unreadable, a detector failure) is kept in ``dead``."""
        stored = self.tiles.data.get(tile.tile_id)
        if not TileMonitor(self.config, tile.tile_id, stored).is_new(tile):
            return 0  # re-sent or out of order: already looked at (reads, changes nothing)

        def work() -> tuple[list[Clue], dict[str, Any], bytes]:
            # a copy: confirmation updates its state in place, and the table must keep the
            # old value until the clues are out (a cancelled publish must not leave it
            # half-written); copying up to max_state_bytes of state and encoding the new
            # one are CPU work, off the event loop like the detection
            monitor = TileMonitor(self.config, tile.tile_id, copy.deepcopy(stored))
            clues = monitor.observe(tile)
            state = monitor.to_state()
            return clues, state, orjson.dumps(state)

        loop = asyncio.get_running_loop()
        try:
            clues, state, encoded = await loop.run_in_executor(self.executor, work)
        except Exception as exc:
            log.exception("tile %s of %s: detection failed", tile.tile_id, tile.scene_id)
            reject_failed(SAT_TILES, raw, dead, "detection", exc,
                          {"tile_id": tile.tile_id, "scene_id": tile.scene_id})
            return 0
        await self.send_clues(clues)  # clues before state (see the module doc)
        put_state(self.tiles, partition, tile.tile_id, state, encoded)
        log.info("tile %s of %s: %d clue(s) sent", tile.tile_id, tile.scene_id, len(clues))
        return len(clues)


def register(streams: Streams) -> SatelliteAgent:
    return SatelliteAgent(streams)
