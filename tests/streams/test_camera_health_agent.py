"""The camera health agent, run by Faust's ``agent.test_context()`` (no broker).

Real ``camera.health`` record bytes go into the agent's stream, so the stream's batching
(``take_events``), the ``camera-signal`` table, the camera registry and the
``camera_health`` and ``rejected`` tables of a real PostgreSQL are what the worker runs.
Only the last hop, the clue exit's send to the ``clues`` topic, is captured instead of
produced (the end-to-end tests cover it through Kafka).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from contract.clue import Clue
from contract.records import CameraHealth
from contract.settings import Settings
from streams.app import Streams, build_streams
from streams.camera_health import CameraHealthAgent

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
CAMERA = "CAM-AGENT"
POINT = {"type": "Point", "coordinates": [121.42, 28.65]}


@dataclass
class RecordingExit:
    """Stands in for ``streams.clue_exit``: records what it is given, or fails like a
    broker that is away."""

    sent: list[Clue] = field(default_factory=list)
    broken: bool = False

    async def publish(self, clues: Sequence[Clue]) -> list[Clue]:
        if self.broken:
            raise ConnectionError("broker gone")
        self.sent.extend(clues)
        return list(clues)


@dataclass
class Harness:
    streams: Streams
    agent: CameraHealthAgent
    exit: RecordingExit
    database_url: str


@pytest.fixture()
def harness(fresh_db: str) -> Iterator[Harness]:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO cameras (id, url, lon, lat) VALUES (%s, %s, %s, %s)",
                     (CAMERA, "rtsp://127.0.0.1:1/none", 121.42, 28.65))
    settings = Settings(database_url=fresh_db, partitions=2, sink_batch_seconds=0.1)
    streams = build_streams(settings, modules=("streams.camera_health",))
    streams.clue_exit = RecordingExit()  # type: ignore[assignment]
    streams.app.finalize()
    streams.app.flow_control.resume()
    agent = streams.agents["streams.camera_health"]
    yield Harness(streams, agent, streams.clue_exit, fresh_db)  # type: ignore[arg-type]


def health(t: float, online: bool, last_frame: float | None, *, transition: bool = False,
           detail: str = "periodic") -> bytes:
    frame = None if last_frame is None else T0 + timedelta(seconds=last_frame)
    return CameraHealth(camera=CAMERA, time=T0 + timedelta(seconds=t), online=online,
                        fps=10.0 if online else 0.0, last_frame=frame, detail=detail,
                        transition=transition).dumps()


def outage() -> list[bytes]:
    """Online, a heartbeat, frames stop at 99.5 s, offline heartbeats every 5 s, back at 200."""
    records = [health(0, True, None, transition=True, detail="online"),
               health(60, True, 59.9),
               health(104.5, False, 99.5, transition=True, detail="stream ended")]
    records += [health(t, False, 99.5, detail="cannot open stream") for t in range(105, 200, 5)]
    return records + [health(200, True, 199.8, transition=True, detail="online")]


def run_agent(h: Harness, records: list[bytes], until: Callable[[], bool],
              timeout: float = 20.0) -> None:
    async def scenario() -> None:
        async with h.agent.agent.test_context() as agent:
            for raw in records:
                await agent.put(raw, key=CAMERA.encode())
            deadline = asyncio.get_running_loop().time() + timeout
            while not until():
                assert asyncio.get_running_loop().time() < deadline, "the agent did not finish"
                await asyncio.sleep(0.05)
        await h.streams.close_pool()

    asyncio.run(scenario())


def rows(database_url: str, query: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query).fetchall()


def test_an_outage_becomes_one_signal_loss_episode_and_health_rows(harness: Harness) -> None:
    h = harness
    records = outage()
    records.insert(3, b"{not json")  # a bad record in between

    def done() -> bool:
        state = h.agent.table.data.get(CAMERA)
        return bool(state and state["signal"]["time"] == (T0 + timedelta(seconds=200))
                    .isoformat())

    run_agent(h, records, done)
    signal = [c for c in h.exit.sent if c.kind == "signal_loss"]
    assert [c.state for c in signal] == ["open", "update", "update", "closed"]
    assert len({c.clue_id for c in signal}) == 1
    opened, closed = signal[0], signal[-1]
    assert opened.start == T0 + timedelta(seconds=99.5)  # the last frame
    assert opened.time == T0 + timedelta(seconds=130)
    assert (opened.modality, opened.subject, opened.rule) == \
        ("video", CAMERA, "camera/signal_loss")
    assert opened.location == POINT  # the registry's position, for routing
    assert closed.end == T0 + timedelta(seconds=200)
    # transitions, and heartbeats thinned to about one a minute
    health_rows = rows(h.database_url, "SELECT time, online, fps, detail FROM camera_health"
                                       " ORDER BY time")
    assert [(r[0] - T0).total_seconds() for r in health_rows] == [0, 60, 104.5, 155, 200]
    assert [r[1] for r in health_rows] == [True, True, False, False, True]
    assert health_rows[2][3] == "stream ended" and health_rows[1][2] == 10.0
    dead = rows(h.database_url, "SELECT source, reason, raw FROM rejected")
    assert len(dead) == 1 and dead[0][0] == "stream:camera.health"
    assert bytes(dead[0][2]) == b"{not json"
    state = h.agent.table.data[CAMERA]
    assert state["signal"]["online"] is True and state["signal"]["loss_start"] is None


def test_clues_not_sent_leave_the_state_unwritten_so_a_redelivery_sends_them(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that cannot hand its clues to the broker must not keep a state that has seen
    the records: the re-delivered batch would be judged as old and the clue lost."""
    h = harness
    records = outage()[:9]  # up to 130 s: the episode opens
    h.exit.broken = True
    failures: list[str] = []
    monkeypatch.setattr("streams.camera_health.log.exception",
                        lambda msg, *a: failures.append(msg % a))
    run_agent(h, records, lambda: bool(failures))
    kept = h.agent.table.data.get(CAMERA)
    assert h.exit.sent == [] and (kept is None or kept["signal"]["loss_start"] is None)
    h.exit.broken = False
    run_agent(h, records, lambda: CAMERA in h.agent.table.data)
    opened = [c for c in h.exit.sent if c.kind == "signal_loss"]
    assert [c.state for c in opened] == ["open"]
    assert opened[0].start == T0 + timedelta(seconds=99.5)
    # the same batch once more (the state has it now): nothing twice
    until = time.monotonic() + 1.5
    run_agent(h, records, lambda: time.monotonic() > until)
    assert len([c for c in h.exit.sent if c.kind == "signal_loss"]) == 1
