"""The environmental detectors in the stream: one ``StationMonitor`` per station.

A second consumer of ``env.readings`` (next to the readings sink). Each station's monitor
state lives in the Faust table ``env-monitors`` keyed by station; its changelog is what a
restarted or rebalanced worker recovers from. Detector work (``observe``) runs in a worker
thread so the event loop keeps serving Kafka; its PNG evidence plots are drawn meanwhile in
a child process (``streams.evidence_pool``) and a batch's clues are sent once all are there.

Clues go to the ``clues`` topic keyed by their site (``geo.routing``): the zone or grid cell
of the station's location from the ``stations`` table, else ``subject:<station>``; the clue
carries the location as a GeoJSON point.

Table writes and batches. Batches come from ``take_events`` so every reading's partition is
known; the new state of a station is written once per batch to the changelog partition of
that station's readings (``send_changelog``), which is the partition the table must use. A
Faust table cannot be written from a timer (no current event), so the offline timer writes
the same way, with the partition remembered in the state.

Offline detection and wall time. ``tick(now)`` opens an offline clue when a station's own
cadence (about 3x its interval) has passed without data. "now" is wall time here (the
stream may read the clock; the detectors never do). A replay of old data (the 2013 Beijing
set, or last week's backlog) must not look offline the moment it ends, so a station is
ticked only while it is *live*:

* its newest reading arrived within ``LIVE_LAG_S`` (or 2 intervals) of its own data time,
  i.e. it reports in real time rather than being replayed or backfilled; and
* it has been silent for less than ``MAX_SILENCE_S``: a station gone for weeks has its
  offline clue open already; ticking it on forever only adds hourly updates.

A backfilling station becomes live again once its data catches up with the clock. Offline
for replayed data is still found from the data itself (the gap between two readings).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from contract.clue import EvidenceRef
from contract.records import Clue, EnvReadings, Reading, readings_of
from contract.topics import CLUES, ENV_READINGS
from detectors.env import StationMonitor
from detectors.env_config import EnvConfig, StationInfo
from detectors.plots import SeriesPlot
from geo.routing import Router
from storage.sinks import default_router
from streams.app import app, db_pool, settings, topic
from streams.evidence_pool import PlotPool, Plots

log = logging.getLogger(__name__)
OnPlot = Callable[[EvidenceRef, SeriesPlot], None]

TICK_S = 60.0
LIVE_LAG_S = 6 * 3600.0
MAX_SILENCE_S = 7 * 86400.0
STATION_TTL_S = 300.0  # a known station's registry entry is re-read after this
MISSING_TTL_S = 30.0  # an unknown station is looked up again after this


@dataclass(frozen=True)
class StationEntry:
    """What the stream needs of a station: detector info, location and the site key."""

    info: StationInfo
    location: dict[str, Any] | None = None
    site: str = ""


def entry_from_row(row: Sequence[Any], router: Router,
                   utc_offset_hours: float = 8.0) -> StationEntry:
    """A registry entry from ``(id, st, standard, interval_s, lon, lat, properties)``."""
    sid, st, standard, interval_s, lon, lat, props = row
    props = props or {}
    adopted = props.get("adopted_from")
    info = StationInfo(id=sid, st=st or "22", standard=standard or None, interval_s=interval_s,
                       utc_offset_hours=float(props.get("utc_offset_hours", utc_offset_hours)),
                       adopted_from=date.fromisoformat(adopted) if adopted else None)
    location = ({"type": "Point", "coordinates": [float(lon), float(lat)]}
                if lon is not None and lat is not None else None)
    return StationEntry(info, location, site_of(router, location, sid))


def default_entry(station: str, router: Router, utc_offset_hours: float = 8.0) -> StationEntry:
    return StationEntry(StationInfo(id=station, utc_offset_hours=utc_offset_hours), None,
                        site_of(router, None, station))


def site_of(router: Router, location: dict[str, Any] | None, station: str) -> str:
    """The clues-topic key: the routing site of the location, else ``subject:<station>``."""
    return router.route(location, modality="env", kind="*", subject=station).site


class StationRegistry:
    """A cache of the ``stations`` table: entries are read on first need and re-read after a
    TTL (async psycopg through the worker's pool); defaults when absent or unreachable."""

    def __init__(self, router: Router, utc_offset_hours: float = 8.0) -> None:
        self.router = router
        self.offset = utc_offset_hours
        self._cache: dict[str, tuple[float, StationEntry | None]] = {}

    def cached(self, station: str) -> StationEntry:
        hit = self._cache.get(station)
        if hit is not None and hit[1] is not None:
            return hit[1]
        return default_entry(station, self.router, self.offset)

    async def lookup(self, stations: Iterable[str]) -> dict[str, StationEntry]:
        stations = list(dict.fromkeys(stations))
        now = time.monotonic()
        stale = [s for s in stations if s not in self._cache or self._cache[s][0] <= now]
        if stale:
            try:
                rows = await self._fetch(stale)
            except Exception as exc:  # database away: keep what we have, ask again soon
                log.warning("stations lookup failed (%s); using cached or default info", exc)
                for s in stale:
                    old = self._cache.get(s, (0.0, None))[1]
                    self._cache[s] = (now + MISSING_TTL_S, old)
            else:
                found = {r[0]: entry_from_row(r, self.router, self.offset) for r in rows}
                for s in stale:
                    entry = found.get(s)
                    self._cache[s] = (now + (STATION_TTL_S if entry else MISSING_TTL_S), entry)
        return {s: self.cached(s) for s in stations}

    async def _fetch(self, stations: list[str]) -> list[Sequence[Any]]:
        pool = await db_pool()
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, st, standard, interval_s, lon, lat, properties FROM stations"
                " WHERE id = ANY(%s)", (stations,))
            return list(await cur.fetchall())


