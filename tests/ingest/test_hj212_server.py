"""The HJ 212 TCP server in-process, on the real Kafka broker and PostgreSQL of the session:
simulated loggers (asyncio streams) send frames whole, byte by byte, two per write, with
garbage between them; answers are parsed with parse_frame (QN echoed); readings and
rejected input are read back from the Kafka topics. The splitter is also tested alone."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer

from contract.input_rules import standard_codes
from contract.records import Reading, Rejected
from contract.settings import Settings
from ingest.hj212 import Frame, build, parse_frame
from ingest.hj212.framing import FrameSplitter
from ingest.hj212.server import Hj212Server, Limits, StationRegistry
from ingest.publisher import Publisher
from offsite.services import EmbeddedServices

CST = timezone(timedelta(hours=8))


def _frame(mn: str, hour: int, *, pw: str = "pw-ok", qn: str | None = None, ack: bool = True,
           values: dict[str, float] | None = None) -> bytes:
    reading = Reading(station=mn, period="hour", time=datetime(2026, 3, 1, hour, tzinfo=CST),
                      values=values or {"a34004": 10.0 + hour, "a21026": 2.5})
    return build.data_frame(reading, st="22", pw=pw, qn=qn or f"2026030100{hour:02d}00000",
                            ack=ack).encode()


# ---- the splitter alone ---------------------------------------------------------------

def test_splitter_byte_by_byte_garbage_truncation_and_no_line_ending() -> None:
    f1, f2 = _frame("S1", 1), _frame("S1", 2)
    stream = b"\r\nnoise#" + f1 + b"junk##zz" + f2 + f1[:25] + f2 + f1.rstrip(b"\r\n") + f2
    splitter = FrameSplitter()
    pieces = [p for byte in stream for p in splitter.feed(bytes([byte]))]
    assert pieces == [("garbage", b"\r\nnoise#"), ("frame", f1), ("garbage", b"junk##zz"),
                      ("frame", f2), ("garbage", f1[:25]), ("frame", f2),
                      ("frame", f1.rstrip(b"\r\n")), ("frame", f2)]
    assert FrameSplitter().feed(f1 + f2) == [("frame", f1), ("frame", f2)]
    tail = FrameSplitter()
    assert tail.feed(f1.rstrip(b"\r\n")) == [] and tail.pending_complete
    assert tail.flush_pending() == [("frame", f1.rstrip(b"\r\n"))]


def test_splitter_caps_its_buffer() -> None:
    splitter = FrameSplitter(max_frame=1024, max_garbage=100)
    out = splitter.feed(b"##0999" + b"x" * 5000)
    assert len(splitter) < 1024 and all(kind == "garbage" for kind, _ in out)
    assert all(len(raw) <= 100 for _, raw in out) and splitter.garbage_bytes > 4000
    f1 = _frame("S1", 1)
    assert splitter.feed(f1) == [("frame", f1)]  # resynchronised
    assert len(FrameSplitter().feed(b"x" * 100_000)) == 1  # one run, its first 4 KiB kept


# ---- the server on real services ---------------------------------------------------------

@pytest.fixture(scope="module")
def settings(services: EmbeddedServices, migrated_db: str) -> Settings:
    # 2 partitions like the e2e flow: whoever declares the topics first decides for all
    return Settings(broker_url=services.broker_url, database_url=migrated_db, partitions=2)


def _register(database_url: str, *stations: tuple[str, str | None, int | None]) -> None:
    with psycopg.connect(database_url) as conn:
        for mn, pw, interval in stations:
            conn.execute("INSERT INTO stations (id, password, st, interval_s) VALUES"
                         " (%s, %s, '22', %s) ON CONFLICT (id) DO UPDATE SET"
                         " password = EXCLUDED.password, interval_s = EXCLUDED.interval_s",
                         (mn, pw, interval))


@contextlib.asynccontextmanager
async def _server(settings: Settings, limits: Limits | None = None,
                  allow_unknown: bool = False) -> AsyncIterator[tuple[Hj212Server, int]]:
    publisher = Publisher(settings, source="hj212-tcp")
    await publisher.start()
    server = Hj212Server(publisher, StationRegistry(settings.database_url,
                                                    allow_unknown=allow_unknown), limits)
    port = await server.start()
    try:
        yield server, port
    finally:
        await server.stop()
        await publisher.stop()


class _Logger:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> _Logger:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, data: bytes, byte_by_byte: bool = False) -> None:
        for chunk in ([data[i:i + 1] for i in range(len(data))] if byte_by_byte else [data]):
            self.writer.write(chunk)
            await self.writer.drain()

    async def answer(self, timeout: float = 15) -> Frame:
        return parse_frame(await asyncio.wait_for(self.reader.readline(), timeout))

    def close(self) -> None:
        self.writer.close()


async def _consume(settings: Settings, topic: str, done: Callable[[list], bool],
                   keep: Callable[[bytes | None, bytes], bool], timeout: float = 30) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: list = []
    try:
        deadline = time.monotonic() + timeout
        while not done(found) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            found += [m.value for msgs in batches.values() for m in msgs if keep(m.key, m.value)]
    finally:
        await consumer.stop()
    return found


def test_many_loggers_framing_and_9014_after_kafka(settings: Settings) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    mns = [f"T{tag}{n}" for n in range(6)]
    _register(settings.database_url or "", *((mn, "pw-ok", 60) for mn in mns))

    async def one_logger(port: int, n: int, mn: str) -> list[Frame]:
        log = await _Logger.connect(port)
        f1, f2, f3 = (_frame(mn, h, qn=f"20260301{h:02d}0000{n:03d}") for h in (1, 2, 3))
        await log.send(f1, byte_by_byte=(n % 2 == 0))
        answers = [await log.answer()]
        await log.send(b"\x00\xffgarbage\r\n" + f2 + f3)  # garbage, then two frames at once
        answers += [await log.answer(), await log.answer()]
        log.close()
        return answers

    async def main() -> tuple[list[list[Frame]], list]:
        async with _server(settings) as (server, port):
            answers = await asyncio.gather(*(one_logger(port, n, mn) for n, mn in enumerate(mns)))
            assert server.stats["readings"] == 18
        readings = await _consume(settings, "env.readings", lambda f: len(f) >= 18,
                                  lambda k, v: (k or b"").decode() in mns)
        return answers, readings

    answers, readings = asyncio.run(main())
    for n, (mn, got) in enumerate(zip(mns, answers, strict=True)):
        assert [a.cn for a in got] == ["9014"] * 3 and all(a.ok and a.mn == mn for a in got)
        assert [a.qn for a in got] == [f"20260301{h:02d}0000{n:03d}" for h in (1, 2, 3)]
    decoded = [Reading.loads(v) for v in readings]
    assert len(decoded) == 18 and {r.source for r in decoded} == {"hj212-tcp"}
    assert {(r.station, r.time, r.values["a34004"]) for r in decoded} == {
        (mn, datetime(2026, 3, 1, h, tzinfo=CST), 10.0 + h) for mn in mns for h in (1, 2, 3)}
    assert {r.interval_s for r in decoded} == {60} and {r.period for r in decoded} == {"hour"}


def test_wrong_pw_unknown_mn_bad_crc_get_9011_and_are_kept(settings: Settings) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    mn, stranger = f"P{tag}", f"U{tag}"
    _register(settings.database_url or "", (mn, "secret", None))
    wrong_pw = _frame(mn, 4, pw="guess", qn="20260301040000001")
    unknown = _frame(stranger, 4, qn="20260301040000002")
    good = _frame(mn, 4, pw="secret", qn="20260301040000003")
    bad_crc = good[:-6] + b"0000\r\n"
    no_ack = _frame(mn, 5, pw="guess", ack=False)

    async def main() -> tuple[list[Frame], list]:
        async with _server(settings) as (_, port):
            log = await _Logger.connect(port)
            answers = []
            for data in (wrong_pw, unknown, bad_crc, no_ack, good):
                await log.send(data)
                if data is not no_ack:
                    answers.append(await log.answer())
            log.close()
        raws = {wrong_pw, unknown, bad_crc, no_ack}
        rejected = await _consume(settings, "ingest.rejected", lambda f: len(f) >= 4,
                                  lambda k, v: Rejected.loads(v).raw in raws)
        return answers, rejected

    answers, rejected = asyncio.run(main())
    assert [(a.cn, a.extra.get("QnRtn"), a.qn) for a in answers] == [
        ("9011", "3", "20260301040000001"), ("9011", "4", "20260301040000002"),
        ("9011", "9", "20260301040000003"), ("9014", None, "20260301040000003")]
    reasons = {Rejected.loads(v).raw: Rejected.loads(v).reason for v in rejected}
    assert "wrong PW" in reasons[wrong_pw] and "wrong PW" in reasons[no_ack]
    assert "unknown MN" in reasons[unknown] and "CRC" in reasons[bad_crc]
    assert {Rejected.loads(v).source for v in rejected} == {"hj212-tcp"}


def test_sub_packets_are_reassembled_and_unknown_allowed(settings: Settings) -> None:
    mn = f"Q{uuid.uuid4().hex[:6].upper()}"  # not registered: --allow-unknown
    # 60 codes HJ 212-2017 defines (the input rules refuse made-up ones)
    values = {code: float(n) for n, code in enumerate(sorted(
        c for c in standard_codes() if c.startswith("a"))[:60])}
    reading = Reading(station=mn, period="hour", time=datetime(2026, 3, 1, 6, tzinfo=CST),
                      values=values)
    packets = build.data_frames(reading, pw="any", qn="20260301060000000", ack=True)
    assert len(packets) >= 2

    async def main() -> tuple[list[Frame], list]:
        async with _server(settings, allow_unknown=True) as (_, port):
            log = await _Logger.connect(port)
            answers = []
            for packet in packets:
                await log.send(packet.encode())
                answers.append(await log.answer())
            log.close()
        found = await _consume(settings, "env.readings", bool, lambda k, v: k == mn.encode())
        return answers, found

    answers, found = asyncio.run(main())
    assert [a.cn for a in answers] == ["9014"] * len(packets)
    assert len(found) == 1 and Reading.loads(found[0]).values == values


def test_logger_restart_becomes_a_restart_event(settings: Settings) -> None:
    mn = f"R{uuid.uuid4().hex[:6].upper()}"
    seg = build.segment(cn="2081", mn=mn, st="31", pw="any", qn="20260301070000000",
                        flag=build.flag_value("2017", ack=True),
                        cp=["DataTime=20260301070000", "RestartTime=20260301065500"])
    frame = build.encode_frame(seg).encode()

    async def main() -> tuple[Frame, list]:
        async with _server(settings, allow_unknown=True) as (_, port):
            log = await _Logger.connect(port)
            await log.send(frame)
            answer = await log.answer()
            log.close()
        found = await _consume(settings, "env.readings", bool, lambda k, v: k == mn.encode())
        return answer, found

    answer, found = asyncio.run(main())
    assert answer.cn == "9014"
    event = Reading.loads(found[0])
    assert event.event == "restart" and event.values == {}
    assert event.time == datetime(2026, 3, 1, 6, 55, tzinfo=CST)


def test_flooding_logger_does_not_slow_others_and_idle_ones_are_closed(
        settings: Settings) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    good_mn, flood_mn = f"G{tag}", f"F{tag}"
    _register(settings.database_url or "", (good_mn, "pw-ok", None), (flood_mn, "pw-ok", None))
    limits = Limits(idle_timeout=1.0, frames_per_s=50, frame_burst=50, rejects_per_min=10)

    async def flood(log: _Logger) -> None:
        while True:  # as fast as the server takes it: the TCP window is its only brake
            await log.send(b"noise" * 12_000 + b"##9999" + _frame(flood_mn, 1, ack=False) * 20)

    async def main() -> tuple[list[float], bytes, dict, float, dict]:
        async with _server(settings, limits) as (server, port):
            flooder_log = await _Logger.connect(port)
            flooder = asyncio.create_task(flood(flooder_log))
            started_flood = time.perf_counter()
            await asyncio.sleep(0.5)
            log = await _Logger.connect(port)
            latencies = []
            for h in range(10):
                started = time.perf_counter()
                await log.send(_frame(good_mn, h, qn=f"20260301{h:02d}0000777"))
                assert (await log.answer()).cn == "9014"
                latencies.append(time.perf_counter() - started)
            flood_s = time.perf_counter() - started_flood
            stats = dict(server.stats)
            flooder.cancel()
            flooder_log.writer.transport.abort()
            idle = await _Logger.connect(port)
            closed = await asyncio.wait_for(idle.reader.read(), 5)  # EOF after ~1 s silence
            return latencies, closed, stats, flood_s, dict(server.stats)

    latencies, closed, stats, flood_s, final = asyncio.run(main())
    print(f"latency with a flooder: max {max(latencies) * 1000:.1f} ms, "
          f"mean {sum(latencies) / len(latencies) * 1000:.1f} ms; {stats} in {flood_s:.2f} s")
    assert max(latencies) < 1.0
    assert stats["frames"] <= 10 + 50 + 50 * (flood_s + 0.5)  # the flooder was throttled
    assert closed == b""
    assert final["suppressed"] > 0 and final["rejected"] <= 12  # the reject budget held


class _HeldPublisher:
    """Stands in for Publisher: each send's acknowledgement is released by the test."""

    def __init__(self) -> None:
        self.acks: list[asyncio.Future] = []
        self.rejected: list[bytes] = []

    async def send(self, _topic: object, _key: str, _record: object) -> asyncio.Future:
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]

    async def reject(self, raw: bytes, _reason: str, **_context: object) -> None:
        self.rejected.append(raw)


def test_9014_waits_for_the_kafka_ack_and_a_failed_publish_is_never_answered() -> None:
    async def main() -> None:
        publisher = _HeldPublisher()
        server = Hj212Server(publisher, StationRegistry(None, allow_unknown=True))  # type: ignore[arg-type]
        port = await server.start()
        log = await _Logger.connect(port)
        await log.send(_frame("H1", 1, qn="20260301010000001") + _frame("H1", 2))
        with pytest.raises(TimeoutError):  # read, queued to Kafka, not acknowledged yet
            await log.answer(timeout=0.5)
        assert len(publisher.acks) == 2
        publisher.acks[0].set_result(None)
        assert (await log.answer()).qn == "20260301010000001"
        publisher.acks[1].set_exception(RuntimeError("broker gone"))
        assert await asyncio.wait_for(log.reader.read(), 5) == b""  # closed, unanswered
        await server.stop()

    asyncio.run(main())
