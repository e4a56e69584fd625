"""A batch with rows the database can never take (issue 20, case 2: a NUL in a code, a lone
surrogate, a NUL in a dead letter's reason and context) is written without them: the batch
is bisected, the bad rows go to ``rejected`` with their repr and the reason, and every valid
row -- also the one right after a bad one -- is stored. An outage still raises."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from contract.records import Reading, Rejected
from storage.sinks import ReadingsSink, RejectedSink


def _reading(station: str, code: str, value: float, minute: int) -> Reading:
    return Reading(station=station, time=datetime(2026, 11, 25, 8, minute, tzinfo=UTC),
                   values={code: value})


def test_bad_rows_are_isolated_and_the_rest_is_written(fresh_db: str) -> None:
    sink, dead = ReadingsSink(), RejectedSink()
    for m in range(40):
        sink.add(_reading("SINK-1", "a34004", float(m), m))
        if m in (3, 17):
            sink.add(_reading("SINK-1", "a21026\x00", 1.0, m))  # PostgreSQL refuses NUL
        if m == 30:
            sink.add(_reading("SINK-1", "a21\udc80", 1.0, m))  # not encodable as UTF-8
    dead.add(Rejected(time=datetime.now(UTC), source="hj212-tcp", reason="bad MN 'X\x00'",
                      raw=b"##0000MN=X\x00", context={"mn": "X\x00"}))
    dead.add(Rejected(time=datetime.now(UTC), source="mqtt", reason="fine", raw=b"{}"))

    async def main() -> None:
        async with AsyncConnectionPool(fresh_db, min_size=1, max_size=2, open=False) as pool:
            await sink.flush(pool)
            await dead.flush(pool)

    asyncio.run(main())
    with psycopg.connect(fresh_db) as conn:
        stored = conn.execute("SELECT value FROM readings WHERE station = 'SINK-1'"
                              " ORDER BY time").fetchall()
        kept = conn.execute("SELECT source, reason, raw FROM rejected WHERE source LIKE"
                            " 'sink:%' ORDER BY reason").fetchall()
        plain = conn.execute("SELECT reason FROM rejected WHERE source = 'mqtt'").fetchall()
    assert [v for (v,) in stored] == [float(m) for m in range(40)]
    readings_kept = [k for k in kept if k[0] == "sink:readings"]
    assert len(readings_kept) == 3
    assert all(b"SINK-1" in bytes(raw) for _, _, raw in readings_kept)
    assert any("UnicodeEncodeError" in reason for _, reason, _ in readings_kept)
    assert any(r[0] == "sink:rejected" and b"hj212-tcp" in bytes(r[2]) for r in kept)
    assert plain == [("fine",)]  # the valid dead letter beside the bad one


def test_an_outage_is_not_taken_for_bad_rows() -> None:
    sink = ReadingsSink()
    sink.add(_reading("SINK-2", "a34004", 1.0, 0))

    async def main() -> None:
        async with AsyncConnectionPool("postgresql://127.0.0.1:1/none", min_size=1,
                                       open=False, timeout=2) as pool:
            await sink.flush(pool)

    with pytest.raises(Exception) as caught:
        asyncio.run(main())
    from contract.input_rules import classify

    assert classify(caught.value) == "retryable" and len(sink) == 1


def test_give_up_keeps_the_batch_in_rejected(fresh_db: str) -> None:
    """What a caller does when its bounded retries of an unknown error run out."""
    sink = ReadingsSink()
    sink.add(_reading("SINK-3", "a34004", 1.0, 0))

    async def main() -> int:
        async with AsyncConnectionPool(fresh_db, min_size=1, max_size=1, open=False) as pool:
            return await sink.give_up(pool, RuntimeError("retries ran out"))

    assert asyncio.run(main()) == 1 and len(sink) == 0
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute("SELECT reason, raw FROM rejected WHERE source = 'sink:readings'"
                            ).fetchall()
    assert len(rows) == 1 and "retries ran out" in rows[0][0] and b"SINK-3" in bytes(rows[0][1])
