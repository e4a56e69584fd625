"""SQL of the resource directory and of single-resource changes made through the API.

The directory (``GET /resources``) reads the ``resources`` view (migration 007) with, for
the caller's department, what it may do with each resource: ``owner``, ``granted`` (a live
grant, until ``granted_until``), ``pending`` (a request waits for the owner) or ``none``.
Keyset-paged on (kind, id), like the clue list on (time, clue_id).

Every change (create, change, retire) is one transaction: the row, an ``audit_log`` row
with what changed (a station's password only as "changed"), and ``NOTIFY offsite_registry,
'<kind>'`` so that running processes reload (``storage/registry_listen.py``). Retiring sets
``status = 'retired'``: the row, its readings, clues, grants and audit stay.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncCursor
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from storage.access import fetch
from storage.registry_listen import CHANNEL, notify

TABLES = {"station": "stations", "camera": "cameras", "scene_collection": "scene_collections"}
# columns the API may set, per kind (id and created_at are not changed after creation)
COLUMNS = {
    "station": ("name", "owner_dept", "lon", "lat", "st", "standard", "password",
                "interval_s", "properties", "status"),
    "camera": ("name", "owner_dept", "url", "lon", "lat", "config", "properties", "status"),
    "scene_collection": ("name", "owner_dept", "properties", "status"),
}
_JSON = {"properties", "config"}
_SECRET = {"password"}

_DIRECTORY = """
    SELECT r.kind, r.id, r.name, r.owner_dept, r.status,
           CASE WHEN r.lon IS NULL OR r.lat IS NULL THEN NULL
                ELSE jsonb_build_object('type', 'Point',
                                        'coordinates', jsonb_build_array(r.lon, r.lat)) END
               AS location,
           CASE WHEN r.owner_dept = %(dept)s THEN 'owner'
                WHEN g.until IS NOT NULL THEN 'granted'
                WHEN EXISTS (SELECT 1 FROM access_requests a
                             WHERE a.requester_dept = %(dept)s AND a.resource_kind = r.kind
                               AND a.resource_id = r.id AND a.state = 'pending')
                THEN 'pending' ELSE 'none' END AS access,
           CASE WHEN r.owner_dept = %(dept)s THEN NULL ELSE g.until END AS granted_until,
           CASE WHEN r.owner_dept = %(dept)s THEN ARRAY['evidence', 'history', 'live']
                ELSE coalesce(g.perms, ARRAY[]::text[]) END AS permissions
    FROM resources r
    LEFT JOIN LATERAL (
        SELECT max(gr.valid_until) AS until, array_agg(DISTINCT perm ORDER BY perm) AS perms
        FROM grants gr, unnest(gr.permissions) AS perm
        WHERE gr.grantee_dept = %(dept)s AND gr.resource_kind = r.kind
          AND gr.resource_id = r.id AND gr.revoked_at IS NULL
          AND gr.valid_from <= now() AND now() < gr.valid_until) g ON TRUE"""


def like_pattern(text: str) -> str:
    """``%text%`` for ILIKE, with the pattern characters of ``text`` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def directory(pool: AsyncConnectionPool, *, dept: str, kind: str | None = None,
                    owner: str | None = None, status: str | None = "active",
                    bbox: tuple[float, float, float, float] | None = None,
                    q: str | None = None, after: tuple[str, str] | None = None,
                    limit: int = 100) -> list[dict]:
    """Resources in (kind, id) order after ``after``; ``status`` None: every status."""
    where = ["(%(kind)s::text IS NULL OR r.kind = %(kind)s)",
             "(%(owner)s::text IS NULL OR r.owner_dept = %(owner)s)",
             "(%(status)s::text IS NULL OR r.status = %(status)s)"]
    params: dict[str, Any] = {"dept": dept, "kind": kind, "owner": owner, "status": status,
                              "limit": limit}
    if q:
        where.append("(r.id ILIKE %(q)s OR r.name ILIKE %(q)s)")
        params["q"] = like_pattern(q)
    if bbox is not None:
        where.append("r.lon BETWEEN %(minx)s AND %(maxx)s AND r.lat BETWEEN %(miny)s AND %(maxy)s")
        params.update(minx=bbox[0], miny=bbox[1], maxx=bbox[2], maxy=bbox[3])
    if after is not None:
        where.append("(r.kind, r.id) > (%(after_kind)s, %(after_id)s)")
        params.update(after_kind=after[0], after_id=after[1])
    return await fetch(pool, f"{_DIRECTORY} WHERE {' AND '.join(where)}"
                             " ORDER BY r.kind, r.id LIMIT %(limit)s", params)


async def directory_item(pool: AsyncConnectionPool, *, dept: str, kind: str,
                         resource_id: str) -> dict | None:
    rows = await fetch(pool, f"{_DIRECTORY} WHERE r.kind = %(kind)s AND r.id = %(id)s",
                       {"dept": dept, "kind": kind, "id": resource_id})
    return rows[0] if rows else None


async def get_row(pool: AsyncConnectionPool, kind: str, resource_id: str) -> dict | None:
    """The resource's table row (station passwords included: callers must not echo them)."""
    rows = await fetch(pool, f"SELECT * FROM {TABLES[kind]} WHERE id = %(id)s",
                       {"id": resource_id})
    return rows[0] if rows else None


