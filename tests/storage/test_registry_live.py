"""Registry changes reach a running process, and unregistered stations are counted.

On a real PostgreSQL: a ``RegistryListener`` hears the NOTIFY that a registry change sends
on commit (not before, not on rollback), reconnects when its connection is killed (and then
asks for a full reload), and readers see the active rows only. Readings of a station
the registry does not know are stored and counted in ``unregistered_sources``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg

from contract.records import Reading
from storage.db import open_pool
from storage.registry_listen import ALL, CHANNEL, RegistryListener
from storage.resources import create, retire
from storage.sinks import ReadingsSink
from storage.stations import station_rows
from storage.unregistered import unregistered_sources

ADMIN = {"id": "root", "department": "center", "role": "admin"}


async def _next(queue: asyncio.Queue, timeout: float = 10.0) -> str:
    return await asyncio.wait_for(queue.get(), timeout)


def test_notify_reaches_the_listener_on_commit_and_after_a_reconnect(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO departments (id, name) VALUES ('center', 'Center')")

    async def main() -> None:
        heard: asyncio.Queue[str] = asyncio.Queue()
        pool = await open_pool(fresh_db, max_size=2)
        try:
            async with RegistryListener(fresh_db, heard.put_nowait, max_backoff_s=0.5) as lst:
                assert await _next(heard) == ALL  # on connect: reload everything
                made = await create(pool, "station", "S1", {"lon": 116.4, "lat": 39.9,
                                                            "owner_dept": "center"}, ADMIN)
                assert made is not None and await _next(heard) == "station"
                assert [tuple(r) for r in await station_rows(pool, ["S1"])] == [
                    ("S1", None, None, None, 116.4, 39.9, {})]

                async with await psycopg.AsyncConnection.connect(fresh_db) as other:
                    await other.execute("SELECT pg_notify(%s, 'camera')", (CHANNEL,))
                    await asyncio.sleep(0.5)
                    assert heard.empty()  # not before the commit
                    await other.rollback()
                    await asyncio.sleep(0.5)
                    assert heard.empty()  # and never after a rollback
                    await other.execute("SELECT pg_notify(%s, 'zone')", (CHANNEL,))
                    await other.commit()
                assert await _next(heard) == "zone"

                # the database drops the listener's connection: it comes back by itself
                async with await psycopg.AsyncConnection.connect(fresh_db,
                                                                 autocommit=True) as admin:
                    await admin.execute("SELECT pg_terminate_backend(pid) FROM"
                                        " pg_stat_activity WHERE query LIKE %s",
                                        (f"LISTEN %{CHANNEL}%",))
                assert await _next(heard) == ALL
                await retire(pool, "station", "S1", ADMIN)
                assert await _next(heard) == "station"
                assert await station_rows(pool, ["S1"]) == []  # retired: not live
                assert lst.listening.is_set()
        finally:
            await pool.close()

    asyncio.run(main())


def test_readings_of_unknown_stations_are_kept_and_counted(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO departments (id, name) VALUES ('center', 'Center')")
        conn.execute("INSERT INTO stations (id, owner_dept, lon, lat, status) VALUES"
                     " ('S1', 'center', 1, 1, 'active'), ('OLD', 'center', 1, 1, 'retired')")
    t0 = datetime(2026, 3, 1, tzinfo=UTC)

    async def main() -> list[dict]:
        pool = await open_pool(fresh_db, max_size=2)
        try:
            # two batches, as the sink flushes, then the second again (a redelivery after a
            # crash: at-least-once), which stores nothing new and counts nothing twice
            for hours in (range(0, 3), range(3, 5), range(3, 5)):
                sink = ReadingsSink()
                for h in hours:
                    for station, source in (("S1", "mqtt"), ("X9", "hj212-tcp"),
                                            ("OLD", "mqtt")):
                        sink.add(Reading(station=station, time=t0 + timedelta(hours=h),
                                         values={"a34004": 10.0 + h, "a21026": 2.0},
                                         source=source))
                await sink.flush(pool)  # counts them in the same transaction
            return await unregistered_sources(pool)
        finally:
            await pool.close()

    found = asyncio.run(main())
    assert [(u["id"], u["first_seen"], u["last_seen"], u["readings"], u["last_source"])
            for u in sorted(found, key=lambda u: u["id"])] == [
        ("OLD", t0, t0 + timedelta(hours=4), 10, "mqtt"),
        ("X9", t0, t0 + timedelta(hours=4), 10, "hj212-tcp")]
    with psycopg.connect(fresh_db) as conn:  # nothing lost, nothing invented
        assert conn.execute("SELECT station, count(*) FROM readings GROUP BY station"
                            " ORDER BY station").fetchall() == [("OLD", 10), ("S1", 10),
                                                                ("X9", 10)]
        assert conn.execute("SELECT count(*) FROM stations WHERE id = 'X9'").fetchone() == (0,)
