"""Inspector tasks and work statistics (tables of ``migrations/005_tasks.sql``).

Tasks are opened by the database (a trigger on ``clues``), so every writer of clues makes
them the same way; this module reads them, moves them through their states and counts the
work. A task's JSON form (``task_json``) is what the API returns and what the MQTT pusher
publishes, so the two are equal.

Besides clue tasks (``task_kind`` ``clue``, one per clue) there are drawn inspections
(``draw``: no clue, an entity, two inspectors ``assignee`` and ``co_assignee``; made by
``storage.inspections``); either kind may belong to a joint inspection (``inspection_id``).

States: ``open`` (no inspector yet) -> ``assigned`` -> ``accepted`` -> ``closed`` (with a
result); a referral (case bundle) can be made for a closed, confirmed task.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from storage.access import RESOURCE_ID, RESOURCE_KIND

RESULTS = ("confirmed", "false_positive", "not_found")
OPEN_STATES = ("open", "assigned", "accepted")
_SELECT = (
    "SELECT t.id, t.clue_id, t.department, t.jurisdiction, t.clue_kind, t.state, t.assignee,"
    " t.assigned_by, t.created_at, t.due_at, t.assigned_at, t.accepted_at, t.closed_at,"
    " t.result, t.note, t.evidence_ids, t.referred_at, t.referred_by, t.bundle_sha256,"
    " t.event_seq, t.task_kind, t.entity, t.inspection_id, t.co_assignee,"
    " (SELECT e.name FROM entities e WHERE e.id = t.entity) AS entity_name,"
    " (SELECT v.visit_date FROM inspections v WHERE v.id = t.inspection_id) AS visit_date,"
    " (SELECT cardinality(v.departments) > 1 FROM inspections v WHERE v.id = t.inspection_id)"
    " AS joint, c.modality, c.subject, c.site, c.summary, c.location, c.detector,"
    " c.start AS clue_start, c.time AS clue_time, c.state AS clue_state,"
    f" {RESOURCE_KIND} AS resource_kind, {RESOURCE_ID} AS resource_id,"
    f" offsite_owner({RESOURCE_KIND}, {RESOURCE_ID}) AS owner_dept,"
    # the task's department's own standing on the clue's resource (what its inspectors and
    # department_user see, and what is pushed to the assignee's terminal)
    f" offsite_live_grant(t.department, {RESOURCE_KIND}, {RESOURCE_ID}, 'history')"
    " AS history_grant"
    # a drawn inspection has no clue: its clue columns are NULL
    " FROM tasks t LEFT JOIN clues c ON c.clue_id = t.clue_id")
# Clue details a department sees only with the resource owner's data or a live grant.
WITHHELD = ("summary", "location", "detector", "evidence_ids")


def department_access(row: dict[str, Any]) -> str:
    """How the task's department may see its clue: owner, grant or none (a task without a
    clue, a drawn inspection, is the department's own: ``owner``)."""
    if row["clue_id"] is None:
        return "owner"
    if row["owner_dept"] is not None and row["owner_dept"] == row["department"]:
        return "owner"
    return "grant" if row["history_grant"] is not None else "none"


