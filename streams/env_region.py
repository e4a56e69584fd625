"""The neighbour rules in the stream: hour summaries re-keyed by region cell.

A station's readings are keyed by station, so its neighbours' readings are on other
partitions, maybe on other workers. The regional state is made explicit instead:

1. The env agent (``streams.env``) hands each batch to ``send_summaries_of`` before it
   writes its state: the batch's hourly readings (HJ 212 CN 2061, what ambient stations
   report) of the regional pollutants become hour means, sent to ``env.hours``, one
   ``HourSummary`` per cell and batch, acked by the broker. A station's means go to its
   own region cell and to the cells of the stations that count it as a neighbour
   (``Routing``, from the registry's neighbour map): the worker that owns a cell sees every
   summary its stations need, without any cross-partition read. Cells are at least the
   neighbour radius wide in both directions (up to 60 degrees of latitude), so those are
   the station's own cell and some of the eight around it; sending to all nine, as the
   first version did, cost nine decodes of every mean. The env agent also applies
   ``clue_filter`` to each station's clues: the spikes that defer to the neighbours are
   dropped (``env_region.defer_spikes``).
2. The region agent consumes ``env.hours``. Its table ``env-region`` holds the hours not
   yet judged: each such hour of a cell under its own key ``<cell>@<hour>``
   (``{code: {station: mean}}``), and under the cell's key what was judged (``done``),
   each station's newest hour (``seen``) and the ``pending`` hours. One hour per record: a
   city grid of hundreds of hourly stations in one cell, holding a day for a silent one,
   made a single cell value of over a megabyte (past a broker's record limit), and a batch
   now writes only the hours it changed and a tombstone for each hour it judged. The table
   ``env-region-judge`` keyed by station holds the ``RegionJudge`` state of each station
   (``{"station/code": tracker state}``), written to the changelog partition of its *home*
   cell, so the worker that owns a cell has its stations' states. Per station, not in the
   cell's value: a station's 30-day history is about 37 kB, so a city cell of 30 stations
   would pass a broker's 1 MB record limit (the first version did), and a batch now sends
   only the states of the stations it judged. An hour is judged, all its codes together
   (a station's channels are judged jointly) and hours in time order, once every expected
   station (the home stations and their neighbours) reported it or moved past it (its
   newest hour, ``seen``, is later: it had no data then), or once data ``MAX_WAIT_H`` hours
   newer has come (a silent station holds its cell back a day at most). Data time, no
   clock: a replay gives the same clues. Judged hours are dropped, so the table holds at
   most about a day per cell.

Delivery is at-least-once end to end: summaries are acked before the env agent commits, a
redelivered summary overwrites its own value, an hour already judged is not judged again
(the judge's per-station ``last`` hour), clues leave through ``streams.clue_exit`` before the
cell's state is written, and clue ids are (station, rule, episode start): the same again.
A summary for an hour judged already (its station was more than ``MAX_WAIT_H`` behind the
others) is dropped. Only hourly data (period ``hour``) is summarised: an ambient station
that sends only minute or real-time data is judged alone.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError

from contract.clue import Clue
from contract.records import HourSeries, HourSummary, Reading
from contract.topics import ENV_HOURS
from detectors.env_neighbours import NeighbourConfig, NeighbourMap, Site
from detectors.env_region import RegionJudge, defer_spikes, hour_means
from storage.stations import located_stations
from streams.evidence import defer
from streams.table_state import delete_state, put_state

if TYPE_CHECKING:
    from streams.app import Streams

log = logging.getLogger(__name__)
#: the longest an hour waits for a silent neighbour, in data hours
MAX_WAIT_H = 24
MEANS_PER_RECORD = 20_000  # ~20 bytes each as JSON: records stay well under a broker's 1 MB
_MAX_COS_LAT = math.cos(math.radians(60.0))
# on the worker's /metrics (``worker_metrics_port``): is the neighbour stage keeping up, and
# is a silent station holding its cells back?
STATION_HOURS_JUDGED = Counter("offsite_region_station_hours_judged_total",
                               "station-hours the neighbour rules have judged")
HOURS_WAITING = Gauge("offsite_region_hours_waiting",
                      "data hours this worker's region cells hold, waiting for a neighbour"
                      " that has not reported them yet (at most a day per cell)")
BATCH_SECONDS = Histogram("offsite_region_batch_seconds",
                          "a batch of hour summaries: decoded, judged, clues acked, state"
                          " written", buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0))
#: a station's judge state for the changelog: (station, state, the state as JSON bytes)
StationState = tuple[str, dict[str, Any], bytes]
#: a pending hour's record for the changelog: (key, value and its JSON bytes, or None: judged)
HourRecord = tuple[str, tuple[dict[str, Any], bytes] | None]


def hour_key(cell: str, hour: str) -> str:
    """The ``env-region`` key of a cell's pending hour (epoch seconds)."""
    return f"{cell}@{hour}"


