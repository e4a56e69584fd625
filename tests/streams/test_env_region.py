"""The region stage: hour summaries re-keyed by region cell, neighbour clues in the stream.

The 12 real Beijing stations are registered in a real PostgreSQL; a fortnight of their real
winter PM data goes through the env agent's ``handle_batch`` (stand-in events, as in
test_env_stream), with Dongsi's sampler blocked for a day while the city is high. The hour
summaries the hook sends are what ``env.hours`` would carry; they are fed to the region
agent's ``handle_batch`` in batches, then all of them again (a redelivery).
"""

from __future__ import annotations

import asyncio
import csv
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from prometheus_client import REGISTRY

from bench.bench_env_neighbours import load
from contract.records import Clue, HourSeries, HourSummary, env_records
from detectors.env_neighbours import CO, PM10, PM25, NeighbourMap
from detectors.env_region import judge_series, read_sites
from streams import env as E
from streams.env_region import RegionStage, cell_key, home_cell
from tests.detectors.test_env_neighbours import CST, doctor, find_run, neighbour_median
from tests.streams.conftest import Build, FakeEvent, FakeMsg, FakeTable

# the winter 2013-14 PM of the 12 stations and Dingling's whole record (samples/README.md)
DATA = Path(__file__).resolve().parents[2] / "samples" / "sensors" / "beijing_12"

START, STOP = datetime(2013, 11, 20, tzinfo=CST), datetime(2013, 12, 20, tzinfo=CST)





@pytest.fixture()
def stage(fresh_db: str, build: Build) -> tuple[E.EnvAgent, RegionStage, list]:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO departments (id, name) VALUES ('eco', 'Ecology')"
                     " ON CONFLICT DO NOTHING")
        with (DATA / "stations.csv").open() as fh:
            for row in csv.DictReader(fh):
                conn.execute("INSERT INTO stations (id, owner_dept, st, interval_s, lon, lat)"
                             " VALUES (%s, 'eco', %s, 3600, %s, %s)",
                             (row["id"], row["st"], float(row["lon"]), float(row["lat"])))
    streams, topic = build("streams.env", "streams.env_region", database_url=fresh_db)
    env: E.EnvAgent = streams.agents["streams.env"]
    region: RegionStage = streams.agents["streams.env_region"]
    env.monitors = FakeTable()  # type: ignore[assignment]
    env.processor = E.EnvProcessor(E.EnvConfig(evidence=False))
    region.table = FakeTable()
    region.judges = FakeTable()
    return env, region, topic.sent