@dataclass
class _Slot:
    monitor: StationMonitor
    stored: dict[str, Any]  # the table value this monitor was last written as / built from


@dataclass
class EnvProcessor:
    """Monitors per station over table values; no Kafka here, so it is unit-testable.

    A table value is ``{"state": monitor state, "partition": p, "arrived": wall time the
    newest reading arrived, "lag": arrival minus its data time}``. Live monitors are kept
    in memory and rebuilt from the table value when that value is not the one they last
    wrote (after a recovery or rebalance put another value there).
    """

    config: EnvConfig = field(default_factory=EnvConfig)
    slots: dict[str, _Slot] = field(default_factory=dict)

    def monitor(self, station: str, stored: dict[str, Any] | None,
                entry: StationEntry | None) -> StationMonitor:
        slot = self.slots.get(station)
        if slot is not None and stored is not None and slot.stored is stored:
            mon = slot.monitor
        elif stored is not None:
            mon = StationMonitor.from_state(stored["state"], self.config)
        else:
            info = entry.info if entry is not None else StationInfo(id=station)
            mon = StationMonitor(info, self.config)
        if entry is not None and mon.station != entry.info:  # registry changed: new info
            state = mon.to_state()
            state["station"] = entry.info.model_dump(mode="json")
            mon = StationMonitor(entry.info, self.config, state=state)
        return mon

    def observe(self, station: str, partition: int, readings: Sequence[Reading],
                stored: dict[str, Any] | None, entry: StationEntry, arrived: float,
                on_plot: OnPlot | None = None) -> tuple[list[Clue], dict[str, Any]]:
        """Feed one station's readings of a batch; returns its clues and new table value.
        ``on_plot`` takes the evidence plots (else they are drawn here, in this thread)."""
        mon = self.monitor(station, stored, entry)
        mon.on_plot = on_plot

        def failed(reading: Reading, exc: Exception) -> None:
            """A detector bug must not stop the station's stream: logged, then go on."""
            log.error("env detector failed on %s at %s", station, reading.time, exc_info=exc)

        clues = mon.observe_many(readings, failed)
        newest = max(r.time.timestamp() for r in readings)
        value = {"state": mon.to_state(), "partition": partition, "arrived": arrived,
                 "lag": arrived - newest}
        self.slots[station] = _Slot(mon, value)
        for clue in clues:
            clue.location = entry.location
        return clues, value

    def tick(self, station: str, stored: dict[str, Any], now: datetime,
             entry: StationEntry | None = None,
             on_plot: OnPlot | None = None) -> tuple[list[Clue], dict[str, Any] | None]:
        """Offline check of one station at wall time ``now`` if it is live (see module doc)."""
        if not is_live(stored, now.timestamp()):
            return [], None
        mon = self.monitor(station, stored, None)
        mon.on_plot = on_plot
        clues = mon.tick(now)
        if not clues:
            self.slots[station] = _Slot(mon, stored)
            return [], None
        value = dict(stored, state=mon.to_state())
        self.slots[station] = _Slot(mon, value)
        for clue in clues:
            clue.location = entry.location if entry is not None else None
        return clues, value

    def forget(self, keep: Iterable[str]) -> None:
        """Drop live monitors of stations no longer in the table (partitions moved away)."""
        wanted = set(keep)
        for station in [s for s in self.slots if s not in wanted]:
            del self.slots[station]


def is_live(stored: dict[str, Any], now: float) -> bool:
    """Whether a station reports in real time and has not been silent for too long."""
    last = max(stored["state"].get("last", {}).values(), default=None)
    if last is None:
        return False
    interval = stored["state"]["station"].get("interval_s") or 0
    return stored["lag"] <= max(LIVE_LAG_S, 2 * interval) and now - last <= MAX_SILENCE_S


def decode(raw: Any) -> list[Reading]:
    """The readings of one record (one or a batch), or none: invalid input is dead-lettered
    by the readings sink already."""
    try:
        return readings_of(EnvReadings.model_validate_json(raw))
    except (ValidationError, ValueError, TypeError):
        return []


