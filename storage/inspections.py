"""Random inspection draws and joint inspections (tables of ``migrations/012_inspections.sql``).

A draw reads its inputs (the department's candidate entities with credit class, risk and
draws so far this year; its inspector roster), lets ``oversight.draws`` decide, and writes
in one transaction: the draw with its seed, parameters and inputs, an inspection and a task
per drawn entity (both inspectors on the task), the audit entry, and the joint inspections
the new tasks take part in. Draws are serialised by an advisory lock, so two concurrent
draws cannot both spend an entity's yearly cap.

Joint inspections: ``merge_joint`` gathers the open tasks at the given entities (drawn and
clue tasks), lets ``oversight.joint`` group them, and points every task of a group at one
inspection (the oldest one of the group, the others marked ``merged_into`` it).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from contract.settings import Settings
from oversight import draws as algo
from oversight import joint

_LOCK = 0x0FF5D12  # serialises draws (yearly caps)
TASK_KIND = "random_inspection"  # tasks.clue_kind of a drawn task
# Entities a department draws from: its own, and those with an enterprise site in its county
# (a department id is "<county>-<role>"), so that every bureau of a county draws from the
# same enterprises and their draws can meet in joint inspections.
OF_DEPARTMENT = ("(e.owner_dept = %(d)s OR EXISTS (SELECT 1 FROM zones z WHERE z.id = ANY (e.zones)"
            " AND z.county <> '' AND z.county = split_part(%(d)s, '-', 1)))")


def params_from(settings: Settings) -> algo.DrawParams:
    return algo.DrawParams(rates=dict(settings.draw_rates),
                           risk_multiplier=dict(settings.draw_risk_multipliers),
                           yearly_cap=settings.draw_yearly_cap,
                           high_risk_share=settings.draw_high_risk_share)


def local_bounds(start: date, end: date, utc_offset_hours: float) -> tuple[datetime, datetime]:
    """The period's days [start, end] as instants: local midnight to the midnight after."""
    tz = timezone(timedelta(hours=utc_offset_hours))
    return (datetime.combine(start, time(), tz).astimezone(UTC),
            datetime.combine(end + timedelta(days=1), time(), tz).astimezone(UTC))


async def candidates(conn: AsyncConnection, department: str, year: int) -> list[algo.Candidate]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT e.id, e.credit_class, coalesce(r.level, 'low') AS level,"
        " coalesce(r.score, 0) AS score,"
        " (SELECT count(*) FROM inspection_draw_items i WHERE i.entity = e.id"
        "  AND i.planned_date >= make_date(%(y)s, 1, 1)"
        "  AND i.planned_date < make_date(%(y)s + 1, 1, 1)) AS drawn"
        " FROM entities e LEFT JOIN entity_risk r ON r.entity = e.id"
        f" WHERE e.status = 'active' AND {OF_DEPARTMENT} ORDER BY e.id",
        {"d": department, "y": year})
    return [algo.Candidate(r["id"], r["credit_class"], r["level"], float(r["score"]),
                           int(r["drawn"])) for r in await cur.fetchall()]


async def department_exists(pool: AsyncConnectionPool, department: str) -> bool:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT 1 FROM departments WHERE id = %s", (department,))
        return await cur.fetchone() is not None


async def roster(conn: AsyncConnection, department: str) -> list[str]:
    cur = await conn.execute(
        "SELECT id FROM users WHERE department = %s AND role = 'inspector' AND NOT disabled"
        " ORDER BY id", (department,))
    return [r[0] for r in await cur.fetchall()]


