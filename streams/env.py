"""The environmental detectors in the stream: one ``StationMonitor`` per station.

A second consumer of ``env.readings`` (next to the readings sink). Each station's monitor
state lives in the Faust table ``env-monitors`` keyed by station; its changelog is what a
restarted or rebalanced worker recovers from. Detector work (``observe``) runs in a worker
thread so the event loop keeps serving Kafka.

Clue first, pictures after. An alert must not wait for its plots (about 125 ms of CPU
each): the detector only captures what to draw, the agent keeps it in the evidence item as
``pending`` (``streams.evidence.defer``) and sends the clue at once; ``streams.evidence``
draws it in a child process and sends the clue again with its PNG. The pending plot is in
Kafka with the clue before the stations' new state is written and the batch's offsets are
committed, so a worker dying before the PNG exists loses nothing (RELIABILITY.md, "Env
clues and their evidence").

Clues leave through the one clue exit (``streams.publish``), which routes them by the
location they carry (a GeoJSON point of the station from the ``stations`` table) and keys
them by site: the zone or grid cell, else ``subject:<station>``.

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
import concurrent.futures
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from contract.records import Clue, EnvReadings, Reading, readings_of
from contract.topics import ENV_READINGS
from detectors import env_registry
from detectors.env import StationMonitor
from detectors.env_config import EnvConfig, StationInfo
from detectors.plots import OnPlot
from storage.stations import POWER_METER_ST, StationRow, station_rows
from streams.evidence import defer
from streams.table_state import put_state

if TYPE_CHECKING:
    from streams.app import Streams

log = logging.getLogger(__name__)

TICK_S = 60.0
LIVE_LAG_S = 6 * 3600.0
MAX_SILENCE_S = 7 * 86400.0
STATION_TTL_S = 300.0  # a known station's registry entry is re-read after this
MISSING_TTL_S = 30.0  # an unknown station is looked up again after this
# on the worker's /metrics (``worker_metrics_port``): readings judged per second, and how
# long a batch takes from its records to its written state (clues acked on the way)
READINGS_JUDGED = Counter("offsite_env_readings_judged_total",
                          "readings the env detectors have judged (state written)")
BATCH_SECONDS = Histogram("offsite_env_batch_seconds",
                          "a batch of readings: decoded, judged, clues and hour summaries"
                          " acked, state written", buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0))


@dataclass(frozen=True)
class StationEntry:
    """What the stream needs of a station: detector info and location (routing is the clue
    exit's, by this location)."""

    info: StationInfo
    location: dict[str, Any] | None = None
    known: bool | None = True  # False: not registered (or retired); None: not checked yet


def entry_from_row(row: StationRow, utc_offset_hours: float = 8.0) -> StationEntry:
    """A registry entry from ``(id, st, standard, interval_s, lon, lat, properties)``."""
    sid, st, standard, interval_s, lon, lat, props = row
    props = props or {}
    adopted = props.get("adopted_from")
    info = StationInfo(id=sid, st=st or "22", standard=standard or None, interval_s=interval_s,
                       utc_offset_hours=float(props.get("utc_offset_hours", utc_offset_hours)),
                       adopted_from=date.fromisoformat(adopted) if adopted else None)
    location = ({"type": "Point", "coordinates": [float(lon), float(lat)]}
                if lon is not None and lat is not None else None)
    return StationEntry(info, location)


def default_entry(station: str, utc_offset_hours: float = 8.0,
                  known: bool | None = False) -> StationEntry:
    return StationEntry(StationInfo(id=station, utc_offset_hours=utc_offset_hours), None, known)


class StationRegistry:
    """A cache of the ``stations`` table: entries are read on first need and re-read after a
    TTL (async psycopg through the worker's pool); defaults when absent or unreachable."""

    def __init__(self, fetch: Callable[[list[str]], Awaitable[list[StationRow]]],
                 utc_offset_hours: float = 8.0) -> None:
        self.fetch = fetch
        self.offset = utc_offset_hours
        self._cache: dict[str, tuple[float, StationEntry | None]] = {}
        self._absent: set[str] = set()  # looked up and not registered (not: lookup failed)

    def cached(self, station: str) -> StationEntry:
        hit = self._cache.get(station)
        if hit is not None and hit[1] is not None:
            return hit[1]
        return default_entry(station, self.offset,
                             known=False if station in self._absent else None)

    async def lookup(self, stations: Iterable[str]) -> dict[str, StationEntry]:
        stations = list(dict.fromkeys(stations))
        now = time.monotonic()
        stale = [s for s in stations if s not in self._cache or self._cache[s][0] <= now]
        if stale:
            try:
                rows = await self.fetch(stale)
            except Exception as exc:  # database away: keep what we have, ask again soon
                log.warning("stations lookup failed (%s); using cached or default info", exc)
                for s in stale:
                    old = self._cache.get(s, (0.0, None))[1]
                    self._cache[s] = (now + MISSING_TTL_S, old)
            else:
                found = {r[0]: entry_from_row(r, self.offset) for r in rows}
                for s in stale:
                    entry = found.get(s)
                    self._cache[s] = (now + (STATION_TTL_S if entry else MISSING_TTL_S), entry)
                    (self._absent.discard if entry else self._absent.add)(s)
        return {s: self.cached(s) for s in stations}

    def forget(self) -> None:
        """Read every station again on next need (the registry changed)."""
        self._cache.clear()


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
    wrote (after a recovery or rebalance put another value there). The value holds the
    live monitor's own state (no copy per batch): the caller encodes it before the next
    batch (``put_state(..., encoded)``), and the table in memory always shows the newest.
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
        value = {"state": mon.live_state, "partition": partition, "arrived": arrived,
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
        value = dict(stored, state=mon.live_state)
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


def decode(raw: Any, validate: Callable[[Any], Any] = EnvReadings.model_validate_json
           ) -> list[Reading]:
    """The readings of one record (one or a batch), or none: invalid input is dead-lettered
    by the readings sink already. ``validate``: the worker's decoder shared with the sink."""
    try:
        return readings_of(validate(raw))
    except (ValidationError, ValueError, TypeError):
        return []


class RegionHook(Protocol):
    """What the env agent needs of the region stage (``streams.env_region``)."""

    async def clue_filter(self) -> Callable[[list[Clue]], list[Clue]]: ...

    async def send_summaries_of(self, groups: dict[str, tuple[int, list[Reading]]]
                                ) -> None: ...


class EnvAgent:
    """The env detector agent, its ``env-monitors`` table and its offline timer.

    Tests replace ``processor``, ``registry``, ``send_clues`` or ``on_plot`` on the instance.
    """

    def __init__(self, streams: Streams) -> None:
        settings = streams.settings
        self.streams = streams
        self.settings = settings
        self.monitors = streams.app.Table("env-monitors", default=None,
                                          partitions=settings.partitions, key_type=str,
                                          help="StationMonitor state per station")

        async def fetch(stations: list[str]) -> list[StationRow]:
            return await station_rows(await streams.db_pool(), stations)

        self.registry = StationRegistry(fetch, settings.local_utc_offset_hours)
        self.processor = EnvProcessor()
        self.lock = asyncio.Lock()  # one detector thread at a time: monitors are not thread-safe
        self.send_clues: Callable[[Sequence[Clue]], Awaitable[Any]] = streams.clue_exit.publish
        self.validate = streams.shared_decoder(ENV_READINGS)  # records parsed once per worker
        #: set by the region stage (``streams.env_region``): it filters the clues (spikes
        #: defer to the neighbours) and sends the batch's hour summaries
        self.region: RegionHook | None = None
        self.on_plot: OnPlot | None = defer  # None: the plots are drawn in the detector thread

        async def offline_tick() -> None:
            try:
                await self.tick_all(datetime.now(UTC))
            except Exception:
                log.exception("offline tick failed")

        self.agent = streams.batch_agent(streams.topic(ENV_READINGS), "streams.env.env_monitor",
                                         lambda events: self.handle_batch(events),
                                         within=settings.clue_batch_seconds, what="readings")
        streams.on_registry_change.append(self.registry_changed)
        streams.app.timer(interval=TICK_S, name="streams.env.offline_tick")(offline_tick)

    def registry_changed(self, kind: str) -> None:
        if kind in ("station", "*"):
            self.registry.forget()

    async def handle_batch(self, events: Sequence[Any]) -> int:
        """Observe one batch of reading events; returns the number of clues sent."""
        arrived = time.time()
        groups = await asyncio.to_thread(group_by_station, events,  # decoding: CPU, off loop
                                         self.validate)
        if not groups:
            return 0
        entries = await self.registry.lookup(groups)
        monitors, processor = self.monitors, self.processor
        region = self.region
        keep = await region.clue_filter() if region is not None else None
        loop = asyncio.get_running_loop()
        sends: list[concurrent.futures.Future[Any]] = []

        async def send(clues: list[Clue]) -> None:
            await self.send_clues(clues)

        def work() -> list[tuple[str, int, dict[str, Any], bytes, list[Clue]]]:
            out = []
            for station, (partition, readings) in groups.items():
                if entries[station].info.st == POWER_METER_ST:
                    continue  # a registered power meter: streams.power judges it
                stored = monitors.data.get(station)
                clues, value = processor.observe(station, partition, readings, stored,
                                                 entries[station], arrived, self.on_plot)
                clues += registry_clues(station, readings, stored, value, entries[station])
                if keep is not None:
                    clues = keep(clues)
                if clues:  # on their way now: an alert does not wait for the other stations
                    sends.append(asyncio.run_coroutine_threadsafe(send(clues), loop))
                # the value holds the monitor's live state: frozen as bytes here, while
                # no other batch can change it (see ``put_state``)
                out.append((station, partition, value, orjson.dumps(value), clues))
            return out

        async with self.lock:  # held until the state is written: the offline tick reads it
            try:
                results = await asyncio.to_thread(work)
            except BaseException:  # what was sent is waited for before the failure goes on
                await asyncio.gather(*(asyncio.wrap_future(f) for f in sends),
                                     return_exceptions=True)
                raise
            acked = asyncio.gather(*(asyncio.wrap_future(f) for f in sends))
            # every clue acked (and the hour summaries) before the state: a crash in between
            # re-delivers the batch, which the old state judges again (the same clue ids,
            # written idempotently); the other order would recover a state that has seen
            # the readings, and their clues would be lost
            if region is not None:
                await asyncio.gather(acked, region.send_summaries_of(groups))
            else:
                await acked
            for station, partition, value, encoded, _ in results:
                put_state(monitors, partition, station, value, encoded)
        READINGS_JUDGED.inc(sum(len(groups[station][1]) for station, *_ in results))
        BATCH_SECONDS.observe(time.time() - arrived)
        return sum(len(clues) for *_, clues in results)

    async def tick_all(self, now: datetime) -> int:
        """Offline checks of this worker's live stations; returns the number of clues sent."""
        assigned = {tp.partition for tp in self.streams.app.consumer.assignment()
                    if tp.topic == ENV_READINGS.name}
        monitors, processor = self.monitors, self.processor
        async with self.lock:  # the table values read here must not change under the tick
            items = [(s, v) for s, v in list(monitors.data.items())
                     if v is not None and v.get("partition") in assigned]
            live = [(s, v) for s, v in items if is_live(v, now.timestamp())]
            entries = await self.registry.lookup(s for s, _ in live) if live else {}

            def work() -> list[tuple[str, dict[str, Any], bytes, list[Clue]]]:
                processor.forget(s for s, _ in items)
                out = []
                for station, stored in live:
                    clues, value = processor.tick(station, stored, now, entries[station],
                                                  self.on_plot)
                    if value is not None:
                        out.append((station, value, orjson.dumps(value), clues))
                return out

            results = await asyncio.to_thread(work)
            sent = [c for *_, clues in results for c in clues]
            await self.send_clues(sent)  # clues before state, as in handle_batch
            for station, value, encoded, _ in results:
                put_state(monitors, value["partition"], station, value, encoded)
        return len(sent)


def registry_clues(station: str, readings: Sequence[Reading], stored: dict[str, Any] | None,
                   value: dict[str, Any], entry: StationEntry) -> list[Clue]:
    """The ``unregistered_source`` clue a batch opens or closes (``detectors.env_registry``);
    its state travels in the station's table value. Nothing is judged while the registry
    could not be read (``entry.known`` is None)."""
    state = dict((stored or {}).get("registry") or {})
    value["registry"] = state
    if entry.known is None:
        return []
    first = readings[0]  # the batch is in order: the first reading is the one that counts
    clue = env_registry.observe(state, station, first.time, known=entry.known,
                                source=first.source)
    return [clue] if clue is not None else []


def group_by_station(events: Sequence[Any],
                     validate: Callable[[Any], Any] = EnvReadings.model_validate_json
                     ) -> dict[str, tuple[int, list[Reading]]]:
    """The readings of a batch of events by station, with each station's partition."""
    groups: dict[str, tuple[int, list[Reading]]] = {}
    for event in events:
        readings = decode(event.value, validate)
        if readings:  # a batch is one station's (ReadingBatch checks it)
            groups.setdefault(readings[0].station,
                              (event.message.partition, []))[1].extend(readings)
    return groups


def register(streams: Streams) -> EnvAgent:
    return EnvAgent(streams)
