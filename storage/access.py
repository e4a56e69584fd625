"""SQL of the department access model and the monitoring-center reads that it guards.

The rules (who may see what) are decided in ``api/access.py``; this module only turns a
decision into SQL: ``visible(perm)`` is the predicate "the caller's department owns the
clue's resource or holds a live grant with ``perm`` on it", evaluated in the database with
``offsite_owner`` and ``offsite_live_grant`` (migration 004).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from contract.input_rules import OFFLINE_MAX, OFFLINE_MIN

# The resource a clue is about: env clues a station, video clues a camera, satellite clues
# the scene collection named in metrics.collection (else the subject itself), power clues
# the regulated entity.
RESOURCE_KIND = ("(CASE c.modality WHEN 'env' THEN 'station' WHEN 'video' THEN 'camera'"
                 " WHEN 'satellite' THEN 'scene_collection' WHEN 'power' THEN 'entity'"
                 " ELSE c.modality END)")
RESOURCE_ID = ("(CASE WHEN c.modality = 'satellite'"
               " THEN coalesce(c.metrics->>'collection', c.subject) ELSE c.subject END)")
CLUE_COLUMNS = ("c.clue_id, c.modality, c.kind, c.rule, c.subject, c.state, c.start, c.time,"
                " c.\"end\", c.confidence, c.location, c.metrics, c.summary, c.detector, c.site,"
                " c.department, c.jurisdiction, c.zones, c.event_seq, c.updated_at,"
                f" {RESOURCE_KIND} AS resource_kind, {RESOURCE_ID} AS resource_id,"
                " (CASE c.modality"
                " WHEN 'env' THEN (SELECT name FROM stations WHERE id = c.subject)"
                " WHEN 'video' THEN (SELECT name FROM cameras WHERE id = c.subject)"
                " WHEN 'power' THEN (SELECT name FROM entities WHERE id = c.subject)"
                " ELSE (SELECT name FROM scene_collections WHERE id = " + RESOURCE_ID + ")"
                " END) AS resource_name,"
                " (SELECT name FROM departments WHERE id = c.department) AS department_name,"
                " (SELECT name FROM zones WHERE id = c.jurisdiction) AS jurisdiction_name")
# What a clue's severity depends on besides its kind (``api/clue_titles.severity``), quantised
# so that counting by severity groups a few rows: the exceedance ratio to 0.1 and log10 of the
# changed area to 0.1 (the severity thresholds lie on that grid).
_NUM = "(CASE WHEN jsonb_typeof(c.metrics->'{k}') = 'number' THEN (c.metrics->>'{k}')::float8 END)"
SEVERITY_INPUTS = (
    f"floor({_NUM.format(k='max_mean')} / nullif({_NUM.format(k='limit')}, 0) * 10) / 10"
    " AS ratio,"
    f" floor(log(greatest({_NUM.format(k='area_m2')}, 1)) * 10) / 10 AS area_log10")


def visible(kind_sql: str, id_sql: str, perm: str, unrestricted: bool) -> str:
    """Predicate over a resource; params %(dept)s. ``unrestricted`` skips the check."""
    if unrestricted:
        return "TRUE"
    assert perm in ("live", "history", "evidence")
    return (f"(offsite_owner({kind_sql}, {id_sql}) = %(dept)s OR offsite_live_grant("
            f"%(dept)s, {kind_sql}, {id_sql}, '{perm}') IS NOT NULL)")


async def fetch(pool: AsyncConnectionPool, sql: str, params: dict[str, Any]) -> list[dict]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(sql, params)
        return await cur.fetchall()


async def fetch_one(pool: AsyncConnectionPool, sql: str, params: dict[str, Any]) -> dict | None:
    rows = await fetch(pool, sql, params)
    return rows[0] if rows else None


async def clues(pool: AsyncConnectionPool, *, dept: str, unrestricted: bool,
                kind: str | None = None, state: str | None = None, modality: str | None = None,
                since: datetime | None = None, until: datetime | None = None,
                bbox: tuple[float, float, float, float] | None = None, zone: str | None = None,
                department: str | None = None, after: tuple[datetime, str] | None = None,
                limit: int = 100) -> list[dict]:
    """Newest first, keyset-paged on (time, clue_id): ``after`` is the last row seen."""
    where, params = _clue_filter(dept=dept, unrestricted=unrestricted, kind=kind, state=state,
                                 modality=modality, since=since, until=until, bbox=bbox,
                                 zone=zone, department=department)
    params["limit"] = limit
    if after is not None:
        where.append("(c.time, c.clue_id) < (%(after_time)s, %(after_id)s)")
        params.update(after_time=after[0], after_id=after[1])
    return await fetch(pool, f"SELECT {CLUE_COLUMNS} FROM clues c WHERE {' AND '.join(where)}"
                             " ORDER BY c.time DESC, c.clue_id DESC LIMIT %(limit)s", params)


async def clue_groups(pool: AsyncConnectionPool, *, dept: str, unrestricted: bool,
                      **filters: Any) -> list[dict]:
    """Counts of the clues ``clues`` would list, grouped by modality, kind, state and the
    quantised severity inputs (``SEVERITY_INPUTS``): the API sums them by kind, status and
    severity, so the counts cover every clue, not one page."""
    where, params = _clue_filter(dept=dept, unrestricted=unrestricted, **filters)
    return await fetch(pool, f"SELECT c.modality, c.kind, c.state, {SEVERITY_INPUTS},"
                             f" count(*) AS n FROM clues c WHERE {' AND '.join(where)}"
                             " GROUP BY 1, 2, 3, 4, 5", params)


def _clue_filter(*, dept: str, unrestricted: bool, kind: str | None = None,
                 state: str | None = None, modality: str | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 bbox: tuple[float, float, float, float] | None = None,
                 zone: str | None = None,
                 department: str | None = None) -> tuple[list[str], dict[str, Any]]:
    where = [visible(RESOURCE_KIND, RESOURCE_ID, "history", unrestricted),
             "(%(kind)s::text IS NULL OR c.kind = %(kind)s)",
             "(%(state)s::text IS NULL OR c.state = %(state)s)",
             "(%(modality)s::text IS NULL OR c.modality = %(modality)s)",
             "(%(since)s::timestamptz IS NULL OR c.time >= %(since)s)",
             "(%(until)s::timestamptz IS NULL OR c.time < %(until)s)",
             "(%(department)s::text IS NULL OR c.department = %(department)s)"]
    params: dict[str, Any] = {"dept": dept, "kind": kind, "state": state, "modality": modality,
                              "since": since, "until": until, "department": department}
    if zone is not None:
        where.append("(c.zones @> jsonb_build_array(jsonb_build_object('id', %(zone)s::text))"
                     " OR c.zones ? %(zone)s)")
        params["zone"] = zone
    if bbox is not None:
        where.append("(SELECT b[1] <= %(maxx)s AND b[3] >= %(minx)s AND b[2] <= %(maxy)s"
                     " AND b[4] >= %(miny)s FROM offsite_geojson_bbox(c.location) AS b)")
        params.update(minx=bbox[0], miny=bbox[1], maxx=bbox[2], maxy=bbox[3])
    return where, params


async def clue(pool: AsyncConnectionPool, clue_id: str) -> dict | None:
    return await fetch_one(pool, f"SELECT {CLUE_COLUMNS} FROM clues c WHERE c.clue_id = %(id)s",
                           {"id": clue_id})


async def clues_since(pool: AsyncConnectionPool, seq: int, *, dept: str, unrestricted: bool,
                      limit: int = 500) -> list[dict]:
    """Clues changed after event ``seq`` that the caller may see live, in event order."""
    return await fetch(pool, f"SELECT {CLUE_COLUMNS} FROM clues c WHERE c.event_seq > %(seq)s"
                             f" AND {visible(RESOURCE_KIND, RESOURCE_ID, 'live', unrestricted)}"
                             " ORDER BY c.event_seq LIMIT %(limit)s",
                       {"seq": seq, "dept": dept, "limit": limit})


async def last_event_seq(pool: AsyncConnectionPool) -> int:
    row = await fetch_one(pool, "SELECT coalesce(max(event_seq), 0) AS seq FROM clues", {})
    return int(row["seq"]) if row else 0


async def access_to(pool: AsyncConnectionPool, kind: str, resource_id: str, dept: str,
                    perm: str) -> dict:
    """``{"owner_dept", "grant_id"}`` of a resource for a department and permission."""
    row = await fetch_one(pool, "SELECT offsite_owner(%(k)s, %(r)s) AS owner_dept,"
                                " offsite_live_grant(%(d)s, %(k)s, %(r)s, %(p)s) AS grant_id",
                          {"k": kind, "r": resource_id, "d": dept, "p": perm})
    assert row is not None
    return row


_EVIDENCE_COLUMNS = ("e.id, e.time, e.clue_id, e.source, e.seq, e.fixed_at, e.sha256,"
                     " e.prev_hash, e.record_hash, e.key_id, e.signature, e.media_type, e.name,"
                     " e.detector, e.detector_version, e.params, e.uri,"
                     " octet_length(e.content) AS size")


async def evidence_of(pool: AsyncConnectionPool, clue_id: str) -> list[dict]:
    return await fetch(pool, f"SELECT {_EVIDENCE_COLUMNS} FROM evidence e"
                             " WHERE e.clue_id = %(id)s ORDER BY e.time, e.seq", {"id": clue_id})


async def evidence(pool: AsyncConnectionPool, evidence_id: str,
                   with_content: bool = False) -> dict | None:
    extra = ", e.content" if with_content else ""
    return await fetch_one(pool, f"SELECT {_EVIDENCE_COLUMNS}{extra} FROM evidence e"
                                 " WHERE e.id = %(id)s ORDER BY e.time DESC LIMIT 1",
                           {"id": evidence_id})


async def audit(pool: AsyncConnectionPool, *, user: dict, action: str,
                resource_kind: str | None, resource_id: str | None, owner_dept: str | None,
                clue_id: str | None = None, evidence_id: str | None = None,
                grant_id: int | None = None, detail: dict | None = None) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO audit_log (user_id, department, action, resource_kind, resource_id,"
            " owner_dept, clue_id, evidence_id, grant_id, detail) VALUES (%s, %s, %s, %s, %s,"
            " %s, %s, %s, %s, %s)",
            (user["id"], user["department"], action, resource_kind, resource_id, owner_dept,
             clue_id, evidence_id, grant_id, Jsonb(detail or {})))


async def audit_entries(pool: AsyncConnectionPool, *, owner_dept: str | None,
                        since: datetime | None, limit: int) -> list[dict]:
    """Newest first; ``owner_dept`` limits to accesses of that department's resources."""
    return await fetch(pool, """
        SELECT time, id, user_id, department, action, resource_kind, resource_id, owner_dept,
               clue_id, evidence_id, grant_id, detail FROM audit_log
        WHERE (%(owner)s::text IS NULL OR owner_dept = %(owner)s)
          AND (%(since)s::timestamptz IS NULL OR time >= %(since)s)
        ORDER BY time DESC, id DESC LIMIT %(limit)s""",
        {"owner": owner_dept, "since": since, "limit": limit})