def home_cell(lon: float, lat: float, radius_km: float) -> tuple[int, int]:
    """The cell of a point: rows radius/110.574 km of latitude high, columns radius wide
    at 60 degrees latitude (wider nearer the equator), so neighbours are one cell away."""
    dlat = radius_km / 110.574
    dlon = radius_km / (111.320 * _MAX_COS_LAT)
    return math.floor(lat / dlat), math.floor(lon / dlon)


def cell_key(cell: tuple[int, int]) -> str:
    return f"cell:{cell[0]}:{cell[1]}"


class Routing:
    """Where each station's means go, and which stations each cell judges, for one
    neighbour map (rebuilt with it when the registry changes)."""

    def __init__(self, nmap: NeighbourMap) -> None:
        radius = nmap.cfg.radius_km
        self.home = {s.id: cell_key(home_cell(s.lon, s.lat, radius))
                     for s in nmap.sites.values() if s.ambient}
        #: cell -> its home stations that have enough neighbours to be judged
        self.judged: dict[str, list[str]] = {}
        #: cell -> the stations whose hours it needs: those and their neighbours
        self.expected: dict[str, set[str]] = {}
        for sid, cell in self.home.items():
            if nmap.judged(sid):
                self.judged.setdefault(cell, []).append(sid)
                self.expected.setdefault(cell, set()).update([sid, *nmap.of(sid)])
        #: station -> the cells its means go to (none: nobody judges against it)
        self.targets: dict[str, set[str]] = {}
        for cell, stations in self.expected.items():
            for sid in stations:
                self.targets.setdefault(sid, set()).add(cell)