async def create_draw(pool: AsyncConnectionPool, *, department: str, start: date, end: date,
                      seed: int, count: int | None, settings: Settings,
                      user: dict[str, str]) -> tuple[int, bool]:
    """Make (or find: same department, period and seed) a draw; (its id, made now).

    Raises ``oversight.draws.DrawError`` when it cannot be made (no inspector pair).
    """
    params = params_from(settings)
    offset = settings.local_utc_offset_hours
    async with pool.connection() as conn:
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        found = await _find(conn, department, start, end, seed)
        if found is not None:
            return found, False
        cands = await candidates(conn, department, start.year)
        names = await roster(conn, department)
        result = algo.draw(cands, names, start, end, params, seed, count)
        inputs = {"candidates": [asdict(c) for c in cands], "roster": names}
        cur = await conn.execute(
            "INSERT INTO inspection_draws (department, period_from, period_to, seed,"
            " requested_count, expected_count, params, inputs, drawn_by)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (department, start, end, seed, count, result.expected_count,
             Jsonb({**asdict(params), "algorithm": algo.ALGORITHM}), Jsonb(inputs), user["id"]))
        draw_id = (await cur.fetchone())[0]
        w_start, w_end = local_bounds(start, end, offset)
        for rank, item in enumerate(result.items, 1):
            cur = await conn.execute(
                "INSERT INTO inspections (entity, window_start, window_end, visit_date,"
                " departments) VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (item.entity, w_start, w_end, item.planned_date, [department]))
            insp = (await cur.fetchone())[0]
            cur = await conn.execute(
                "INSERT INTO tasks (task_kind, entity, inspection_id, department, clue_kind,"
                " state, assignee, co_assignee, assigned_by, assigned_at, due_at)"
                " VALUES ('draw', %s, %s, %s, %s, 'assigned', %s, %s, 'draw', now(), %s)"
                " RETURNING id",
                (item.entity, insp, department, TASK_KIND, item.inspectors[0],
                 item.inspectors[1], w_end))
            task = (await cur.fetchone())[0]
            await conn.execute(
                "INSERT INTO inspection_draw_items (draw_id, rank, entity, inspectors,"
                " planned_date, reason, inspection_id, task_id)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (draw_id, rank, item.entity, list(item.inspectors), item.planned_date,
                 item.reason, insp, task))
        await conn.execute(
            "INSERT INTO audit_log (user_id, department, action, resource_kind, resource_id,"
            " owner_dept, detail) VALUES (%s, %s, 'inspection.draw', 'inspection_draw', %s,"
            " %s, %s)",
            (user["id"], user["department"], str(draw_id), department,
             Jsonb({"seed": seed, "period": [start.isoformat(), end.isoformat()],
                    "count": count, "drawn": len(result.items)})))
        await merge_joint(conn, [i.entity for i in result.items], offset)
    return draw_id, True


