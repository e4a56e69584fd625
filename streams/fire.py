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
A record may carry no detections, only the data's time (``FireBatch.observed_until``): the
plug-in then closes the cell's events that can no longer grow, and nothing else.

The zones are the registry's (``streams.router``): the plug-in gets them as GeoJSON
features, rebuilt when the registry watch installs a new router.

Fusion with nearby sensors: a clue's site is the zone or ~1 km grid cell of its location,
and fusion (``streams.clues``) joins clues of one site. A camera seeing the smoke or a
station measuring the PM2.5 rise stands a few km from the field, in another cell; so the
agent routes each fire clue itself and, when an active camera or station lies within
``fire_fusion_km`` (3 km) of the event's centre, gives it the nearest one's site (the site
that sensor's own clues get) and names it in ``route["near"]``. Jurisdiction, zones and
department stay the fire's own. The sensors' positions come from the registry, reloaded when
stations or cameras change.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from contract.clue import Clue
from contract.records import FireBatch
from contract.topics import SAT_FIRES
from detectors.fire import KM_PER_DEG_LAT, KM_PER_DEG_LON_EQ, FireZones
from detectors.fire_monitor import FireMonitor
from detectors.fire_params import fire_config
from storage.registry_listen import ALL
from storage.resources import sensor_points
from storage.sinks import RejectedSink
from streams.sinks import decode_or_reject, flush_until_durable, reject_failed
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
        self.sensors: list[tuple[str, str, float, float]] | None = None  # None: load first
        streams.on_registry_change.append(self._registry_changed)

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

    def _registry_changed(self, kind: str) -> None:
        if kind in ("station", "camera", ALL):
            self.sensors = None

    async def _sensors(self) -> list[tuple[str, str, float, float]]:
        if self.sensors is None:
            if not self.streams.settings.database_url:
                return []
            try:
                self.sensors = await sensor_points(await self.streams.db_pool())
            except Exception as exc:  # database away: these clues keep their own site
                log.warning("sensor positions not loaded (%s); fire clues at their own "
                            "site until they are", exc)
                return []
        return self.sensors

    def near_site(self, clue: Clue, sensors: list[tuple[str, str, float, float]]) -> Clue:
        """The clue routed, at the site of the nearest sensor within ``fire_fusion_km``."""
        route = self.streams.router.route_clue(clue).to_dict()
        km_max = self.streams.settings.fire_fusion_km
        lon, lat = clue.location["coordinates"] if clue.location else (None, None)
        if sensors and km_max > 0 and lon is not None:
            pts = np.array([(s[2], s[3]) for s in sensors])
            kx = KM_PER_DEG_LON_EQ * math.cos(math.radians(lat))
            km = np.hypot((pts[:, 0] - lon) * kx, (pts[:, 1] - lat) * KM_PER_DEG_LAT)
            best = int(np.argmin(km))
            if km[best] <= km_max:
                kind, sid, slon, slat = sensors[best]
                route["site"] = self.streams.router.index.site_key(
                    {"type": "Point", "coordinates": [slon, slat]})
                route["near"] = {"kind": kind, "id": sid, "km": round(float(km[best]), 2)}
        return clue.model_copy(update={"route": route})

    async def handle(self, batch: FireBatch, partition: int, raw: bytes = b"",
                     dead: RejectedSink | None = None) -> int:
        """One cell's batch; returns the clues sent. A batch the plug-in fails on is kept
        in ``dead`` with its bytes and the reason, and the cell's history is left as it was."""
        stored = self.cells.data.get(batch.cell)
        zones = self.zones()

        def work() -> tuple[FireMonitor, list[Clue], dict[str, Any], bytes]:
            # all CPU, off the event loop: the history rebuilt from a copy of the stored
            # value (up to MAX_HISTORY detections), the batch judged, the new state encoded
            monitor = FireMonitor(self.config, batch.cell, copy.deepcopy(stored), zones=zones)
            clues = monitor.observe(batch)
            state = monitor.to_state()  # fresh lists: the table may keep this value as is
            return monitor, clues, state, orjson.dumps(state)

        loop = asyncio.get_running_loop()
        try:
            monitor, clues, state, encoded = await loop.run_in_executor(self.executor, work)
        except Exception as exc:
            log.exception("fire cell %s from %s failed", batch.cell, batch.source)
            reject_failed(SAT_FIRES, raw, dead, "fire events", exc,
                          {"cell": batch.cell, "source": batch.source})
            return 0
        if self.streams.clue_exit.hold_until is not None:  # route over the registry's zones
            await self.streams.clue_exit.hold_until.wait()
        sensors = await self._sensors()
        clues = [self.near_site(c, sensors) for c in clues]
        await self.send_clues(clues)  # clues before state (see the module doc)
        put_state(self.cells, partition, batch.cell, state, encoded)
        log.info("fire cell %s from %s: %d detection(s), %d clue(s), %d masked%s",
                 batch.cell, batch.source, len(batch.detections), len(clues),
                 len(monitor.masked), f" ({'; '.join(monitor.masked[:3])})"
                 if monitor.masked else "")
        return len(clues)


def register(streams: Streams) -> FireAgent:
    return FireAgent(streams)
