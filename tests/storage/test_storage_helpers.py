"""The storage functions that took over SQL once written in api/, ingest/ and offsite/.

Each runs against a real, migrated PostgreSQL and is checked the way its caller uses it:
the demo's camera registration and row counts, the embedded cluster's database creation,
the HJ 212 server's station credentials, and the API's LISTEN and task sequence.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from offsite.services import EmbeddedServices
from storage.db import open_pool
from storage.migrate import ensure_database
from storage.notify import CLUES_CHANNEL, listen
from storage.queries import row_counts
from storage.stations import Station, load_credentials, station_rows
from storage.tasks import last_event_seq


def test_ensure_database_creates_once(services: EmbeddedServices) -> None:
    name = f"t_ens_{uuid.uuid4().hex[:8]}"
    admin = services.database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        try:
            assert ensure_database(conn, name) is True
            assert ensure_database(conn, name) is False
            assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                (name,)).fetchone() == (1,)
        finally:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_row_counts(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        assert row_counts(conn) == {"readings": 0, "rejected": 0, "clues": 0}
        conn.execute("INSERT INTO readings (time, station, code, period, value, source)"
                     " VALUES (now(), 'S1', 'a21026', '1h', 5.0, 'test')")
        assert row_counts(conn, ("readings",)) == {"readings": 1}


def test_station_credentials(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO stations (id, password, st, interval_s) VALUES"
                     " ('MN-1', 'pw1', '31', 3600), ('MN-2', NULL, NULL, NULL)")
    got = asyncio.run(load_credentials(fresh_db))
    assert got == {"MN-1": Station("pw1", "31", 3600), "MN-2": Station(None, None, None)}

    async def rows() -> list:
        pool = await open_pool(fresh_db)
        try:
            return await station_rows(pool, ["MN-1", "NOT-THERE"])
        finally:
            await pool.close()

    assert [tuple(r) for r in asyncio.run(rows())] == [
        ("MN-1", "31", None, 3600, None, None, {})]


def test_listen_gets_notices_and_task_seq_starts_at_zero(fresh_db: str) -> None:
    async def main() -> tuple[str, int]:
        async with listen(fresh_db, CLUES_CHANNEL) as notices:
            async with await psycopg.AsyncConnection.connect(fresh_db, autocommit=True) as c:
                await c.execute("SELECT pg_notify(%s, 'hello')", (CLUES_CHANNEL,))
            notice = await asyncio.wait_for(anext(notices), 10)
        pool = await open_pool(fresh_db)
        try:
            return notice.payload, await last_event_seq(pool)
        finally:
            await pool.close()

    assert asyncio.run(main()) == ("hello", 0)


def test_listen_fails_loudly_without_database() -> None:
    async def main() -> None:
        async with listen("postgresql://nobody@127.0.0.1:1/none", CLUES_CHANNEL):
            pass

    with pytest.raises(psycopg.OperationalError):
        asyncio.run(main())