def _ts(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def task_json(row: dict[str, Any], now: datetime | None = None,
              access: str | None = None) -> dict[str, Any]:
    """The task as the API returns it and as it is pushed to terminals.

    ``access`` is the viewer's standing on the clue's resource (``role``, ``owner``,
    ``grant``, ``none``; default: the task department's). With ``none`` the clue's details
    are withheld: the task says that the clue exists, whose resource it is about and how to
    ask its owner for access, nothing more.
    """
    now = now or datetime.now(UTC)
    overdue = row["state"] in OPEN_STATES and row["due_at"] < now
    access = access or department_access(row)
    out = {
        "id": row["id"], "clue_id": row["clue_id"], "department": row["department"],
        "jurisdiction": row["jurisdiction"], "kind": row["clue_kind"],
        "modality": row["modality"], "subject": row["subject"], "site": row["site"],
        "summary": row["summary"], "location": row["location"], "detector": row["detector"],
        "clue_start": _ts(row["clue_start"]), "clue_time": _ts(row["clue_time"]),
        "clue_state": row["clue_state"],
        "state": row["state"], "assignee": row["assignee"], "assigned_by": row["assigned_by"],
        "created_at": _ts(row["created_at"]), "due_at": _ts(row["due_at"]),
        "overdue": overdue, "assigned_at": _ts(row["assigned_at"]),
        "accepted_at": _ts(row["accepted_at"]), "closed_at": _ts(row["closed_at"]),
        "result": row["result"], "note": row["note"],
        "evidence_ids": list(row["evidence_ids"] or []),
        "referred_at": _ts(row["referred_at"]), "referred_by": row["referred_by"],
        "bundle_sha256": row["bundle_sha256"],
        "owner_dept": row["owner_dept"], "access": access,
        "resource": {"kind": row["resource_kind"], "id": row["resource_id"]},
        "task_kind": row["task_kind"], "entity": row["entity"],
        "entity_name": row["entity_name"], "inspection_id": row["inspection_id"],
        "joint": bool(row["joint"]), "visit_date": row["visit_date"].isoformat()
        if row["visit_date"] else None,
        "co_assignee": row["co_assignee"],
        "inspectors": [x for x in (row["assignee"], row["co_assignee"]) if x],
    }
    if access == "none":
        out.update(dict.fromkeys(WITHHELD))
        out["evidence_ids"] = []
        out["access_request"] = f"/tasks/{row['id']}/access-request"
    return out


async def _rows(pool: AsyncConnectionPool, where: str, params: Any = None,
                tail: str = "") -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(f"{_SELECT} WHERE {where} {tail}", params)
        return await cur.fetchall()


async def get(pool: AsyncConnectionPool, task_id: int) -> dict[str, Any] | None:
    rows = await _rows(pool, "t.id = %s", (task_id,))
    return rows[0] if rows else None


async def inbox(pool: AsyncConnectionPool, *, assignee: str | None = None,
                department: str | None = None, state: str | None = None,
                limit: int = 200) -> list[dict[str, Any]]:
    """Tasks, newest first, optionally of one assignee, department and state."""
    where, params = ["TRUE"], []
    if assignee is not None:
        where.append("(t.assignee = %s OR t.co_assignee = %s)")
        params += [assignee, assignee]
    if department is not None:
        where.append("t.department = %s")
        params.append(department)
    if state is not None:
        where.append("t.state = %s")
        params.append(state)
    params.append(limit)
    return await _rows(pool, " AND ".join(where), params,
                       "ORDER BY t.created_at DESC, t.id DESC LIMIT %s")


async def changed_since(pool: AsyncConnectionPool, seq: int,
                        limit: int = 500) -> list[dict[str, Any]]:
    """Assigned tasks changed after event ``seq``, in order (for the pusher)."""
    return await _rows(pool, "t.event_seq > %s AND t.assignee IS NOT NULL", (seq, limit),
                       "ORDER BY t.event_seq LIMIT %s")


async def latest_per_inspector(pool: AsyncConnectionPool) -> list[tuple[str, dict[str, Any]]]:
    """Each inspector's most recently changed task, first or second inspector of it (what
    the inspector's retained topic should hold), as (inspector, task row)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT DISTINCT ON (who) who, id FROM ("
            " SELECT assignee AS who, id, event_seq FROM tasks WHERE assignee IS NOT NULL"
            " UNION ALL SELECT co_assignee, id, event_seq FROM tasks"
            " WHERE co_assignee IS NOT NULL) s ORDER BY who, event_seq DESC")
        latest = await cur.fetchall()
    rows = {r["id"]: r for r in await _rows(pool, "t.id = ANY (%s)", ([i for _, i in latest],))}
    pairs = [(who, rows[i]) for who, i in latest if i in rows]
    return sorted(pairs, key=lambda p: p[1]["event_seq"])


async def last_event_seq(pool: AsyncConnectionPool) -> int:
    """The number of the latest task change (0 with no tasks): where the pusher starts."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT coalesce(max(event_seq), 0) FROM tasks")
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _update(pool: AsyncConnectionPool, task_id: int, sets: str, cond: str,
                  params: tuple[Any, ...]) -> bool:
    async with pool.connection() as conn:
        cur = await conn.execute(f"UPDATE tasks SET {sets} WHERE {cond} AND id = %s",
                                 (*params, task_id))
        return cur.rowcount == 1


async def is_inspector_of(pool: AsyncConnectionPool, user_id: str, department: str) -> bool:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT 1 FROM users WHERE id = %s AND department = %s AND role = 'inspector'"
            " AND NOT disabled", (user_id, department))
        return await cur.fetchone() is not None


async def assign(pool: AsyncConnectionPool, task_id: int, inspector: str, by: str) -> bool:
    """Hand assignment (or reassignment) of a task that is not closed."""
    # the second inspector made first swaps places with the first one (a pair stays a pair)
    return await _update(pool, task_id,
                         "co_assignee = CASE WHEN co_assignee = %s THEN assignee"
                         " ELSE co_assignee END,"
                         " assignee = %s, assigned_by = %s, assigned_at = now(),"
                         " state = 'assigned', accepted_at = NULL",
                         "state <> 'closed'", (inspector, inspector, by))


async def accept(pool: AsyncConnectionPool, task_id: int, inspector: str) -> bool:
    return await _update(pool, task_id, "state = 'accepted', accepted_at = now()",
                         "state = 'assigned' AND %s IN (assignee, co_assignee)", (inspector,))


