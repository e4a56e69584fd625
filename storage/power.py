"""What the power rules need from the registry (channels, entities' zones, shutdowns), and
the shutdowns the monitoring center declares through the API.

The power agent reads it all at once (a province has a few thousand metered entities, a
few rows each) and again when the registry announces a change of ``power_channel``,
``shutdown`` or ``entity``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from geo.registry_power import row_id
from storage.registry_listen import notify


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


async def declare_shutdown(pool: AsyncConnectionPool, *, scope: str, level: str,
                           start: datetime, end: datetime, user: dict[str, str]
                           ) -> dict[str, Any] | None:
    """Declare (or re-declare: same scope and start) a shutdown; None if the scope is
    neither an active entity nor an active zone. Audited, and announced on the registry
    channel so workers apply it at once."""
    sid = row_id("shutdown", {"scope": scope, "start": start})
    async with pool.connection() as conn, conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        known = await (await cur.execute(
            "SELECT 1 FROM entities WHERE id = %(s)s AND status = 'active' UNION ALL"
            " SELECT 1 FROM zones WHERE id = %(s)s AND status = 'active'", {"s": scope})
        ).fetchone()
        if known is None:
            return None
        row = await (await cur.execute(
            'INSERT INTO shutdowns (id, scope, level, start, "end") VALUES (%s, %s, %s, %s, %s)'
            ' ON CONFLICT (id) DO UPDATE SET level = EXCLUDED.level, "end" = EXCLUDED."end",'
            " status = 'active', updated_at = now()"
            ' RETURNING id, scope, level, start, "end", status',
            (sid, scope, level, start, end))).fetchone()
        await cur.execute(
            "INSERT INTO audit_log (user_id, department, action, resource_kind, resource_id,"
            " owner_dept, detail) VALUES (%s, %s, 'shutdown.declared', 'shutdown', %s, NULL,"
            " %s)", (user["id"], user["department"], sid,
                     Jsonb({"scope": scope, "level": level, "start": start.isoformat(),
                            "end": end.isoformat()})))
        await notify(conn, "shutdown")
    return row


async def shutdown_list(pool: AsyncConnectionPool, since: datetime) -> list[dict[str, Any]]:
    """Active shutdowns not ended before ``since``, by start."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        return await (await cur.execute(
            'SELECT id, scope, level, start, "end", status FROM shutdowns'
            " WHERE status = 'active' AND \"end\" > %s ORDER BY start, id", (since,))).fetchall()
