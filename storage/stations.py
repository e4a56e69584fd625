"""The station registry rows the stream's env detector needs (active stations only: a
retired station is as unknown as one never registered)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg_pool import AsyncConnectionPool

StationRow = Sequence[Any]
"""``(id, st, standard, interval_s, lon, lat, properties)``"""


async def station_rows(pool: AsyncConnectionPool, stations: list[str]) -> list[StationRow]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, st, standard, interval_s, lon, lat, properties FROM stations"
            " WHERE id = ANY(%s) AND status = 'active'", (stations,))
        return list(await cur.fetchall())
