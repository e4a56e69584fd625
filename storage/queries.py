"""Read queries used by the API: kept in storage/ with the rest of the SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from contract.input_rules import OFFLINE_MAX, OFFLINE_MIN


async def _fetch(pool: AsyncConnectionPool, sql: str, params: dict[str, Any]) -> list[dict]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(sql, params)
        return await cur.fetchall()


async def readings(pool: AsyncConnectionPool, station: str, code: str | None,
                   since: datetime | None, limit: int,
                   until: datetime | None = None) -> list[dict]:
    """A station's newest readings; ``until`` (exclusive) bounds a window, e.g. the hours
    around a clue. Rows dated outside 1970..2100 (stored before the input rules refused
    them: year 10000 or 0001) are left out: Python cannot read some of them back, and one
    such row must not turn every read of the station into a 500."""
    return await _fetch(pool, """
        SELECT time, station, code, period, value, flag, source FROM readings
        WHERE station = %(station)s
          AND (%(code)s::text IS NULL OR code = %(code)s)
          AND (%(since)s::timestamptz IS NULL OR time >= %(since)s)
          AND time >= %(lo)s AND time < %(hi)s
          AND (%(until)s::timestamptz IS NULL OR time < %(until)s)
        ORDER BY time DESC LIMIT %(limit)s""",
        {"station": station, "code": code, "since": since, "until": until, "limit": limit,
         "lo": OFFLINE_MIN, "hi": OFFLINE_MAX})


async def rejected(pool: AsyncConnectionPool, source: str | None, limit: int) -> list[dict]:
    return await _fetch(pool, """
        SELECT id, time, source, reason, encode(raw, 'base64') AS raw_base64, context
        FROM rejected WHERE (%(source)s::text IS NULL OR source = %(source)s)
        ORDER BY time DESC LIMIT %(limit)s""", {"source": source, "limit": limit})


async def ping(pool: AsyncConnectionPool) -> bool:
    async with pool.connection() as conn:
        await conn.execute("SELECT 1")
    return True


def row_counts(conn: psycopg.Connection,
               tables: tuple[str, ...] = ("readings", "rejected", "clues")) -> dict[str, int]:
    """Rows per table (exact ``count(*)``): what ``offsite up|demo`` prints as data flows."""
    out = {}
    for table in tables:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        out[table] = int(row.fetchone()[0])  # type: ignore[index]
    return out