async def report(pool: AsyncConnectionPool, task_id: int, inspector: str, result: str,
                 note: str, evidence_ids: list[str]) -> bool:
    """Close the task with the inspector's result (reporting implies accepting)."""
    return await _update(
        pool, task_id,
        "state = 'closed', closed_at = now(), accepted_at = COALESCE(accepted_at, now()),"
        " result = %s, note = %s, evidence_ids = evidence_ids || %s::text[]",
        "state IN ('assigned', 'accepted') AND %s IN (assignee, co_assignee)",
        (result, note, evidence_ids, inspector))


async def store_referral(pool: AsyncConnectionPool, task_id: int, by: str, bundle: bytes,
                         digest: str) -> bool:
    return await _update(pool, task_id,
                         "referred_at = now(), referred_by = %s, bundle = %s, bundle_sha256 = %s",
                         "state = 'closed' AND result = 'confirmed'", (by, bundle, digest))


async def bundle(pool: AsyncConnectionPool, task_id: int) -> bytes | None:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT bundle FROM tasks WHERE id = %s", (task_id,))
        row = await cur.fetchone()
        return bytes(row[0]) if row and row[0] is not None else None


# ---- work statistics ----------------------------------------------------------------------


async def stats(pool: AsyncConnectionPool, department: str | None, since: datetime,
                until: datetime) -> dict[str, Any]:
    """Work of a department (or of all) in [since, until).

    Readings count by data time at the department's stations; clues by their start; tasks
    assigned, accepted and closed by when that happened. Time to accept runs from
    assignment, time to close from the task's creation (seconds, medians over the tasks
    accepted / closed in the period). The false-positive rate per clue kind is over the
    results reported in the period.
    """
    dept = department
    params = {"d": dept, "s": since, "u": until}
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT count(*) AS n FROM readings r"
            " WHERE r.time >= %(s)s AND r.time < %(u)s AND (%(d)s::text IS NULL OR r.station IN"
            " (SELECT id FROM stations WHERE owner_dept = %(d)s))", params)
        readings = (await cur.fetchone())["n"]
        await cur.execute(
            "SELECT count(*) AS n FROM clues WHERE start >= %(s)s AND start < %(u)s"
            " AND (%(d)s::text IS NULL OR department = %(d)s)", params)
        clues = (await cur.fetchone())["n"]
        await cur.execute(
            "SELECT"
            " count(*) FILTER (WHERE assigned_at >= %(s)s AND assigned_at < %(u)s) AS assigned,"
            " count(*) FILTER (WHERE accepted_at >= %(s)s AND accepted_at < %(u)s) AS accepted,"
            " count(*) FILTER (WHERE closed_at >= %(s)s AND closed_at < %(u)s) AS closed,"
            " count(*) FILTER (WHERE state IN ('open', 'assigned', 'accepted')"
            "   AND due_at < now()) AS overdue_now,"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM"
            "   accepted_at - assigned_at)) FILTER (WHERE accepted_at >= %(s)s"
            "   AND accepted_at < %(u)s AND assigned_at IS NOT NULL) AS median_accept_s,"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM"
            "   closed_at - created_at)) FILTER (WHERE closed_at >= %(s)s"
            "   AND closed_at < %(u)s) AS median_close_s"
            " FROM tasks WHERE (%(d)s::text IS NULL OR department = %(d)s)", params)
        tasks = await cur.fetchone()
        await cur.execute(
            "SELECT clue_kind AS kind, count(*) AS reports,"
            " count(*) FILTER (WHERE result = 'false_positive') AS false_positive,"
            " count(*) FILTER (WHERE result = 'confirmed') AS confirmed,"
            " count(*) FILTER (WHERE result = 'not_found') AS not_found"
            " FROM tasks WHERE result IS NOT NULL AND closed_at >= %(s)s AND closed_at < %(u)s"
            " AND (%(d)s::text IS NULL OR department = %(d)s)"
            " GROUP BY clue_kind ORDER BY clue_kind", params)
        kinds = await cur.fetchall()
    return {
        "department": dept, "since": _ts(since), "until": _ts(until),
        "readings_received": readings, "clues_raised": clues,
        "tasks": {"assigned": tasks["assigned"], "accepted": tasks["accepted"],
                  "closed": tasks["closed"], "overdue_now": tasks["overdue_now"]},
        "median_time_to_accept_s": _num(tasks["median_accept_s"]),
        "median_time_to_close_s": _num(tasks["median_close_s"]),
        "false_positive_rate": {
            k["kind"]: {"reports": k["reports"], "false_positive": k["false_positive"],
                        "confirmed": k["confirmed"], "not_found": k["not_found"],
                        "rate": k["false_positive"] / k["reports"]} for k in kinds},
    }


def _num(value: Any) -> float | None:
    return float(value) if value is not None else None
