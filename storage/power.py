"""What the power rules need from the registry: channels, entities' zones, shutdowns.

The power agent reads it all at once (a province has a few thousand metered entities, a
few rows each) and again when the registry announces a change of ``power_channel``,
``shutdown`` or ``entity``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


@dataclass
class PowerRows:
    channels: list[dict[str, Any]] = field(default_factory=list)
    entity_zones: dict[str, list[str]] = field(default_factory=dict)
    shutdowns: list[dict[str, Any]] = field(default_factory=list)
    meter_locations: dict[str, tuple[float, float]] = field(default_factory=dict)


async def power_rows(pool: AsyncConnectionPool, since: datetime) -> PowerRows:
    """Active channels, the zones of their entities, shutdowns not ended before ``since``,
    and the registered locations of meters that are also listed as stations."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        channels = await (await cur.execute(
            "SELECT entity, meter, channel, role, rated_kw, idle_kw FROM power_channels"
            " WHERE status = 'active' ORDER BY id")).fetchall()
        zones = await (await cur.execute(
            "SELECT id, zones FROM entities WHERE status = 'active' AND id = ANY(%s)",
            (sorted({c["entity"] for c in channels}),))).fetchall()
        shutdowns = await (await cur.execute(
            'SELECT scope, level, start, "end" FROM shutdowns'
            ' WHERE status = \'active\' AND "end" > %s ORDER BY start', (since,))).fetchall()
        located = await (await cur.execute(
            "SELECT id, lon, lat FROM stations WHERE status = 'active' AND id = ANY(%s)"
            " AND lon IS NOT NULL AND lat IS NOT NULL",
            (sorted({c["meter"] for c in channels}),))).fetchall()
    return PowerRows(channels, {z["id"]: list(z["zones"] or []) for z in zones}, shutdowns,
                     {r["id"]: (float(r["lon"]), float(r["lat"])) for r in located})