def test_region_stage_finds_the_blocked_sampler_once_and_defers_spikes(
        stage: tuple[E.EnvAgent, RegionStage, list[tuple[str, Clue]]]) -> None:
    env, region, sent = stage
    assert env.region is region  # the region stage hooked itself on the env agent
    per = {sid: [r for r in rs if r.time >= START]
           for sid, rs in load(until=STOP.replace(tzinfo=None), data=DATA).items()}
    nmap = NeighbourMap(read_sites(DATA / "stations.csv"))
    own = {r.time: r for r in per["BJ-DONGSI"]}
    blocked = find_run(neighbour_median(per, nmap, "BJ-DONGSI", PM25), own, 24,
                       lambda m: m >= 150)
    per = doctor(per, "BJ-DONGSI", blocked, 24, lambda c, v: round(v * 0.2, 1))
    summaries: list[tuple[str, bytes]] = []

    async def capture(items: Any) -> None:
        summaries.extend(items)

    region.send_summaries = capture

    async def run() -> None:
        for day in range(30):  # a day of every station per batch, as a worker would see it
            t0 = START + timedelta(days=day)
            events = [FakeEvent(rec.dumps(), FakeMsg(i % 4)) for i, sid in enumerate(sorted(per))
                      for rec in env_records([r for r in per[sid]
                                              if t0 <= r.time < t0 + timedelta(days=1)])]
            await env.handle_batch(events)
        await env.streams.close_pool()

    asyncio.run(run())
    assert not [c for _, c in sent if c.kind == "spike" and c.rule.endswith((PM25, PM10))]
    # a station's means go to its own cell and to the cells of the stations that count it
    # as a neighbour: each cell gets every mean its stations are judged with
    records = [(k, HourSummary.loads(v)) for k, v in summaries]
    got: dict[str, set[str]] = {}
    for _, r in records:
        for one in r.series:
            got.setdefault(one.station, set()).add(r.cell)
    def home(sid: str) -> str:
        site = nmap.sites[sid]
        return cell_key(home_cell(site.lon, site.lat, 50.0))
    for sid in per:
        assert got[sid] == {home(s) for s in per if s == sid or sid in nmap.of(s)}, sid
    assert home("BJ-DONGSI") == cell_key(home_cell(116.417, 39.929, 50.0))
    assert all(k == r.cell for k, r in records)  # keyed by the cell each copy is for
    # CO goes along as the neighbours' witness (Dingling's sample keeps every channel; the
    # others keep PM only), never judged itself; nothing else but the PM
    codes = {(one.station, one.code) for _, r in records for one in r.series}
    assert ("BJ-DINGLING", CO) in codes and {c for _, c in codes} == {PM25, PM10, CO}
    # one record per cell and batch, not one per hour: 30 daily batches here
    assert len(records) <= 30 * len({r.cell for _, r in records})

    events = [FakeEvent(v, FakeMsg(0), k.encode()) for k, v in summaries]

    async def judge(batches: list[list[FakeEvent]]) -> None:
        for b in batches:
            await region.handle_batch(b)
        await env.streams.close_pool()

    asyncio.run(judge([events[i:i + 500] for i in range(0, len(events), 500)]))
    found = [(site, c) for site, c in sent if c.kind == "interference"
             and c.subject == "BJ-DONGSI"
             and c.start < blocked + timedelta(hours=24) and blocked < c.time + timedelta(hours=1)]
    assert {c.rule for _, c in found} == {f"interference/{PM25}", f"interference/{PM10}"}
    site, first = found[0]
    assert first.route is not None and site == first.route["site"]
    assert first.location == {"type": "Point", "coordinates": [116.417, 39.929]}
    assert first.metrics["value"] < 0.5 * first.metrics["limit"]
    # the alert does not wait for its picture: the plot goes along to be drawn after it
    # (``streams.evidence``), the station against its neighbours' band
    plot = first.evidence[0]
    assert plot.content == b"" or not plot.content
    assert plot.pending is not None and plot.pending["series"]["band"]
    ids = {c.clue_id for _, c in sent}
    count = len(sent)
    # the table keeps only hours not judged yet: a day at most per cell, not the month
    cells = [v for k, v in region.table.data.items() if "@" not in k]
    assert cells and all(len(v["pending"]) <= 25 for v in cells)
    assert len(region.table.data) == len(cells) + sum(len(v["pending"]) for v in cells)
    asyncio.run(judge([events]))  # the whole topic redelivered: judged already, nothing new
    assert len(sent) == count and {c.clue_id for _, c in sent} == ids
    # the stream and the offline CLI give the same neighbour clues (but for the last days,
    # whose hours the stream still waits on)

    def episodes(clues: Any) -> set[tuple]:
        return {(c.rule, c.subject, c.start, c.state) for c in clues
                if c.kind in ("interference", "local_source") and c.time < STOP - timedelta(2)}

    offline = episodes(judge_series(per, nmap))
    assert offline and episodes(c for _, c in sent) == offline


def region_of(build: Build, sites: list) -> RegionStage:
    """A region stage over ``sites`` alone, its tables in memory (``FakeTable``)."""
    streams, _ = build("streams.env_region")
    region: RegionStage = streams.agents["streams.env_region"]
    region.table, region.judges = FakeTable(), FakeTable()
    region._nmap = NeighbourMap(sites)
    return region


