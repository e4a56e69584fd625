"""The power agents under Faust's ``agent.test_context()`` on a real PostgreSQL registry:
readings of registered meters (and only those) are re-keyed by entity, and the entity's
monitor turns a fan switched off under production into one routed clue episode."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from contract.records import PowerSamples, Reading, ReadingBatch
from storage.registry import Actor, import_folder, load_router
from streams import power as P
from tests.storage.test_registry_power import with_power
from tests.streams.conftest import Build

T0 = datetime(2026, 5, 20, 6, 0, tzinfo=UTC)


class Captured:
    """Stands in for ``power.samples``: what the route agent sends, as the broker holds it."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, key: bytes, value: bytes) -> asyncio.Future[None]:
        self.sent.append((key, value))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def batch(meter: str, code: str, values: list[float], offset_s: int = 0,
          first: int = 0) -> bytes:
    readings = [Reading(station=meter, time=T0 + timedelta(minutes=first + i, seconds=offset_s),
                        period="minute", values={code: v}) for i, v in enumerate(values)]
    return ReadingBatch(station=meter, readings=readings).model_dump_json().encode()


@pytest.fixture()
def power(fresh_db: str, tmp_path: Path, build: Build) -> tuple[P.PowerAgent, list, Captured]:
    with psycopg.connect(fresh_db) as conn:
        import_folder(conn, with_power(tmp_path / "f"), default_owner="provincial-monitoring-"
                      "center", actor=Actor("t", "provincial-monitoring-center"))
        router = load_router(conn)
    streams, topic = build("streams.power", database_url=fresh_db)
    streams.set_router(router)
    agent: P.PowerAgent = streams.agents["streams.power"]
    captured = Captured()
    agent.samples_topic = captured
    streams.app.finalize()
    streams.app.flow_control.resume()
    return agent, topic.sent, captured


async def feed(target: Any, records: list[tuple[bytes, bytes]], until: Any) -> None:
    async with target.test_context() as agent:
        for key, raw in records:
            await agent.put(raw, key=key)
        deadline = asyncio.get_running_loop().time() + 20
        while not until():
            assert asyncio.get_running_loop().time() < deadline, "nothing came out"
            await asyncio.sleep(0.05)


def test_a_fan_off_under_production_is_one_routed_episode(
        power: tuple[P.PowerAgent, list, Captured]) -> None:
    agent, sent, captured = power
    mill = [600.0] * 90
    fan = [60.0] * 30 + [0.0] * 40 + [60.0] * 20  # t1 off for 40 minutes
    records = [(b"PM-01", batch("PM-01", "p1", mill[:45])),
               (b"LX-0001", batch("LX-0001", "a34004", [30.0] * 5)),  # not a meter
               (b"PM-01", batch("PM-01", "t1", fan[:45], 20)),
               (b"PM-01", batch("PM-01", "p1", mill[45:], first=45)),
               (b"PM-01", batch("PM-01", "t1", fan[45:], 20, first=45)),
               (b"PM-01", b"{broken")]

    def routed() -> list[tuple[bytes, PowerSamples]]:
        return [(k, PowerSamples.model_validate_json(v)) for k, v in captured.sent]

    async def both() -> None:
        await feed(agent.route_agent, records,
                   lambda: sum(len(rec.readings) for _, rec in routed()) == 180)
        agent.streams.app.flow_control.resume()  # the first test context paused it
        await feed(agent.monitor_agent, [(k, rec.dumps()) for k, rec in routed()],
                   lambda: any(c.state == "closed" for _, c in sent))
        await agent.streams.close_pool()

    asyncio.run(both())
    keyed = routed()
    assert {k for k, _ in keyed} == {b"E-1"}  # re-keyed by entity
    assert all(r.station == "PM-01" for _, rec in keyed for r in rec.readings)
    off = [(site, c) for site, c in sent if c.kind == "treatment_off"]
    assert [c.state for _, c in off] == ["open", "closed"]
    site, clue = off[-1]
    assert clue.modality == "power" and clue.subject == "E-1"
    assert clue.route is not None and site == "es-370102-0001"  # the entity's site zone
    assert clue.route["department"]
    assert clue.evidence and clue.evidence[0].content.startswith(b"\x89PNG")
    assert agent.table.data["E-1"]["state"]["open"]["treatment_off"] == {}