async def camera_health(pool: AsyncConnectionPool, *, dept: str,
                        unrestricted: bool) -> list[dict]:
    """Latest health row per camera (cameras never reported have online NULL)."""
    return await fetch(pool, f"""
        SELECT cam.id AS camera, cam.name, cam.owner_dept, h.time, h.online, h.fps, h.detail
        FROM cameras cam
        LEFT JOIN LATERAL (SELECT time, online, fps, detail FROM camera_health
                           WHERE camera = cam.id ORDER BY time DESC LIMIT 1) h ON TRUE
        WHERE {visible("'camera'", "cam.id", "live", unrestricted)}
        ORDER BY cam.id""", {"dept": dept})


async def station_health(pool: AsyncConnectionPool, *, dept: str,
                         unrestricted: bool) -> list[dict]:
    """Last reading per station against its reporting interval (late after 2 intervals).
    Rows dated outside 1970..2100 (stored before the input rules refused them) are ignored:
    a year-10000 row would be every later reading's "last" and cannot be read back."""
    return await fetch(pool, f"""
        SELECT s.id AS station, s.name, s.owner_dept, s.interval_s, r.last_time,
               extract(epoch FROM now() - r.last_time) AS age_s,
               CASE WHEN r.last_time IS NULL THEN 'never'
                    WHEN s.interval_s IS NULL THEN 'unknown'
                    WHEN now() - r.last_time <= 2 * s.interval_s * INTERVAL '1 second'
                    THEN 'ok' ELSE 'late' END AS status
        FROM stations s
        LEFT JOIN LATERAL (SELECT max(time) AS last_time FROM readings
                           WHERE station = s.id AND time >= %(lo)s AND time < %(hi)s) r ON TRUE
        WHERE {visible("'station'", "s.id", "live", unrestricted)}
        ORDER BY s.id""", {"dept": dept, "lo": OFFLINE_MIN, "hi": OFFLINE_MAX})