async def active_departments(pool: AsyncConnectionPool, ids: list[str]) -> set[str]:
    rows = await fetch(pool, "SELECT id FROM departments WHERE id = ANY(%(ids)s)"
                             " AND status = 'active'", {"ids": ids})
    return {r["id"] for r in rows}


def _shown(column: str, value: Any) -> Any:
    """A value as the audit log keeps it: secrets never."""
    if column in _SECRET:
        return "(set)" if value else None
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _param(column: str, value: Any) -> Any:
    return Jsonb(value) if column in _JSON and value is not None else value


async def _audit(cur: AsyncCursor, user: dict, action: str, kind: str, resource_id: str,
                 owner_dept: str | None, detail: dict) -> None:
    await cur.execute(
        "INSERT INTO audit_log (user_id, department, action, resource_kind, resource_id,"
        " owner_dept, detail) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (user["id"], user["department"], action, kind, resource_id, owner_dept, Jsonb(detail)))


async def _ensure_default_owner(cur: AsyncCursor, user: dict, owner: str | None,
                                default_owner: str | None) -> None:
    if default_owner is None or owner != default_owner:
        return
    await cur.execute("INSERT INTO departments (id, name) VALUES (%s, %s)"
                      " ON CONFLICT (id) DO NOTHING RETURNING id", (default_owner, default_owner))
    if await cur.fetchone() is not None:
        await _audit(cur, user, "registry.added", "department", default_owner, None,
                     {"fields": ["name"], "why": "default owner"})
        await cur.execute("SELECT pg_notify(%s, 'department')", (CHANNEL,))


async def create(pool: AsyncConnectionPool, kind: str, resource_id: str,
                 values: dict[str, Any], user: dict,
                 default_owner: str | None = None) -> dict | None:
    """Insert a resource; None when the id is taken (retired ones included).

    An owner equal to ``default_owner`` (the monitoring center) is created when missing,
    as ``offsite registry import`` does: what names no owner always has one.
    """
    columns = [c for c in COLUMNS[kind] if c in values]
    names = ", ".join(["id", *columns])
    marks = ", ".join(["%s"] * (len(columns) + 1))
    async with pool.connection() as conn, conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        await _ensure_default_owner(cur, user, values.get("owner_dept"), default_owner)
        await cur.execute(f"INSERT INTO {TABLES[kind]} ({names}) VALUES ({marks})"
                          " ON CONFLICT (id) DO NOTHING RETURNING *",
                          [resource_id, *(_param(c, values[c]) for c in columns)])
        row = await cur.fetchone()
        if row is None:
            return None
        await _audit(cur, user, "registry.added", kind, resource_id, row["owner_dept"],
                     {"values": {c: _shown(c, values[c]) for c in columns}})
        await notify(conn, kind)
        return row


async def update(pool: AsyncConnectionPool, kind: str, resource_id: str,
                 values: dict[str, Any], user: dict, action: str = "registry.changed",
                 default_owner: str | None = None) -> tuple[dict, dict] | None:
    """Change the given columns; (row after, {column: [before, after]}) or None if absent.

    Columns whose value is already the one given are left alone; with nothing changed no
    audit row is written and nothing is notified.
    """
    async with pool.connection() as conn, conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(f"SELECT * FROM {TABLES[kind]} WHERE id = %s FOR UPDATE",
                          (resource_id,))
        before = await cur.fetchone()
        if before is None:
            return None
        changed = {c: v for c, v in values.items()
                   if c in COLUMNS[kind] and before.get(c) != v}
        if not changed:
            return before, {}
        await _ensure_default_owner(cur, user, changed.get("owner_dept"), default_owner)
        sets = ", ".join(f"{c} = %s" for c in changed)
        await cur.execute(f"UPDATE {TABLES[kind]} SET {sets}, updated_at = now()"
                          " WHERE id = %s RETURNING *",
                          [*(_param(c, v) for c, v in changed.items()), resource_id])
        after = await cur.fetchone()
        assert after is not None
        diff = {c: [_shown(c, before.get(c)), _shown(c, v)] for c, v in changed.items()}
        await _audit(cur, user, action, kind, resource_id, after["owner_dept"],
                     {"changes": diff, "owner_before": before["owner_dept"]})
        await notify(conn, kind)
        return after, diff


async def retire(pool: AsyncConnectionPool, kind: str, resource_id: str,
                 user: dict) -> tuple[dict, dict] | None:
    return await update(pool, kind, resource_id, {"status": "retired"}, user,
                        action="registry.retired")


async def audit_of(pool: AsyncConnectionPool, kind: str, resource_id: str) -> list[dict]:
    """Registry changes of one resource, oldest first (for tests and the desk)."""
    return await fetch(pool, "SELECT time, user_id, department, action, owner_dept, detail"
                             " FROM audit_log WHERE resource_kind = %(k)s AND resource_id ="
                             " %(r)s AND action LIKE 'registry.%%' ORDER BY time, id",
                       {"k": kind, "r": resource_id})


async def sensor_points(pool: AsyncConnectionPool) -> list[tuple[str, str, float, float]]:
    """Active stations and cameras with a position: (kind, id, lon, lat). The fire agent
    puts a fire event at the site of the nearest one, so their clues fuse into one case."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT kind, id, lon, lat FROM resources WHERE status = 'active'"
            " AND kind IN ('station', 'camera') AND lon IS NOT NULL AND lat IS NOT NULL"
            " ORDER BY kind, id")
        return [(r[0], r[1], float(r[2]), float(r[3])) for r in await cur.fetchall()]