def test_a_city_cell_of_many_stations_stays_within_the_brokers_record_limit(
        build: Build) -> None:
    """40 ambient stations in one city cell, five weeks of hours: every changelog record
    (the cell's pending hours, each station's judge state) stays under the largest record
    a producer may send, and a worker that recovers the tables from those records judges
    the next day exactly as the one that never stopped."""
    import random

    from contract.settings import Settings
    from detectors.env_neighbours import Site

    rng = random.Random(7)
    sites = [Site(f"CITY-{i:02d}", 116.0 + 0.6 * rng.random(), 39.82 + 0.3 * rng.random())
             for i in range(40)]
    cells = {cell_key(home_cell(s.lon, s.lat, 50.0)) for s in sites}
    assert len(cells) == 1
    cell = cells.pop()
    t0 = int(datetime(2014, 1, 1, tzinfo=CST).timestamp())

    def day(d: int) -> list[FakeEvent]:
        hours = [t0 + (d * 24 + h) * 3600 for h in range(24)]
        city = [rng.lognormvariate(4.0, 0.6) for _ in hours]  # the regional level
        series = [HourSeries(station=s.id, code=code, hours=hours,
                             means=[round(scale * c * rng.lognormvariate(0, 0.15), 1)
                                    for c in city])
                  for s in sites for code, scale in ((PM25, 1.0), (PM10, 1.6), (CO, 0.02))]
        return [FakeEvent(HourSummary(cell=cell, series=series).dumps(), FakeMsg(3),
                          cell.encode())]

    def stage() -> RegionStage:
        return region_of(build, sites)

    def judged_total() -> float:
        return REGISTRY.get_sample_value("offsite_region_station_hours_judged_total") or 0.0

    region = stage()
    before = judged_total()
    for d in range(35):
        asyncio.run(region.handle_batch(day(d)))
    limit = Settings().max_record_bytes
    assert max(region.judges.sizes) < limit and max(region.table.sizes) < limit
    # every judged station has its own state, with its month of history, on the cell's
    # partition (the partition of the summaries it came from)
    assert {p for p, _ in region.judges.changelog} == {3}
    judged = {s.id for s in sites if region._nmap.judged(s.id)}
    assert judged and set(region.judges.sent) == judged
    # what an operator reads on the worker's /metrics: every hour of every judged station
    # judged, none waiting (each day's batch had every station's hours)
    assert judged_total() - before == 35 * 24 * len(judged)
    assert REGISTRY.get_sample_value("offsite_region_hours_waiting") == 0
    assert all(len(v[f"{sid}/{PM25}"]["hist"]) >= 700 for sid, v in region.judges.sent.items())

    recovered = stage()  # a new worker: the tables as read back from the changelog
    recovered.table.data = dict(region.table.sent)
    recovered.judges.data = dict(region.judges.sent)
    nxt = day(35)
    asyncio.run(region.handle_batch(nxt))
    asyncio.run(recovered.handle_batch(nxt))
    assert recovered.judges.sent == region.judges.sent
    assert recovered.table.sent == region.table.sent
    # a cell value of the first version kept every station's state under "judge": read
    # once, its stations' states move to their own records and judging goes on the same
    legacy = stage()
    old = {k: v for state in recovered.judges.sent.values() for k, v in state.items()}
    legacy.table.data = {k: {**v, "judge": old} for k, v in recovered.table.sent.items()}
    after = day(36)
    asyncio.run(region.handle_batch(after))
    asyncio.run(legacy.handle_batch(after))
    assert legacy.judges.sent == region.judges.sent
    assert "judge" not in legacy.table.sent[cell]
    # a station that falls silent holds its cell's hours back (a day at most), and says so
    silent = [FakeEvent(HourSummary(cell=cell, series=[one for one in HourSummary.loads(
        e.value).series if one.station != sites[0].id]).dumps(), FakeMsg(3), cell.encode())
        for e in day(37)]
    asyncio.run(region.handle_batch(silent))
    assert REGISTRY.get_sample_value("offsite_region_hours_waiting") == 24