async def _find(conn: AsyncConnection, department: str, start: date, end: date,
                seed: int) -> int | None:
    cur = await conn.execute(
        "SELECT id FROM inspection_draws WHERE department = %s AND period_from = %s"
        " AND period_to = %s AND seed = %s", (department, start, end, seed))
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def merge_joint(conn: AsyncConnection, entities: list[str] | None,
                      utc_offset_hours: float) -> list[dict[str, Any]]:
    """Group the open tasks at ``entities`` (None: all) into joint inspections."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT t.id, t.department, t.entity, t.created_at, t.due_at, t.inspection_id,"
        " d.planned_date, w.period_from, w.period_to"
        " FROM tasks t LEFT JOIN inspection_draw_items d ON d.task_id = t.id"
        " LEFT JOIN inspection_draws w ON w.id = d.draw_id"
        " WHERE t.state <> 'closed' AND t.entity IS NOT NULL"
        " AND (%(e)s::text[] IS NULL OR t.entity = ANY (%(e)s))", {"e": entities})
    tasks = []
    for r in await cur.fetchall():
        start, end = r["created_at"], r["due_at"]
        if r["period_from"] is not None:
            start, end = local_bounds(r["period_from"], r["period_to"], utc_offset_hours)
        tasks.append(joint.OpenTask(r["id"], r["department"], r["entity"], start, end,
                                    r["inspection_id"], r["planned_date"]))
    merged = []
    for g in joint.group(tasks, utc_offset_hours):
        if g.inspection_ids:
            target = g.inspection_ids[0]
            await cur.execute(
                "UPDATE inspections SET window_start = %s, window_end = %s, visit_date = %s,"
                " departments = ARRAY(SELECT DISTINCT unnest(departments || %s::text[])"
                " ORDER BY 1), merged_into = NULL, updated_at = now() WHERE id = %s",
                (g.start, g.end, g.visit_date, list(g.departments), target))
        else:
            await cur.execute(
                "INSERT INTO inspections (entity, window_start, window_end, visit_date,"
                " departments) VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (g.entity, g.start, g.end, g.visit_date, list(g.departments)))
            target = (await cur.fetchone())["id"]
        await cur.execute(
            "UPDATE inspections SET merged_into = %s, updated_at = now()"
            " WHERE id = ANY (%s) AND id <> %s", (target, list(g.inspection_ids), target))
        await cur.execute(
            "UPDATE tasks SET inspection_id = %s WHERE id = ANY (%s)"
            " AND inspection_id IS DISTINCT FROM %s", (target, list(g.task_ids), target))
        merged.append({"inspection_id": target, "entity": g.entity,
                       "departments": list(g.departments), "task_ids": list(g.task_ids),
                       "visit_date": g.visit_date.isoformat()})
    return merged


async def ungrouped_since(pool: AsyncConnectionPool,
                          seq: int | None) -> tuple[int, list[str]]:
    """(latest task event number, entities of open tasks changed after ``seq`` that belong
    to no inspection); with ``seq`` None every such task counts."""
    since = "" if seq is None else " WHERE event_seq > %(s)s"  # the event_seq index
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT max(event_seq), coalesce(array_agg(DISTINCT entity) FILTER (WHERE"
            " entity IS NOT NULL AND inspection_id IS NULL AND state <> 'closed'), '{}')"
            f" FROM tasks{since}", {"s": seq})
        top, entities = await cur.fetchone()
    return int(top if top is not None else seq or 0), sorted(entities)


async def merge_entities(pool: AsyncConnectionPool, entities: list[str],
                         utc_offset_hours: float) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        return await merge_joint(conn, entities, utc_offset_hours)


async def merge_all(pool: AsyncConnectionPool, utc_offset_hours: float) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        return await merge_joint(conn, None, utc_offset_hours)


# ---- reading ----------------------------------------------------------------------------------

_DRAW = ("SELECT w.id, w.department, w.period_from, w.period_to, w.seed, w.requested_count,"
         " w.expected_count, w.created_at,"
         " (SELECT count(*) FROM inspection_draw_items i WHERE i.draw_id = w.id) AS drawn"
         " FROM inspection_draws w")


def _draw_json(r: dict[str, Any]) -> dict[str, Any]:
    return {"id": r["id"], "department": r["department"],
            "period_from": r["period_from"].isoformat(), "period_to": r["period_to"].isoformat(),
            "seed": r["seed"], "requested_count": r["requested_count"],
            "expected_count": r["expected_count"], "drawn": r["drawn"],
            "created_at": r["created_at"].astimezone(UTC).isoformat().replace("+00:00", "Z")}


async def list_draws(pool: AsyncConnectionPool, department: str | None,
                     limit: int = 200) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(f"{_DRAW} WHERE (%(d)s::text IS NULL OR w.department = %(d)s)"
                          " ORDER BY w.created_at DESC, w.id DESC LIMIT %(n)s",
                          {"d": department, "n": limit})
        return [_draw_json(r) for r in await cur.fetchall()]


async def get_draw(pool: AsyncConnectionPool, draw_id: int) -> dict[str, Any] | None:
    """The public list: the draw and per item entity, inspectors, date (no risk, no scores)."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(f"{_DRAW} WHERE w.id = %s", (draw_id,))
        row = await cur.fetchone()
        if row is None:
            return None
        await cur.execute(
            "SELECT i.rank, i.entity, e.name AS entity_name, i.inspectors, i.planned_date,"
            " coalesce(n.merged_into, n.id) AS inspection_id,"
            " (SELECT v.visit_date FROM inspections v WHERE v.id = coalesce(n.merged_into, n.id))"
            " AS visit_date"
            " FROM inspection_draw_items i JOIN entities e ON e.id = i.entity"
            " JOIN inspections n ON n.id = i.inspection_id"
            " WHERE i.draw_id = %s ORDER BY i.rank", (draw_id,))
        items = [{"rank": r["rank"], "entity": r["entity"], "entity_name": r["entity_name"],
                  "inspectors": list(r["inspectors"]),
                  "planned_date": r["planned_date"].isoformat(),
                  "inspection_id": r["inspection_id"],
                  "visit_date": r["visit_date"].isoformat() if r["visit_date"] else None}
                 for r in await cur.fetchall()]
    return {**_draw_json(row), "items": items}


