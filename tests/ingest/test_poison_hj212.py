"""Poison pills over HJ 212 TCP (issue 20, cases 2, 4 and 10): the in-process server on the
session's Kafka and PostgreSQL. A NUL in a code sends that code to the dead-letter store
while the frame's valid codes are stored and answered; a bad-CRC frame with a NUL in its MN
is kept and the dead-letter writer (the real ``RejectedSink`` on PostgreSQL) stores it; a
frame dated year 9999 is refused. The valid frame sent right after each one is answered
9014 and arrives. A source over its reject budget leaves summary rows."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg_pool import AsyncConnectionPool

from contract.records import Reading, Rejected
from contract.settings import Settings
from ingest.hj212 import build
from ingest.hj212.codec import CHINA_TZ
from ingest.hj212.server import Limits
from storage.sinks import RejectedSink
from tests.ingest.test_hj212_server import _consume, _Logger, _register, _server
from tests.ingest.test_hj212_server import settings as settings  # noqa: F401 - fixture


def _frame(mn: str, values: dict[str, float], qn: str, when: datetime | None = None) -> bytes:
    when = when or (datetime.now(UTC) - timedelta(hours=1)).replace(minute=0, second=0,
                                                                     microsecond=0)
    reading = Reading(station=mn, period="hour", time=when, values=values)
    return build.data_frame(reading, st="22", pw="pw-ok", qn=qn, ack=True).encode()


def test_nul_codes_bad_mn_and_far_times_are_kept_and_later_frames_flow(
        settings: Settings, fresh_db: str) -> None:  # noqa: F811
    tag = uuid.uuid4().hex[:6].upper()
    mn = f"N{tag}"
    _register(settings.database_url or "", (mn, "pw-ok", None))
    nul_code = _frame(mn, {"a34004\x00": 5.0, "a21026": 2.0, "zzz999": 1.0}, "20261201000000001")
    good_1 = _frame(mn, {"a34004": 11.0}, "20261201000000002",
                    datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
                    - timedelta(hours=2))
    bad_mn = _frame(f"X\x00{tag}", {"a34004": 1.0}, "20261201000000003")
    bad_mn = bad_mn[:-6] + b"0000\r\n"  # a CRC that matches no algorithm: no password needed
    good_2 = _frame(mn, {"a34004": 12.0}, "20261201000000004",
                    datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
                    - timedelta(hours=3))
    far = _frame(mn, {"a34004": 1.0}, "20261201000000005",
                 datetime(9999, 12, 31, 23, tzinfo=CHINA_TZ))
    good_3 = _frame(mn, {"a34004": 13.0}, "20261201000000006",
                    datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
                    - timedelta(hours=4))

    async def main() -> tuple[list, list, list]:
        async with _server(settings) as (_, port):
            log = await _Logger.connect(port)
            answers = []
            for data in (nul_code, good_1, bad_mn, good_2, far, good_3):
                await log.send(data)
                answers.append(await log.answer())
            log.close()
        readings = await _consume(settings, "env.readings", lambda f: len(f) >= 4,
                                  lambda k, v: k == mn.encode())
        rejected = await _consume(settings, "ingest.rejected", lambda f: len(f) >= 3,
                                  lambda k, v: Rejected.loads(v).raw in (nul_code, bad_mn, far))
        return answers, readings, rejected

    answers, readings, rejected = asyncio.run(main())
    assert [a.cn for a in answers] == ["9014", "9014", "9011", "9014", "9011", "9014"]
    got = sorted((Reading.loads(v).values for v in readings), key=str)
    assert got == sorted([{"a21026": 2.0}, {"a34004": 11.0}, {"a34004": 12.0},
                          {"a34004": 13.0}], key=str)
    dead = {Rejected.loads(v).raw: Rejected.loads(v) for v in rejected}
    assert "NUL" in dead[nul_code].reason and "zzz999" in dead[nul_code].reason
    assert "CRC" in dead[bad_mn].reason and "out" in dead[far].reason

    async def store() -> None:  # the dead-letter writer takes them all (no NUL wedge)
        sink = RejectedSink()
        for v in rejected:
            sink.add(Rejected.loads(v))
        async with AsyncConnectionPool(fresh_db, min_size=1, max_size=1, open=False) as pool:
            await sink.flush(pool)

    asyncio.run(store())
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute("SELECT raw, context->>'mn' FROM rejected WHERE source ="
                            " 'hj212-tcp'").fetchall()
    assert {bytes(r[0]) for r in rows} == {nul_code, bad_mn, far}
    assert f"X\\x00{tag}" in {r[1] for r in rows}  # the NUL kept visible, escaped


def test_reject_budget_is_per_source_and_leaves_a_summary(settings: Settings) -> None:  # noqa: F811
    tag = uuid.uuid4().hex[:6].upper()
    mn = f"R{tag}"
    _register(settings.database_url or "", (mn, "pw-ok", None))
    garbage = [_frame(f"B{tag}{n:02d}", {"a34004": 1.0}, f"202612010000001{n:02d}")[:-6]
               + b"0000\r\n" for n in range(30)]  # bad CRC: refused, not answered 9014

    async def main() -> tuple[dict, list, list]:
        async with _server(settings, Limits(rejects_per_min=5)) as (server, port):
            logs = [await _Logger.connect(port) for _ in range(3)]  # one source, 3 connections
            for n, data in enumerate(garbage):
                await logs[n % 3].send(data)
                await asyncio.sleep(0.01)
            await logs[0].send(_frame(mn, {"a34004": 1.0}, "20261201000000007"))
            answer = await logs[0].answer()
            while answer.qn != "20261201000000007":  # the 9011s of its refused frames first
                answer = await logs[0].answer()
            assert answer.cn == "9014"
            for one in logs:
                one.close()
            await asyncio.sleep(0.5)
            stats = dict(server.stats)
        readings = await _consume(settings, "env.readings", lambda f: len(f) >= 1,
                                  lambda k, v: k == mn.encode())
        rejected = await _consume(settings, "ingest.rejected", lambda f: len(f) >= 7,
                                  lambda k, v: tag.encode() in Rejected.loads(v).raw
                                  or "refused inputs" in Rejected.loads(v).reason, timeout=15)
        return stats, readings, rejected

    stats, readings, rejected = asyncio.run(main())
    kept = [Rejected.loads(v) for v in rejected]
    assert len([r for r in kept if tag.encode() in r.raw]) == 5  # the budget, all connections
    assert stats["suppressed"] == 25
    summaries = [r for r in kept if "refused inputs" in r.reason]
    assert any("rate limit" in r.reason for r in summaries)
    assert sum(r.context.get("dropped", 0) for r in summaries) >= 1
    assert readings  # the valid frame after the flood still flows