# -- access requests and grants -------------------------------------------------------------

async def resource_owner(pool: AsyncConnectionPool, kind: str, resource_id: str) -> str | None:
    row = await fetch_one(pool, "SELECT offsite_owner(%(k)s, %(r)s) AS owner",
                          {"k": kind, "r": resource_id})
    return row["owner"] if row else None


async def create_request(pool: AsyncConnectionPool, *, user: dict, kind: str, resource_id: str,
                         owner_dept: str, purpose: str, permissions: list[str],
                         valid_from: datetime, valid_until: datetime) -> dict:
    rows = await fetch(pool, """
        INSERT INTO access_requests (requester_dept, requested_by, resource_kind, resource_id,
            owner_dept, purpose, permissions, valid_from, valid_until)
        VALUES (%(dept)s, %(user)s, %(kind)s, %(rid)s, %(owner)s, %(purpose)s, %(perms)s,
                %(vf)s, %(vu)s) RETURNING *""",
        {"dept": user["department"], "user": user["id"], "kind": kind, "rid": resource_id,
         "owner": owner_dept, "purpose": purpose, "perms": permissions, "vf": valid_from,
         "vu": valid_until})
    return rows[0]


async def requests_for(pool: AsyncConnectionPool, dept: str | None,
                       state: str | None) -> list[dict]:
    """Requests a department made or received (all with ``dept`` None)."""
    return await fetch(pool, """
        SELECT * FROM access_requests
        WHERE (%(dept)s::text IS NULL OR requester_dept = %(dept)s OR owner_dept = %(dept)s)
          AND (%(state)s::text IS NULL OR state = %(state)s)
        ORDER BY created_at DESC, id DESC""", {"dept": dept, "state": state})


