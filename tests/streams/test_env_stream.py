"""The env agent's logic without Kafka: monitors over table values, registry entries,
site keys, offline ticks only for live stations, and one batch through ``handle_batch``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from prometheus_client import REGISTRY

from contract.records import Reading, env_records
from detectors.env_config import EnvConfig, StationInfo
from streams import env as E
from tests.streams.conftest import Build, FakeEvent, FakeMsg, FakeTable

CST = timezone(timedelta(hours=8))
RULE = "GB3095-2012/II/a34004/24h"
NO_PNG = EnvConfig(evidence=False)


def hours(station: str, start: datetime, values: list[float]) -> list[Reading]:
    return [Reading(station=station, time=start + timedelta(hours=i), period="hour",
                    values={"a34004": v}) for i, v in enumerate(values)]


def dongsi() -> E.StationEntry:
    return E.entry_from_row(("S1", "22", None, 3600, 116.417, 39.929, {}))


def test_registry_row_and_defaults() -> None:
    entry = dongsi()
    assert entry.info == StationInfo(id="S1", st="22", interval_s=3600)
    assert entry.location == {"type": "Point", "coordinates": [116.417, 39.929]}
    bare = E.entry_from_row(("S2", None, None, None, None, None, None))
    assert bare.location is None and bare.info == StationInfo(id="S2")
    assert E.default_entry("S3").location is None


def test_state_round_trip_across_batches_gives_one_episode() -> None:
    """Half a day in one batch, the rest after a 'restart' from the table value only."""
    day = [80.0 + 5 * (h % 5) for h in range(24)] + [20.0]
    readings = hours("S1", datetime(2025, 3, 10, tzinfo=CST), day)
    proc = E.EnvProcessor(NO_PNG)
    clues1, value = proc.observe("S1", 1, readings[:12], None, dongsi(), arrived=0.0)
    assert clues1 == [] and value["partition"] == 1
    restored = E.EnvProcessor(NO_PNG)  # a new worker: only the table value survives
    stored = E.StationMonitor.from_state(value["state"])  # the value is JSON-able
    assert stored.to_state() == value["state"]
    clues2, _ = restored.observe("S1", 1, readings[12:], value, dongsi(), arrived=0.0)
    exc = [c for c in clues2 if c.rule == RULE]
    assert len(exc) == 1 and exc[0].state == "open"
    assert exc[0].metrics["window_mean"] == round(sum(day[:24]) / 24, 4)
    assert exc[0].location == {"type": "Point", "coordinates": [116.417, 39.929]}


def test_live_monitor_reused_and_rebuilt_when_value_changes() -> None:
    proc = E.EnvProcessor(NO_PNG)
    readings = hours("S1", datetime(2025, 3, 10, tzinfo=CST), [10.0, 11.0])
    _, value = proc.observe("S1", 0, readings[:1], None, dongsi(), arrived=0.0)
    mon = proc.monitor("S1", value, dongsi())
    assert mon is proc.slots["S1"].monitor  # same value: the live monitor, no rebuild
    other = dict(value)  # a value recovered from the changelog is another object
    assert proc.monitor("S1", other, dongsi()) is not mon
    changed = E.StationEntry(StationInfo(id="S1", st="31", interval_s=60))
    assert proc.monitor("S1", value, changed).station.st == "31"  # registry change applies


def test_offline_tick_only_for_live_stations() -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    entry = dongsi()
    live = E.EnvProcessor(NO_PNG)
    readings = hours("S1", now - timedelta(hours=10), [10.0, 12.0, 11.0, 13.0])
    _, value = live.observe("S1", 0, readings, None, entry,
                            arrived=readings[-1].time.timestamp() + 60)
    assert E.is_live(value, now.timestamp())
    clues, new = live.tick("S1", value, now, entry)
    assert [(c.kind, c.state) for c in clues] == [("offline", "open")]
    assert new is not None and "offline" in new["state"]["episodes"]
    assert clues[0].metrics["gap_s"] == 7 * 3600 and clues[0].location == entry.location
    again, _ = live.tick("S1", new, now + timedelta(minutes=1), entry)
    assert again == []  # the open episode is updated at most hourly, not re-opened

    replay = E.EnvProcessor(NO_PNG)  # the same data replayed years later
    _, old = replay.observe("S1", 0, readings, None, entry,
                            arrived=(now + timedelta(days=3000)).timestamp())
    assert not E.is_live(old, (now + timedelta(days=3000)).timestamp())
    assert replay.tick("S1", old, now + timedelta(days=3000), entry) == ([], None)
    silent = now + timedelta(days=8)  # live once, but silent for more than a week
    assert not E.is_live(value, silent.timestamp())





def test_handle_batch_writes_state_per_station_partition_and_keys_clues_by_site(
        build: Build) -> None:
    streams, topic = build("streams.env")
    agent: E.EnvAgent = streams.agents["streams.env"]
    table, sent = FakeTable(), topic.sent

    async def lookup(stations: Any) -> dict[str, E.StationEntry]:
        return {s: dongsi() if s == "S1" else E.default_entry(s) for s in stations}

    agent.monitors = table  # type: ignore[assignment]
    agent.processor = E.EnvProcessor(NO_PNG)
    agent.registry.lookup = lookup  # type: ignore[method-assign]
    day = [90.0 + (h % 3) for h in range(24)] + [20.0]
    s1 = hours("S1", datetime(2025, 3, 10, tzinfo=CST), day)
    events = [FakeEvent(r.dumps(), FakeMsg(1)) for r in env_records(s1[:20])]  # one batch record
    events += [FakeEvent(r.dumps(), FakeMsg(1)) for r in s1[20:]]  # and single readings
    events += [FakeEvent(r.dumps(), FakeMsg(0)) for r in hours("S2", datetime(2025, 3, 10,
                                                                        tzinfo=CST), [5.0])]
    events.append(FakeEvent(b"not json", FakeMsg(0)))  # skipped: the readings sink dead-letters it
    judged = REGISTRY.get_sample_value("offsite_env_readings_judged_total") or 0.0
    n = asyncio.run(agent.handle_batch(events))
    assert sorted(table.changelog) == [(0, "S2"), (1, "S1")]  # once per station, own partition
    # the worker's /metrics counts the readings judged: 25 of S1, 1 of S2, not the bad record
    assert REGISTRY.get_sample_value("offsite_env_readings_judged_total") - judged == 26
    # the changelog holds the state of the batch's end: a monitor rebuilt from it goes on
    assert table.sent["S1"] == orjson.loads(orjson.dumps(table.data["S1"]))
    assert n == len(sent)
    by_station = {c.subject: (site, c) for site, c in sent if c.rule == RULE}
    assert by_station["S1"][0] == "gh:wx4g1h"  # keyed by the routed site of its location
    assert all(c.route is not None and c.route["site"] == site for site, c in sent)
    # S2 is not registered: one unregistered_source clue, keyed by the station itself
    assert [(site, c.kind) for site, c in sent if c.subject == "S2"] == [
        ("subject:S2", "unregistered_source")]


def test_each_stations_clues_go_out_at_once_and_all_before_any_state(build: Build) -> None:
    """An alert does not wait for the other stations of its batch: each station's clues are
    sent as soon as that station is judged; the state is written only once every send of
    the batch is acked (a crash before that re-delivers the batch to the old state)."""
    streams, _ = build("streams.env")
    agent: E.EnvAgent = streams.agents["streams.env"]
    table = FakeTable()
    calls: list[tuple[list[str], int]] = []  # (subjects sent, state writes so far)

    async def send(clues: Any) -> None:
        await asyncio.sleep(0.01)  # the broker's ack takes a while
        calls.append((sorted({c.subject for c in clues}), len(table.changelog)))

    async def lookup(stations: Any) -> dict[str, E.StationEntry]:
        return {s: E.default_entry(s) for s in stations}

    agent.monitors = table  # type: ignore[assignment]
    agent.processor = E.EnvProcessor(NO_PNG)
    agent.registry.lookup = lookup  # type: ignore[method-assign]
    agent.send_clues = send  # type: ignore[assignment]
    t0 = datetime(2025, 3, 10, tzinfo=CST)
    events = [FakeEvent(r.dumps(), FakeMsg(k % 2)) for k, st in enumerate(["A", "B", "C"])
              for r in env_records(hours(st, t0, [5.0, 6.0]))]
    n = asyncio.run(agent.handle_batch(events))
    # each unregistered station raises its own clue, sent on its own
    assert sorted(subjects for subjects, _ in calls) == [["A"], ["B"], ["C"]] and n == 3
    assert all(writes == 0 for _, writes in calls)  # every send acked before any state
    assert sorted(key for _, key in table.changelog) == ["A", "B", "C"]


def test_tick_all_ticks_live_stations_of_assigned_partitions_only(build: Build) -> None:
    from types import SimpleNamespace

    from faust.types import TP

    now = datetime.now(UTC)
    table, proc = FakeTable(), E.EnvProcessor(NO_PNG)
    for station, partition in (("S1", 0), ("S9", 1)):  # S9's partition moved to another worker
        readings = hours(station, now - timedelta(hours=10), [10.0, 12.0, 11.0, 13.0])
        _, table.data[station] = proc.observe(station, partition, readings, None, dongsi(),
                                              arrived=readings[-1].time.timestamp())

    async def lookup(stations: Any) -> dict[str, E.StationEntry]:
        return {s: dongsi() for s in stations}

    streams, topic = build("streams.env")
    agent: E.EnvAgent = streams.agents["streams.env"]
    sent = topic.sent
    consumer = SimpleNamespace(assignment=lambda: {TP("env.readings", 0), TP("clues", 1)})
    agent.streams = SimpleNamespace(app=SimpleNamespace(consumer=consumer))  # type: ignore
    agent.monitors = table  # type: ignore[assignment]
    agent.processor = proc
    agent.registry.lookup = lookup  # type: ignore[method-assign]
    assert asyncio.run(agent.tick_all(now)) == 1
    assert [(site, c.subject, c.kind) for site, c in sent] == [("gh:wx4g1h", "S1", "offline")]
    assert table.changelog == [(0, "S1")] and "S9" not in proc.slots