def put_state(table: Any, partition: int, key: str, value: dict[str, Any]) -> None:
    """Set a table key and send it to the changelog partition of its source partition.

    ``table[key] = value`` takes the partition from the *current* event, which in a batch
    is the last event's, not necessarily this station's; and there is none in a timer.
    """
    table.data[key] = value
    table.send_changelog(partition, key, value)


# ---------------------------------------------------------------------- the agent
monitors = app.Table("env-monitors", default=None, partitions=settings.partitions,
                     key_type=str,
                     help="StationMonitor state per station")
router = default_router()
registry = StationRegistry(router, settings.local_utc_offset_hours)
processor = EnvProcessor()
plot_pool = PlotPool(settings.plot_processes)
_lock = asyncio.Lock()  # one detector thread at a time: monitors are not thread-safe


async def send_clues(clues: Sequence[tuple[str, Clue]]) -> None:
    """Send clues keyed by site and wait until the broker has them (retried until then)."""
    delay = 0.5
    payloads = [(site.encode(), clue.model_dump_json().encode()) for site, clue in clues]
    while payloads:
        try:
            futures = [await topic(CLUES).send(key=key, value=value) for key, value in payloads]
            await asyncio.gather(*futures)
            return
        except Exception as exc:
            log.error("sending %d clues failed (%s); retrying in %.1fs", len(payloads), exc,
                      delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)


def group_by_station(events: Sequence[Any]) -> dict[str, tuple[int, list[Reading]]]:
    """The readings of a batch of events by station, with each station's partition."""
    groups: dict[str, tuple[int, list[Reading]]] = {}
    for event in events:
        readings = decode(event.value)
        if readings:  # a batch is one station's (ReadingBatch checks it)
            groups.setdefault(readings[0].station,
                              (event.message.partition, []))[1].extend(readings)
    return groups


async def handle_batch(events: Sequence[Any]) -> int:
    """Observe one batch of reading events; returns the number of clues sent."""
    arrived = time.time()
    groups = await asyncio.to_thread(group_by_station, events)  # decoding: CPU, off the loop
    if not groups:
        return 0
    entries = await registry.lookup(groups)
    plots = Plots(plot_pool)

    def work() -> list[tuple[str, int, dict[str, Any], list[Clue]]]:
        out = []
        for station, (partition, readings) in groups.items():
            clues, value = processor.observe(station, partition, readings,
                                             monitors.data.get(station), entries[station],
                                             arrived, plots.add)
            out.append((station, partition, value, clues))
        return out

    async with _lock:  # held until the state is written: the offline tick reads it
        results = await asyncio.to_thread(work)
        await plots.fill()  # drawn in the pool meanwhile; a clue goes only with its evidence
        sent = [(entries[station].site, clue) for station, _, _, clues in results
                for clue in clues]
        # clues before state: a crash in between re-delivers the batch, which the old state
        # judges again (the same clue ids, written idempotently); the other order would
        # recover a state that has seen the readings, and their clues would be lost
        await send_clues(sent)
        for station, partition, value, _ in results:
            put_state(monitors, partition, station, value)
    return len(sent)


@app.agent(topic(ENV_READINGS), name="streams.env.env_monitor")
async def env_monitor(stream: Any) -> None:
    async for events in stream.take_events(settings.sink_batch_size,
                                           within=settings.sink_batch_seconds):
        try:
            await handle_batch(events)
        except Exception:  # never let the body raise: Faust would ack the batch anyway
            log.exception("env batch of %d readings failed", len(events))


async def tick_all(now: datetime) -> int:
    """Offline checks of this worker's live stations; returns the number of clues sent."""
    assigned = {tp.partition for tp in app.consumer.assignment()
                if tp.topic == ENV_READINGS.name}
    plots = Plots(plot_pool)
    async with _lock:  # the table values read here must not change under the tick
        items = [(s, v) for s, v in list(monitors.data.items())
                 if v is not None and v.get("partition") in assigned]
        live = [(s, v) for s, v in items if is_live(v, now.timestamp())]
        entries = await registry.lookup(s for s, _ in live) if live else {}

        def work() -> list[tuple[str, dict[str, Any], list[Clue]]]:
            processor.forget(s for s, _ in items)
            out = []
            for station, stored in live:
                clues, value = processor.tick(station, stored, now, entries[station],
                                              plots.add)
                if value is not None:
                    out.append((station, value, clues))
            return out

        results = await asyncio.to_thread(work)
        await plots.fill()
        sent = [(entries[s].site, c) for s, _, clues in results for c in clues]
        await send_clues(sent)  # clues before state, as in handle_batch
        for station, value, _ in results:
            put_state(monitors, value["partition"], station, value)
    return len(sent)


@app.timer(interval=TICK_S, name="streams.env.offline_tick")
async def offline_tick() -> None:
    try:
        await tick_all(datetime.now(UTC))
    except Exception:
        log.exception("offline tick failed")
