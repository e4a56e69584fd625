"""The ``stations`` table as its readers need it (active stations only: a retired station
is as unknown as one never registered).

The HJ 212 TCP server checks every frame's MN and PW against the registry (HJ 212-2017
table 7 codes are its business, in ``ingest/hj212/server.py``); it opens one short-lived
async connection per load, since it has no pool and reloads rarely (every minute, when an
unknown MN shows up, rate-limited, or on a registry notice). The env stream agent looks up
the registry entries of the stations it sees (``station_rows``). Reading the table is
storage's job, so the SQL lives here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

StationRow = Sequence[Any]
"""``(id, st, standard, interval_s, lon, lat, properties)``"""


@dataclass(frozen=True)
class Station:
    """A registered station's credentials and declared reporting interval."""

    password: str | None
    st: str | None
    interval_s: int | None


async def load_credentials(database_url: str, connect_timeout: int = 10) -> dict[str, Station]:
    """Every active registered station by id (its MN)."""
    conn = await psycopg.AsyncConnection.connect(database_url, connect_timeout=connect_timeout)
    async with conn:
        cur = await conn.execute("SELECT id, password, st, interval_s FROM stations"
                                 " WHERE status = 'active'")
        rows = await cur.fetchall()
    return {r[0]: Station(r[1], r[2], r[3]) for r in rows}


POWER_METER_ST = "power"
"""The ``st`` of a row that is a registered power meter (``power_channels``): a registered
source whose readings are the power rules' business, not the env rules'."""


async def station_rows(pool: AsyncConnectionPool, stations: Sequence[str]) -> list[StationRow]:
    """The rows of the active registered ones among ``stations`` (an unregistered or
    retired id has no row); a power meter's row has ``st`` ``POWER_METER_ST``."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, CASE WHEN EXISTS (SELECT 1 FROM power_channels p WHERE p.meter = s.id"
            f" AND p.status = 'active') THEN '{POWER_METER_ST}' ELSE st END,"
            " standard, interval_s, lon, lat, properties FROM stations s"
            " WHERE id = ANY(%(ids)s) AND status = 'active'"
            f" UNION ALL SELECT DISTINCT meter, '{POWER_METER_ST}', NULL::text, NULL::int,"
            " NULL::float8, NULL::float8, '{}'::jsonb FROM power_channels"
            " WHERE meter = ANY(%(ids)s) AND status = 'active' AND NOT EXISTS (SELECT 1"
            " FROM stations s WHERE s.id = meter AND s.status = 'active')",
            {"ids": list(stations)})
        return list(await cur.fetchall())


async def located_stations(pool: AsyncConnectionPool) -> list[tuple[str, float, float, str]]:
    """``(id, lon, lat, st)`` of every active station with a location: the neighbour rules'
    map (``streams.env_region``)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, lon, lat, coalesce(st, '22') FROM stations WHERE status = 'active'"
            " AND lon IS NOT NULL AND lat IS NOT NULL")
        return [(r[0], float(r[1]), float(r[2]), r[3]) for r in await cur.fetchall()]
