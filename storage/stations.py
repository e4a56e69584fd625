"""The ``stations`` table as the HJ 212 TCP server sees it: MN, password, ST, interval.

The server checks every frame's MN and PW against this registry (HJ 212-2017 table 7 codes
are its business, in ``ingest/hj212/server.py``); reading the table is storage's, so the
SQL lives here. One short-lived async connection per load: the server has no pool, and it
reloads rarely (every minute, or when an unknown MN shows up, rate-limited).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Station:
    """A registered station's credentials and declared reporting interval."""

    password: str | None
    st: str | None
    interval_s: int | None


async def load_credentials(database_url: str, connect_timeout: int = 10) -> dict[str, Station]:
    """Every registered station by id (its MN)."""
    conn = await psycopg.AsyncConnection.connect(database_url, connect_timeout=connect_timeout)
    async with conn:
        cur = await conn.execute("SELECT id, password, st, interval_s FROM stations")
        rows = await cur.fetchall()
    return {r[0]: Station(r[1], r[2], r[3]) for r in rows}