class RegionStage:
    """The hook on the env agent and the region agent over ``env.hours``."""

    def __init__(self, streams: Streams, cfg: NeighbourConfig | None = None) -> None:
        settings = streams.settings
        self.streams = streams
        self.cfg = cfg or NeighbourConfig()
        self.table = streams.app.Table("env-region", default=None,
                                       partitions=settings.partitions, key_type=str,
                                       help="hours not yet judged per cell")
        self.judges = streams.app.Table("env-region-judge", default=None,
                                        partitions=settings.partitions, key_type=str,
                                        help="neighbour-rule state per station, on the"
                                        " changelog partition of its home cell")
        self._nmap: NeighbourMap | None = None
        self._routing: Routing | None = None
        self.waiting: dict[str, int] = {}  # cell -> data hours held (HOURS_WAITING)
        self.lock = asyncio.Lock()
        self.send_clues: Callable[[Sequence[Clue]], Awaitable[Any]] = streams.clue_exit.publish
        topic = streams.topic(ENV_HOURS)

        async def send_summaries(items: Sequence[tuple[str, bytes]]) -> None:
            futures = [await topic.send(key=key.encode(), value=value) for key, value in items]
            await asyncio.gather(*futures)

        self.send_summaries: Callable[[Sequence[tuple[str, bytes]]], Awaitable[None]] = \
            send_summaries

        self.agent = streams.batch_agent(topic, "streams.env_region.region",
                                         lambda events: self.handle_batch(events),
                                         within=settings.clue_batch_seconds,  # a clue's path
                                         what="hour summaries")
        streams.on_registry_change.append(self.registry_changed)
        env = streams.agents.get("streams.env")
        if env is not None:
            env.region = self

    def registry_changed(self, kind: str) -> None:
        if kind in ("station", "*"):
            self._nmap = None

    async def nmap(self) -> NeighbourMap:
        """The neighbour map of the registry's located stations (read on first need)."""
        if self._nmap is None:
            rows = await located_stations(await self.streams.db_pool())
            self._nmap = NeighbourMap([Site(*r) for r in rows], self.cfg)
            self._routing = Routing(self._nmap)
        return self._nmap

    def routing(self, nmap: NeighbourMap) -> Routing:
        if self._routing is None or self._nmap is not nmap:
            self._routing = Routing(nmap)
        return self._routing

    # ------------------------------------------------------------------ env agent side
    async def clue_filter(self) -> Callable[[list[Clue]], list[Clue]]:
        """What the env agent applies to each station's clues in its thread: the spikes
        of the regional pollutants defer to the neighbours (``defer_spikes``)."""
        nmap = await self.nmap()
        return lambda clues: defer_spikes(clues, nmap)

    async def send_summaries_of(self, groups: dict[str, tuple[int, list[Reading]]]) -> None:
        """Send a batch's hour summaries; returns once the broker acked them all."""
        nmap = await self.nmap()
        items = await asyncio.to_thread(self.summaries, groups, nmap)
        if items:
            await self.send_summaries(items)

    def summaries(self, groups: dict[str, tuple[int, list[Reading]]],
                  nmap: NeighbourMap) -> list[tuple[str, bytes]]:
        """One ``HourSummary`` per region cell (at most ``MEANS_PER_RECORD`` means each)."""
        routing = self.routing(nmap)
        per_cell: dict[str, list[HourSeries]] = {}
        for station, (_, readings) in groups.items():
            targets = routing.targets.get(station)
            if not targets:
                continue  # not an ambient station with a location
            per_code: dict[str, tuple[list[int], list[float]]] = {}
            for (code, hour), mean in hour_means([r for r in readings if r.period == "hour"],
                                                 self.cfg.all_codes).items():
                hours, means = per_code.setdefault(code, ([], []))
                hours.append(int(hour))
                means.append(mean)
            series = [HourSeries(station=station, code=code, hours=hs[i:i + MEANS_PER_RECORD],
                                 means=ms[i:i + MEANS_PER_RECORD])
                      for code, (hs, ms) in per_code.items()
                      for i in range(0, len(hs), MEANS_PER_RECORD)]
            for key in targets:
                per_cell.setdefault(key, []).extend(series)
        out = []
        for key, series in per_cell.items():
            chunk: list[HourSeries] = []
            size = 0
            for one in series:
                if chunk and size + len(one.hours) > MEANS_PER_RECORD:
                    out.append((key, HourSummary(cell=key, series=chunk).dumps()))
                    chunk, size = [], 0
                chunk.append(one)
                size += len(one.hours)
            out.append((key, HourSummary(cell=key, series=chunk).dumps()))
        return out

    # ------------------------------------------------------------------ region agent side
    async def handle_batch(self, events: Sequence[Any]) -> int:
        """Merge one batch of summaries into their cells, judge what is ready; returns the
        number of clues sent."""
        started = time.perf_counter()

        def decode() -> dict[str, tuple[int, list[HourSeries]]]:  # CPU work, off the loop
            cells: dict[str, tuple[int, list[HourSeries]]] = {}
            for event in events:
                try:
                    rec = HourSummary.loads(event.value)
                except (ValidationError, ValueError):
                    continue  # made by our own env agent: nothing to dead-letter
                cells.setdefault(rec.cell, (event.message.partition, []))[1].extend(rec.series)
            return cells

        cells = await asyncio.to_thread(decode)
        if not cells:
            return 0
        nmap = await self.nmap()
        async with self.lock:
            results = await asyncio.to_thread(self._judge_cells, cells, nmap)
            sent = [c for _, _, _, clues, _, _ in results for c in clues]
            for clue in sent:
                site = nmap.sites[clue.subject]
                clue.location = {"type": "Point", "coordinates": [site.lon, site.lat]}
            await self.send_clues(sent)  # clues before state, as the env agent does
            for cell, value, encoded, _, states, hour_records in results:
                partition = value["partition"]
                for station, state, state_bytes in states:
                    put_state(self.judges, partition, station, state, state_bytes)
                for key, record in hour_records:
                    if record is None:
                        delete_state(self.table, partition, key)
                    else:
                        put_state(self.table, partition, key, *record)
                put_state(self.table, partition, cell, value, encoded)
            HOURS_WAITING.set(sum(self.waiting.values()))
        BATCH_SECONDS.observe(time.perf_counter() - started)
        return len(sent)

    def _judge_cells(self, cells: dict[str, tuple[int, list[HourSeries]]], nmap: NeighbourMap
                     ) -> list[tuple[str, dict[str, Any], bytes, list[Clue], list[StationState],
                                     list[HourRecord]]]:
        """Each cell's new value, its pending hours that changed (None: judged, to drop) and
        the states of the stations it judged, encoded at once (the judges change them in
        place in the next batch), and its clues."""
        out = []
        for cell, (partition, recs) in cells.items():
            stored = self.table.data.get(cell) or {}
            hours = self._pending(cell, stored)  # {code: {hour: {station: mean}}}
            before = {h for hs in hours.values() for h in hs}
            value = {"hours": hours, "done": dict(stored.get("done", {})),
                     "seen": dict(stored.get("seen", {})), "partition": partition}
            legacy = stored.get("judge") or {}  # a cell value of the first version
            seen, done = value["seen"], value["done"]
            touched = set(before) if "hours" in stored else set()  # the old layout: write all
            for rec in recs:
                seen[rec.station] = max(seen.get(rec.station, 0), max(rec.hours))
                code_hours = hours.setdefault(rec.code, {})
                last = done.get(rec.code, -1)
                for hour, mean in zip(rec.hours, rec.means, strict=True):
                    if hour > last:  # else judged already: too late
                        code_hours.setdefault(str(hour), {})[rec.station] = mean
                        touched.add(str(hour))
            clues, states = self._judge(cell, value, nmap, legacy)
            hours = value["hours"]  # emptied by ``_judge`` when the cell judges nobody
            left = sorted({h for hs in hours.values() for h in hs}, key=int)
            records: list[HourRecord] = [(hour_key(cell, h), None) for h in before - set(left)]
            for h in left:
                if h in touched:
                    record = {c: hs[h] for c, hs in hours.items() if h in hs}
                    records.append((hour_key(cell, h), (record, orjson.dumps(record))))
            del value["hours"]
            value["pending"] = left
            # the gauge's count, here in the thread (read under the stage's lock)
            self.waiting[cell] = len(left)
            out.append((cell, value, orjson.dumps(value), clues,
                        [(st, state, orjson.dumps(state)) for st, state in states.items()],
                        records))
        return out

    def _pending(self, cell: str, stored: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """A copy of the cell's pending hours by code: from their own records, or from the
        cell value of the layout before them (``hours`` inside it)."""
        if "hours" in stored:
            return {c: {h: dict(v) for h, v in hs.items()} for c, hs in stored["hours"].items()}
        hours: dict[str, dict[str, Any]] = {}
        for h in stored.get("pending", ()):
            for code, values in (self.table.data.get(hour_key(cell, h)) or {}).items():
                hours.setdefault(code, {})[h] = dict(values)
        return hours

    def _judge(self, cell: str, value: dict[str, Any], nmap: NeighbourMap,
               legacy: dict[str, Any]) -> tuple[list[Clue], dict[str, dict[str, Any]]]:
        """Judge the ready hours of a cell in order and drop them from the value; returns
        the clues and the new state of each station judged (or taken from ``legacy``)."""
        routing = self.routing(nmap)
        home = routing.judged.get(cell)
        if not home:  # only neighbours of other cells' stations here: nothing to judge
            value["hours"] = {}
            return [], {}
        expected = routing.expected[cell]
        flat: dict[str, Any] = {}  # RegionJudge's state: "station/code" -> tracker state
        changed = set()
        for station in home:
            own = self.judges.data.get(station)
            if own is None and any(k.rpartition("/")[0] == station for k in legacy):
                own = {k: v for k, v in legacy.items() if k.rpartition("/")[0] == station}
                changed.add(station)  # moved out of the old cell value: write it once
            flat.update(own or {})
        judge = RegionJudge(nmap, flat, evidence=True, on_plot=defer)
        clues: list[Clue] = []
        seen = value["seen"]
        hours = value["hours"]  # {code: {hour: {station: mean}}}
        newest = max((int(h) for hs in hours.values() for h in hs), default=0)
        for h in sorted({h for hs in hours.values() for h in hs}, key=int):
            codes = [c for c in hours if h in hours[c]]
            ready = all(s in hours[c][h] or seen.get(s, 0) > int(h)
                        for c in codes for s in expected)
            if not (ready or newest - int(h) >= MAX_WAIT_H * 3600):
                break
            by_code = {c: hours[c].pop(h) for c in codes}
            judged_now = {s for values in by_code.values() for s in values}
            changed.update(judged_now)
            STATION_HOURS_JUDGED.inc(len(judged_now.intersection(home)))
            clues += judge.judge_hours(float(h), by_code, home)
            for c in codes:
                value["done"][c] = int(h)
        states: dict[str, dict[str, Any]] = {s: {} for s in changed.intersection(home)}
        for key, state in judge.s.items():
            station = key.rpartition("/")[0]
            if station in states:
                states[station][key] = state
        return clues, {s: state for s, state in states.items() if state}


def register(streams: Streams) -> RegionStage:
    return RegionStage(streams)