async def draw_record(pool: AsyncConnectionPool, draw_id: int) -> dict[str, Any] | None:
    """What recomputing a draw needs: seed, period, count, parameters, inputs, items."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT * FROM inspection_draws WHERE id = %s", (draw_id,))
        row = await cur.fetchone()
        if row is None:
            return None
        await cur.execute("SELECT entity, inspectors, planned_date, reason"
                          " FROM inspection_draw_items WHERE draw_id = %s ORDER BY rank",
                          (draw_id,))
        row["items"] = [{"entity": r["entity"], "inspectors": list(r["inspectors"]),
                         "planned_date": r["planned_date"].isoformat(), "reason": r["reason"]}
                        for r in await cur.fetchall()]
    return row


def recompute(record: dict[str, Any]) -> algo.Draw:
    """The draw again, from its recorded seed, parameters and inputs."""
    p = record["params"]
    params = algo.DrawParams(p["rates"], p["risk_multiplier"], p["yearly_cap"],
                             p["high_risk_share"])
    cands = [algo.Candidate(**c) for c in record["inputs"]["candidates"]]
    return algo.draw(cands, record["inputs"]["roster"], record["period_from"],
                     record["period_to"], params, record["seed"], record["requested_count"])


async def list_inspections(pool: AsyncConnectionPool, department: str | None, joint_only: bool,
                           limit: int = 200) -> list[dict[str, Any]]:
    """Inspections (not merged away), newest visit first, of a department (None: all)."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT id FROM inspections WHERE merged_into IS NULL"
            " AND (%(d)s::text IS NULL OR %(d)s = ANY (departments))"
            " AND (NOT %(j)s OR cardinality(departments) > 1)"
            " ORDER BY visit_date DESC NULLS LAST, id DESC LIMIT %(n)s",
            {"d": department, "j": joint_only, "n": limit})
        ids = [r["id"] for r in await cur.fetchall()]
    found = [await get_inspection(pool, i) for i in ids]
    return [f for f in found if f is not None]


async def get_inspection(pool: AsyncConnectionPool, inspection_id: int) -> dict[str, Any] | None:
    """The visit and each department's task with its own result."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT id, entity, window_start, window_end, visit_date, departments,"
                          " merged_into FROM inspections WHERE id = %s", (inspection_id,))
        row = await cur.fetchone()
        if row is None:
            return None
        await cur.execute(
            "SELECT id, task_kind, department, clue_id, clue_kind, state, assignee, co_assignee,"
            " result, note, closed_at FROM tasks WHERE inspection_id = %s"
            " ORDER BY department, id", (inspection_id,))
        tasks = await cur.fetchall()
    return {"id": row["id"], "entity": row["entity"],
            "window_start": row["window_start"].isoformat(),
            "window_end": row["window_end"].isoformat(),
            "visit_date": row["visit_date"].isoformat() if row["visit_date"] else None,
            "departments": list(row["departments"]), "merged_into": row["merged_into"],
            "joint": len(row["departments"]) > 1,
            "tasks": [{**t, "closed_at": t["closed_at"].isoformat() if t["closed_at"] else None}
                      for t in tasks]}
