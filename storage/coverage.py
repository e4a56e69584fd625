"""The rows behind enforcement coverage (``oversight.coverage`` does the arithmetic).

Per department (or all) and period [since, until): clue tasks created in it, clue tasks
closed in it, drawn inspections planned in it (local dates), and the department's
high-risk entities with whether any task of the department at them was ever closed.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from oversight import coverage as calc
from storage.inspections import OF_DEPARTMENT

_CLUE_TASK = ("SELECT clue_kind AS kind, created_at, due_at, accepted_at, closed_at, result"
              " FROM tasks WHERE task_kind = 'clue'"
              " AND (%(d)s::text IS NULL OR department = %(d)s)")


def _local_date(t: datetime, utc_offset_hours: float) -> date:
    return (t + timedelta(hours=utc_offset_hours)).date()


async def coverage(pool: AsyncConnectionPool, department: str | None, since: datetime,
                   until: datetime, now: datetime, utc_offset_hours: float) -> dict:
    params = {"d": department, "s": since, "u": until,
              "ds": _local_date(since, utc_offset_hours),
              "du": _local_date(until, utc_offset_hours)}
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(f"{_CLUE_TASK} AND created_at >= %(s)s AND created_at < %(u)s", params)
        created = [calc.ClueTask(**r) for r in await cur.fetchall()]
        await cur.execute(f"{_CLUE_TASK} AND state = 'closed' AND closed_at >= %(s)s"
                          " AND closed_at < %(u)s", params)
        closed = [calc.ClueTask(**r) for r in await cur.fetchall()]
        await cur.execute(
            "SELECT i.entity, t.state, t.result FROM inspection_draw_items i"
            " JOIN inspection_draws w ON w.id = i.draw_id JOIN tasks t ON t.id = i.task_id"
            " WHERE (%(d)s::text IS NULL OR w.department = %(d)s)"
            " AND i.planned_date >= %(ds)s AND i.planned_date < %(du)s", params)
        drawn = [calc.DrawnTask(**r) for r in await cur.fetchall()]
        of_dept = OF_DEPARTMENT if department is not None else "TRUE"
        await cur.execute(
            "SELECT e.id AS entity, e.name, r.score, EXISTS (SELECT 1 FROM tasks t"
            "  WHERE t.entity = e.id AND t.state = 'closed' AND t.closed_at < %(u)s"
            "  AND (%(d)s::text IS NULL OR t.department = %(d)s)) AS inspected"
            " FROM entities e JOIN entity_risk r ON r.entity = e.id"
            f" WHERE e.status = 'active' AND r.level = 'high' AND {of_dept}", params)
        risky = [calc.RiskyEntity(**r) for r in await cur.fetchall()]
    return calc.coverage(created, closed, drawn, risky, now)
