"""The env detector agent itself, run by Faust's ``agent.test_context()`` (no broker).

The other tests in this folder drive ``handle_batch`` with stand-in events; this one puts
real ``env.readings`` record bytes into the agent's stream, so the stream's batching
(``take_events``), the station registry read from a real PostgreSQL, the ``env-monitors``
table and the clue keys are what the worker runs. Only the last hop, the ``clues`` topic,
is captured instead of produced (the end-to-end tests cover it through Kafka).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from contract.records import Clue, Reading, ReadingBatch
from streams import app as app_module
from streams import env as E
from tests.streams.conftest import Build

CST = timezone(timedelta(hours=8))
DAY = datetime(2025, 3, 10, tzinfo=CST)


def batch(station: str, start: datetime, values: list[float]) -> bytes:
    readings = [Reading(station=station, time=start + timedelta(hours=i), period="hour",
                        values={"a34004": v}) for i, v in enumerate(values)]
    return ReadingBatch(station=station, readings=readings).model_dump_json().encode()


@pytest.fixture()
def agent_env(fresh_db: str,
              build: Build) -> Iterator[tuple[E.EnvAgent, list[tuple[str, Clue]]]]:
    """The agent on a fresh database with a registered station, and the clues it sends
    (through the real clue exit: routed and keyed by site)."""
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO departments (id, name) VALUES ('eco', 'Ecology')"
                     " ON CONFLICT DO NOTHING")
        conn.execute("INSERT INTO stations (id, owner_dept, st, interval_s, lon, lat)"
                     " VALUES ('S-AGENT', 'eco', '22', 3600, 116.417, 39.929)")
    streams, topic = build("streams.env", database_url=fresh_db)
    agent: E.EnvAgent = streams.agents["streams.env"]
    agent.processor = E.EnvProcessor(E.EnvConfig(evidence=False))
    streams.app.finalize()
    streams.app.flow_control.resume()
    yield agent, topic.sent


async def run_agent(env: E.EnvAgent, records: list[bytes], until: Any,
                    timeout: float = 20.0) -> None:
    async with env.agent.test_context() as agent:
        for raw in records:
            await agent.put(raw, key=b"S-AGENT")
        deadline = asyncio.get_running_loop().time() + timeout
        while not until():
            assert asyncio.get_running_loop().time() < deadline, "the agent sent nothing"
            await asyncio.sleep(0.05)
    await env.streams.close_pool()


def test_agent_opens_and_closes_one_exceedance_episode_keyed_by_the_registry_site(
        agent_env: tuple[E.EnvAgent, list[tuple[str, Clue]]]) -> None:
    env, sent = agent_env
    over = [110.0 + (h % 4) for h in range(24)]  # a day well over the 75 µg/m³ 24 h limit
    clean = [20.0] * 24
    records = [batch("S-AGENT", DAY, over[:12]), b"{not json",  # a bad record in between
               batch("S-AGENT", DAY + timedelta(hours=12), over[12:]),
               batch("S-AGENT", DAY + timedelta(days=1), clean),
               batch("S-AGENT", DAY + timedelta(days=2), clean[:1])]

    def closed() -> bool:
        return any(c.kind == "exceedance" and c.state == "closed" for _, c in sent)

    asyncio.run(run_agent(env, records, closed))
    exceedances = [(site, c) for site, c in sent if c.kind == "exceedance"]
    assert [c.state for _, c in exceedances] == ["open", "closed"]
    assert len({c.clue_id for _, c in exceedances}) == 1  # one episode, not one per reading
    site, opened = exceedances[0]
    assert opened.route is not None and site == opened.route["site"] and site.startswith("gh:")
    assert opened.location == {"type": "Point", "coordinates": [116.417, 39.929]}
    assert opened.metrics["window_mean"] == pytest.approx(sum(over) / 24, abs=1e-3)
    state = env.monitors.data["S-AGENT"]
    assert state["state"]["station"]["st"] == "22"  # registry info reached the monitor
    assert state["state"]["station"]["interval_s"] == 3600


def test_clues_not_sent_leave_the_state_unwritten_so_a_redelivery_raises_them_again(
        agent_env: tuple[E.EnvAgent, list[tuple[str, Clue]]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker dying before its clues reach Kafka must not keep a state that has seen the
    readings: the re-delivered batch would then be judged as old and its clues lost."""
    env, sent = agent_env
    over = [110.0 + (h % 4) for h in range(24)] + [20.0]
    record = batch("S-AGENT", DAY, over)
    captured = env.send_clues

    async def broker_gone(clues: list[Clue]) -> None:
        raise ConnectionError("broker gone")

    env.send_clues = broker_gone
    failures: list[str] = []
    monkeypatch.setattr(app_module.log, "exception", lambda msg, *a: failures.append(msg % a))
    asyncio.run(run_agent(env, [record], lambda: bool(failures)))
    assert "S-AGENT" not in env.monitors.data  # nothing of the batch was kept
    env.send_clues = captured
    env.processor = E.EnvProcessor(E.EnvConfig(evidence=False))  # a restart
    asyncio.run(run_agent(env, [record], lambda: any(c.kind == "exceedance" for _, c in sent)))
    assert [c.state for _, c in sent if c.kind == "exceedance"][:1] == ["open"]
    assert env.monitors.data["S-AGENT"]["state"]["station"]["id"] == "S-AGENT"


def test_an_unregistered_station_raises_one_clue_that_closes_once_it_is_registered(
        agent_env: tuple[E.EnvAgent, list[tuple[str, Clue]]], fresh_db: str) -> None:
    env, sent = agent_env

    def unregistered() -> list[Clue]:
        return [c for _, c in sent if c.kind == "unregistered_source"]

    records = [batch("S-NEW", DAY, [20.0] * 6), batch("S-NEW", DAY + timedelta(hours=6),
                                                       [21.0] * 6)]
    asyncio.run(run_agent(env, records, lambda: len(unregistered()) == 1))
    opened = unregistered()[0]
    assert (opened.subject, opened.state) == ("S-NEW", "open")
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO stations (id, owner_dept, st, interval_s, lon, lat)"
                     " VALUES ('S-NEW', 'eco', '22', 3600, 116.4, 39.9)")
    env.registry.forget()  # what the registry watch does on the NOTIFY of a change
    later = [batch("S-NEW", DAY + timedelta(hours=12), [22.0] * 6)]
    asyncio.run(run_agent(env, later, lambda: len(unregistered()) == 2))
    assert [c.state for c in unregistered()] == ["open", "closed"]  # one episode, not one each
    assert len({c.clue_id for c in unregistered()}) == 1
