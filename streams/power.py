"""The power rules in the stream (issue 18): meters re-keyed by entity, one monitor each.

Meters report like stations (MQTT JSON or HJ 212: station = meter id, code = channel,
value = kW), so their readings come on ``env.readings`` keyed by meter, and the production
and the treatment meters of one entity can land on different partitions. Two agents:

* ``power_route`` reads ``env.readings``, skips (by the record key, without decoding) every
  station that is not a registered meter, and re-sends the readings of meters as
  ``PowerSamples`` keyed by entity on ``power.samples``. It waits for the broker's ack
  before the next batch, so its offsets commit only after the re-keyed copy is durable.
* ``power_monitor`` reads ``power.samples``; the table ``power-monitors`` keyed by entity
  holds each ``detectors.power.EntityMonitor``'s state. Clues go out through the clue exit
  before the state is written (a crash in between re-judges the batch with the old state:
  the same clue ids, written idempotently). A timer opens ``meter_offline`` for entities of
  this worker whose meters fell silent (wall time: the only clock read here).

Evidence plots are drawn in the detector thread (power clues are rare: a few per entity a
day at most). The registry (channels, entities' zones, shutdowns) is read on first need and
again after a registry notice.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from contract.clue import Clue
from contract.records import EnvReadings, PowerSamples, readings_of
from contract.topics import ENV_READINGS, POWER_SAMPLES
from detectors.power import Channel, EntityMonitor, PowerConfig, Sample, Shutdown
from geo.routing import Router
from storage.power import PowerRows, power_rows
from streams.table_state import put_state

if TYPE_CHECKING:
    from streams.app import Streams

log = logging.getLogger(__name__)
TICK_S = 60.0
RELOAD_S = 300.0  # the registry is read again after this even without a notice
LIVE_LAG_S = 6 * 3600.0  # data older than this when it arrived is a replay or a backfill
KINDS = ("power_channel", "shutdown", "entity", "zone", "station", "*")


@dataclass
class PowerSetup:
    """The registry as the power rules use it."""

    channels: dict[str, list[Channel]] = field(default_factory=dict)  # by entity
    entity_of: dict[str, str] = field(default_factory=dict)  # meter -> entity
    locations: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    shutdowns: dict[str, list[Shutdown]] = field(default_factory=dict)  # by entity


def build_setup(rows: PowerRows, router: Router) -> PowerSetup:
    """Channels by entity, each entity's location (its first enterprise-site zone, else a
    meter's registered place) and the shutdowns that apply to it (scope the entity, one of
    its zones, or a zone that holds its location)."""
    setup = PowerSetup()
    for row in rows.channels:
        chan = Channel(entity=row["entity"], meter=row["meter"], channel=row["channel"],
                       role=row["role"], rated_kw=row["rated_kw"], idle_kw=row["idle_kw"])
        setup.channels.setdefault(chan.entity, []).append(chan)
        setup.entity_of[chan.meter] = chan.entity
    for entity, chans in setup.channels.items():
        setup.locations[entity] = _location(entity, chans, rows, router)
    for entity in setup.channels:
        zones = set(rows.entity_zones.get(entity, []))
        where = setup.locations[entity]
        holding = {h.zone.id for h in router.index.hits(where)} if where else set()
        setup.shutdowns[entity] = [
            Shutdown(r["scope"], r["level"], r["start"], r["end"]) for r in rows.shutdowns
            if r["scope"] == entity or r["scope"] in zones or r["scope"] in holding]
    return setup


def _location(entity: str, chans: Sequence[Channel], rows: PowerRows,
              router: Router) -> dict[str, Any] | None:
    for zid in rows.entity_zones.get(entity, []):
        zone = router.index.get(zid)
        if zone is not None:
            point = zone.geometry.representative_point()
            return {"type": "Point", "coordinates": [point.x, point.y]}
    for chan in chans:
        if chan.meter in rows.meter_locations:
            lon, lat = rows.meter_locations[chan.meter]
            return {"type": "Point", "coordinates": [lon, lat]}
    return None


def _collect(into: list[tuple[Any, Any]]) -> Any:
    def on_plot(ref: Any, plot: Any) -> None:
        into.append((ref, plot))
    return on_plot


def _key(raw: Any) -> str | None:
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    return raw if isinstance(raw, str) else None


class PowerAgent:
    """The two power agents, the ``power-monitors`` table and the offline timer."""

    def __init__(self, streams: Streams) -> None:
        s = streams.settings
        self.streams = streams
        self.config = PowerConfig(grace_s=s.power_grace_s, min_episode_s=s.power_min_episode_s,
                                  stale_s=s.power_stale_s, offline_s=s.power_offline_s,
                                  idle_ratio=s.power_idle_ratio)
        self.table = streams.app.Table("power-monitors", default=None,
                                       partitions=s.partitions, key_type=str,
                                       help="power rules' state per entity")
        self.samples_topic = streams.topic(POWER_SAMPLES)
        self.send_clues = streams.clue_exit.publish
        self.lock = asyncio.Lock()
        self._setup: PowerSetup | None = None
        self._loaded = 0.0

        async def power_tick() -> None:
            try:
                await self.tick_all(datetime.now(UTC))
            except Exception:
                log.exception("power offline tick failed")

        self.route_agent = streams.batch_agent(streams.topic(ENV_READINGS),
                                               "streams.power.power_route",
                                               lambda events: self.route(events),
                                               within=s.sink_batch_seconds, what="readings")
        self.monitor_agent = streams.batch_agent(self.samples_topic,
                                                 "streams.power.power_monitor",
                                                 lambda events: self.handle_batch(events),
                                                 within=s.sink_batch_seconds,
                                                 what="power samples")
        streams.app.timer(interval=TICK_S, name="streams.power.power_tick")(power_tick)
        streams.on_registry_change.append(self.registry_changed)

    def registry_changed(self, kind: str) -> None:
        if kind in KINDS:
            self._setup = None

    async def setup(self) -> PowerSetup:
        if self._setup is None or time.monotonic() - self._loaded > RELOAD_S:
            try:
                since = datetime.now(UTC) - timedelta(days=366)
                rows = await power_rows(await self.streams.db_pool(), since)
            except Exception as exc:  # database away: keep the old setup, ask again soon
                log.warning("power registry read failed (%s)", exc)
                return self._setup or PowerSetup()
            self._setup = build_setup(rows, self.streams.router)
            self._loaded = time.monotonic()
        return self._setup

    async def route(self, events: Sequence[Any]) -> int:
        """Re-key the readings of registered meters by entity; returns records sent."""
        setup = await self.setup()
        if not setup.entity_of:
            return 0
        def rekey() -> list[tuple[str, bytes]]:  # decoding: CPU work, off the loop
            by_entity: dict[str, list[Any]] = defaultdict(list)
            for event in events:
                key = _key(event.key)
                if key is not None and key not in setup.entity_of:
                    continue
                try:
                    readings = readings_of(EnvReadings.model_validate_json(event.value))
                except (ValidationError, ValueError, TypeError):
                    continue  # the readings sink keeps it as a dead letter
                for reading in readings:
                    entity = setup.entity_of.get(reading.station)
                    if entity is not None and not reading.event:
                        by_entity[entity].append(reading)
            return [(entity, PowerSamples(entity=entity, readings=readings).dumps())
                    for entity, readings in by_entity.items()]

        futures = [await self.samples_topic.send(key=entity.encode(), value=value)
                   for entity, value in await asyncio.to_thread(rekey)]
        if futures:
            await asyncio.gather(*futures)  # the broker has them: the offsets may commit
        return len(futures)

    async def handle_batch(self, events: Sequence[Any]) -> int:
        """Judge one batch of ``PowerSamples``; returns the number of clues sent."""
        setup = await self.setup()
        def decode() -> dict[str, tuple[int, list[Sample]]]:  # CPU work, off the loop
            groups: dict[str, tuple[int, list[Sample]]] = {}
            for event in events:
                try:
                    record = PowerSamples.model_validate_json(event.value)
                except (ValidationError, ValueError, TypeError):
                    log.warning("power.samples: a record that does not validate, skipped")
                    continue
                got = groups.setdefault(record.entity, (event.message.partition, []))
                got[1].extend(Sample(r.station, r.time, dict(r.values))
                              for r in record.readings)
            return groups

        groups = await asyncio.to_thread(decode)
        async with self.lock:
            results = await asyncio.to_thread(self._judge, groups, setup)
            await self.send_clues([c for _, _, _, clues in results for c in clues])
            for entity, partition, state, _ in results:
                put_state(self.table, partition, entity, state)
        return sum(len(r[3]) for r in results)

    def _monitor(self, entity: str, setup: PowerSetup,
                 stored: dict[str, Any] | None) -> EntityMonitor:
        monitor = EntityMonitor(entity, setup.channels.get(entity, []), self.config,
                                copy.deepcopy(stored["state"]) if stored else None,
                                setup.locations.get(entity), on_plot=None)
        monitor.shutdowns = setup.shutdowns.get(entity, [])
        return monitor

    def _judge(self, groups: dict[str, tuple[int, list[Sample]]], setup: PowerSetup
               ) -> list[tuple[str, int, dict[str, Any], list[Clue]]]:
        out = []
        for entity, (partition, samples) in groups.items():
            if entity not in setup.channels:
                continue  # channels retired since the sample was routed
            monitor = self._monitor(entity, setup, self.table.data.get(entity))
            plots: list[tuple[Any, Any]] = []
            monitor.on_plot = _collect(plots)
            clues: list[Clue] = []
            for sample in sorted(samples, key=lambda x: x.time):
                clues += monitor.observe(sample)
            for ref, plot in plots:
                ref.content = plot.render()
            newest = max(s.time for s in samples).timestamp()
            out.append((entity, partition, {"partition": partition, "lag": time.time() - newest,
                                            "state": monitor.to_state()}, clues))
        return out

    async def tick_all(self, now: datetime) -> int:
        """``meter_offline`` for this worker's entities whose meters went silent."""
        assigned = {tp.partition for tp in self.streams.app.consumer.assignment()
                    if tp.topic == POWER_SAMPLES.name}
        setup = await self.setup()
        async with self.lock:
            # only entities whose data comes in real time: a replayed year is not offline
            items = [(e, v) for e, v in list(self.table.data.items())
                     if v is not None and v.get("partition") in assigned
                     and v.get("lag", 0.0) <= LIVE_LAG_S]

            def work() -> list[tuple[str, int, dict[str, Any], list[Clue]]]:
                out = []
                for entity, stored in items:
                    if entity not in setup.channels:
                        continue
                    monitor = self._monitor(entity, setup, stored)
                    clues = monitor.tick(now)
                    if clues:
                        out.append((entity, stored["partition"],
                                    {**stored, "state": monitor.to_state()}, clues))
                return out

            results = await asyncio.to_thread(work)
            await self.send_clues([c for _, _, _, clues in results for c in clues])
            for entity, partition, state, _ in results:
                put_state(self.table, partition, entity, state)
        return sum(len(r[3]) for r in results)


def register(streams: Streams) -> PowerAgent:
    return PowerAgent(streams)
