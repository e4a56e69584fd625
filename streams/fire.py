"""Fire agent: ``sat.fires`` (FIRMS detections by region cell) to fire-event clues.

Each record is one region cell's detections from one FIRMS file or poll; the cell is the
key, so a cell's history is on one partition and one worker. The agent runs the fire
plug-in (``detectors.fire_monitor.FireMonitor``: dedupe against the cell's history, group
into events, mask persistent heat and heat-source zones, classify over the registry's
zones, draw the evidence) in a thread -- matplotlib and numpy are CPU work that must not
hold the event loop -- and sends the events' clues through the one clue exit before it
writes the cell's history to the Faust table ``sat-fires`` (bounded: ``MAX_HISTORY``
detections of the last ``fire_persistent_window_days``). A crash in between re-sends the
same clues (same ids: idempotent downstream). Masked events raise no clue; they are logged.

The zones are the registry's (``streams.router``): the plug-in gets them as GeoJSON
features, rebuilt when the registry watch installs a new router.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from contract.input_rules import clean_text
from contract.records import FireBatch, Rejected
from contract.topics import SAT_FIRES
from detectors.fire import FireZones
from detectors.fire_monitor import FireMonitor
from detectors.fire_params import fire_config
from storage.sinks import RejectedSink
from streams.sinks import decode_or_reject, flush_until_durable
from streams.table_state import put_state

if TYPE_CHECKING:
    from geo.routing import Router
    from streams.app import Streams

log = logging.getLogger(__name__)


class FireAgent:
    """The ``sat.fires`` agent and its ``sat-fires`` history table."""

    def __init__(self, streams: Streams) -> None:
        settings = streams.settings
        self.streams = streams
        self.config = fire_config(settings)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fire-events")
        self.cells = streams.app.Table("sat-fires", default=None,
                                       partitions=settings.partitions, key_type=str,
                                       help="recent fire detections per region cell")
        self.send_clues = streams.clue_exit.publish
        self._zones: tuple[Router | None, FireZones | None] = (None, None)

        async def sat_fires(stream: Any) -> None:
            dead = RejectedSink()
            async for event in stream.events():
                batch = decode_or_reject(SAT_FIRES, event.value, dead)
                if isinstance(batch, FireBatch):
                    await self.handle(batch, event.message.partition, event.value, dead)
                if len(dead):
                    await flush_until_durable(streams.db_pool, dead)

        self.agent = streams.app.agent(streams.topic(SAT_FIRES),
                                       name="streams.fire.sat_fires")(sat_fires)

    def zones(self) -> FireZones | None:
        """The registry's zones as the plug-in wants them (rebuilt for a new router)."""
        router = self.streams.router
        if self._zones[0] is not router:
            zones = router.index.zones
            self._zones = (router, FireZones([z.to_feature() for z in zones]) if zones
                           else None)
        return self._zones[1]

    async def handle(self, batch: FireBatch, partition: int, raw: bytes = b"",
                     dead: RejectedSink | None = None) -> int:
        """One cell's batch; returns the clues sent. A batch the plug-in fails on is kept
        in ``dead`` with its bytes and the reason, and the cell's history is left as it was."""
        stored = self.cells.data.get(batch.cell)
        monitor = FireMonitor(self.config, batch.cell, copy.deepcopy(stored),
                              zones=self.zones())
        loop = asyncio.get_running_loop()
        try:
            clues = await loop.run_in_executor(self.executor, monitor.observe, batch)
        except Exception as exc:
            log.exception("fire cell %s from %s failed", batch.cell, batch.source)
            if dead is not None:
                dead.add(Rejected(
                    time=datetime.now(UTC), source=f"stream:{SAT_FIRES.name}",
                    reason=clean_text(f"fire events failed: {type(exc).__name__}: {exc}",
                                      2000),
                    raw=raw, context={"cell": batch.cell, "source": batch.source}))
            return 0
        await self.send_clues(clues)  # clues before state (see the module doc)
        put_state(self.cells, partition, batch.cell, monitor.to_state())
        log.info("fire cell %s from %s: %d detection(s), %d clue(s), %d masked%s",
                 batch.cell, batch.source, len(batch.detections), len(clues),
                 len(monitor.masked), f" ({'; '.join(monitor.masked[:3])})"
                 if monitor.masked else "")
        return len(clues)


def register(streams: Streams) -> FireAgent:
    return FireAgent(streams)