def test_a_dense_cell_waiting_a_day_for_a_silent_station_keeps_records_small(
        build: Build) -> None:
    """A city grid of 500 hourly stations in one cell: while one is silent the cell holds a
    day of everybody's hours, over a producer's record limit as one value; each pending
    hour is its own record, judged hours are dropped by tombstones, a worker recovered from
    the changelog judges the held day as the one that never stopped, and a cell value of
    the layout before (its hours inside it) goes on the same."""
    import random

    from contract.settings import Settings
    from detectors.env_neighbours import Site

    rng = random.Random(11)
    sites = [Site(f"GRID-{i:03d}", 116.1 + 0.4 * rng.random(), 39.8 + 0.25 * rng.random())
             for i in range(500)]
    cell = cell_key(home_cell(sites[0].lon, sites[0].lat, 50.0))
    assert {cell_key(home_cell(s.lon, s.lat, 50.0)) for s in sites} == {cell}
    t0 = int(datetime(2014, 1, 1, tzinfo=CST).timestamp())

    def day(d: int, without: str | None = None) -> list[FakeEvent]:
        hours = [t0 + (d * 24 + h) * 3600 for h in range(24)]
        city = [rng.lognormvariate(4.0, 0.6) for _ in hours]
        series = [HourSeries(station=s.id, code=code, hours=hours,
                             means=[round(scale * c * rng.lognormvariate(0, 0.15), 1)
                                    for c in city])
                  for s in sites if s.id != without
                  for code, scale in ((PM25, 1.0), (PM10, 1.6), (CO, 0.02))]
        return [FakeEvent(HourSummary(cell=cell, series=series[i:i + 300]).dumps(),
                          FakeMsg(5), cell.encode()) for i in range(0, len(series), 300)]

    def stage() -> RegionStage:
        return region_of(build, sites)

    region = stage()
    for d in range(3):
        asyncio.run(region.handle_batch(day(d)))
    assert region.table.sent[cell]["pending"] == []
    assert set(region.table.sent) == {cell}  # every judged hour's record dropped again
    asyncio.run(region.handle_batch(day(3, without=sites[0].id)))
    held = region.table.sent[cell]["pending"]
    assert len(held) == 24
    limit = Settings().max_record_bytes
    hour_sizes = [len(orjson.dumps(region.table.sent[f"{cell}@{h}"])) for h in held]
    assert sum(hour_sizes) > limit  # as one value, the held day would not fit a record
    assert max(region.table.sizes) < limit / 10

    # the previous layout: the same pending hours inside the cell value
    old = stage()
    value = dict(region.table.sent[cell])
    hours: dict[str, dict] = {}
    for h in value.pop("pending"):
        for code, values in region.table.sent[f"{cell}@{h}"].items():
            hours.setdefault(code, {})[h] = values
    old.table.data = {cell: {**value, "hours": hours}}
    old.judges.data = dict(region.judges.sent)
    recovered = stage()  # a new worker: the tables as read back from the changelog
    recovered.table.data = dict(region.table.sent)
    recovered.judges.data = dict(region.judges.sent)
    late = day(4)  # the silent station back: the held day and this one are judged
    for one in (region, recovered, old):
        asyncio.run(one.handle_batch(late))
    assert recovered.judges.sent == region.judges.sent == old.judges.sent
    assert recovered.table.sent[cell] == region.table.sent[cell] == old.table.sent[cell]
    assert region.table.sent[cell]["pending"] == [] and set(region.table.sent) == {cell}
    assert "hours" not in old.table.sent[cell]


def test_a_cell_that_judges_nobody_holds_no_hours(build: Build) -> None:
    """Summaries for a cell none of whose stations has enough neighbours (a registry that
    changed after they were sent): nothing is judged and nothing is kept."""
    from detectors.env_neighbours import Site

    sites = [Site("LONE-1", 100.0, 30.0), Site("LONE-2", 100.01, 30.0)]
    region = region_of(build, sites)
    assert not region._nmap.judged("LONE-1")
    cell = cell_key(home_cell(100.0, 30.0, 50.0))
    t0 = int(datetime(2014, 1, 1, tzinfo=CST).timestamp())
    series = [HourSeries(station=s.id, code=PM25, hours=[t0 + h * 3600 for h in range(24)],
                         means=[50.0] * 24) for s in sites]
    asyncio.run(region.handle_batch([FakeEvent(HourSummary(cell=cell, series=series).dumps(),
                                               FakeMsg(1), cell.encode())]))
    assert region.table.sent[cell]["pending"] == [] and set(region.table.sent) == {cell}