async def get_request(pool: AsyncConnectionPool, request_id: int) -> dict | None:
    return await fetch_one(pool, "SELECT * FROM access_requests WHERE id = %(id)s",
                           {"id": request_id})


async def decide(pool: AsyncConnectionPool, request_id: int, *, user: str, approve: bool,
                 note: str) -> dict | None:
    """Approve (making a grant) or deny a pending request; None if it is not pending."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "UPDATE access_requests SET state = %(s)s, decided_by = %(u)s, decided_at = now(),"
            " decision_note = %(n)s WHERE id = %(id)s AND state = 'pending' RETURNING *",
            {"s": "approved" if approve else "denied", "u": user, "n": note, "id": request_id})
        req = await cur.fetchone()
        if req is None or not approve:
            return req
        await cur.execute(
            "INSERT INTO grants (request_id, grantee_dept, resource_kind, resource_id,"
            " permissions, valid_from, valid_until, granted_by) VALUES (%(id)s, %(d)s, %(k)s,"
            " %(r)s, %(p)s, %(vf)s, %(vu)s, %(u)s) RETURNING id",
            {"id": request_id, "d": req["requester_dept"], "k": req["resource_kind"],
             "r": req["resource_id"], "p": req["permissions"], "vf": req["valid_from"],
             "vu": req["valid_until"], "u": user})
        grant = await cur.fetchone()
        assert grant is not None
        return {**req, "grant_id": grant["id"]}


_GRANT_SELECT = """
    SELECT g.*, offsite_owner(g.resource_kind, g.resource_id) AS owner_dept,
           CASE WHEN g.revoked_at IS NOT NULL THEN 'revoked'
                WHEN now() >= g.valid_until THEN 'expired'
                WHEN now() < g.valid_from THEN 'scheduled' ELSE 'live' END AS status
    FROM grants g"""


async def grants_for(pool: AsyncConnectionPool, dept: str | None) -> list[dict]:
    return await fetch(pool, f"""SELECT * FROM ({_GRANT_SELECT}) g
        WHERE %(dept)s::text IS NULL OR g.grantee_dept = %(dept)s OR g.owner_dept = %(dept)s
        ORDER BY g.granted_at DESC, g.id DESC""", {"dept": dept})


async def get_grant(pool: AsyncConnectionPool, grant_id: int) -> dict | None:
    return await fetch_one(pool, f"{_GRANT_SELECT} WHERE g.id = %(id)s", {"id": grant_id})


async def revoke_grant(pool: AsyncConnectionPool, grant_id: int, user: str) -> bool:
    async with pool.connection() as conn:
        cur = await conn.execute("UPDATE grants SET revoked_at = now(), revoked_by = %s"
                                 " WHERE id = %s AND revoked_at IS NULL", (user, grant_id))
        return cur.rowcount == 1
