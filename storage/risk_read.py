"""Reads of entity risk for the API (``GET /risk``, ``GET /risk/{entity}``).

Who sees an entity (decided in ``api/risk.py``, as SQL here): admins and the monitoring
center all of them; another department the entities it owns, those watched by a station or
camera it owns, and those whose enterprise-site zones it owns or lie in its county (a
department id ``<county>-<role>``, a zone's ``county``).

An entity not yet computed is listed with score 0, level ``low`` and ``computed_at`` null.
The map draws each entity at its enterprise-site zones (``location``: a GeometryCollection)
or, with no zone, at its stations and cameras (a MultiPoint).
"""

from __future__ import annotations

from typing import Any, Literal

from psycopg_pool import AsyncConnectionPool

from storage.access import fetch, fetch_one

Sort = Literal["score", "name"]

_COLUMNS = """
e.id AS entity, e.name, e.credit_class, e.owner_dept, e.licence, e.zones,
(SELECT name FROM departments WHERE id = e.owner_dept) AS owner_dept_name,
coalesce(r.score, 0) AS score, coalesce(r.level, 'low') AS level,
coalesce(r.contributions, '[]'::jsonb) AS contributions, coalesce(r.clues, 0) AS clues,
r.computed_at,
coalesce(
  (SELECT jsonb_build_object('type', 'GeometryCollection', 'geometries', jsonb_agg(z.geometry))
   FROM zones z WHERE z.id = ANY(e.zones) AND z.status = 'active' HAVING count(*) > 0),
  (SELECT jsonb_build_object('type', 'MultiPoint', 'coordinates',
                             jsonb_agg(jsonb_build_array(m.lon, m.lat)))
   FROM (SELECT lon, lat FROM stations WHERE entity = e.id
         UNION SELECT lon, lat FROM cameras WHERE entity = e.id) m
   WHERE m.lon IS NOT NULL AND m.lat IS NOT NULL HAVING count(*) > 0)) AS location
"""


def _visible(unrestricted: bool) -> str:
    if unrestricted:
        return "TRUE"
    return ("(e.owner_dept = %(dept)s"
            " OR EXISTS (SELECT 1 FROM stations s WHERE s.entity = e.id"
            "            AND s.owner_dept = %(dept)s)"
            " OR EXISTS (SELECT 1 FROM cameras k WHERE k.entity = e.id"
            "            AND k.owner_dept = %(dept)s)"
            " OR EXISTS (SELECT 1 FROM zones z WHERE z.id = ANY(e.zones)"
            "            AND (z.owner_dept = %(dept)s"
            "                 OR (z.county <> '' AND z.county = split_part(%(dept)s, '-', 1)))))")


async def entities(pool: AsyncConnectionPool, *, dept: str, unrestricted: bool,
                   department: str | None, credit_class: str | None, level: str | None,
                   sort: Sort, after: tuple[Any, str] | None, limit: int) -> list[dict]:
    """Active entities the caller may see, keyset-paged: by score (highest first) or name,
    ties by id; ``after`` is the (score or name, id) of the last row seen."""
    where = ["e.status = 'active'", _visible(unrestricted),
             "(%(department)s::text IS NULL OR e.owner_dept = %(department)s)",
             "(%(credit)s::text IS NULL OR e.credit_class = %(credit)s)",
             "(%(level)s::text IS NULL OR coalesce(r.level, 'low') = %(level)s)"]
    params: dict[str, Any] = {"dept": dept, "department": department, "credit": credit_class,
                              "level": level, "limit": limit}
    if sort == "score":
        order = "coalesce(r.score, 0) DESC, e.id"
        if after is not None:
            where.append("(coalesce(r.score, 0) < %(a_key)s::float8 OR (coalesce(r.score, 0)"
                         " = %(a_key)s::float8 AND e.id > %(a_id)s))")
    else:
        order = "e.name, e.id"
        if after is not None:
            where.append("(e.name, e.id) > (%(a_key)s::text, %(a_id)s)")
    if after is not None:
        params.update(a_key=after[0], a_id=after[1])
    return await fetch(pool, f"SELECT {_COLUMNS} FROM entities e LEFT JOIN entity_risk r"
                             f" ON r.entity = e.id WHERE {' AND '.join(where)}"
                             f" ORDER BY {order} LIMIT %(limit)s", params)


async def entity(pool: AsyncConnectionPool, entity_id: str, *, dept: str,
                 unrestricted: bool) -> dict | None:
    """One entity with its risk, if the caller may see it (retired ones too)."""
    return await fetch_one(pool, f"SELECT {_COLUMNS}, e.status FROM entities e LEFT JOIN"
                                 " entity_risk r ON r.entity = e.id WHERE e.id = %(id)s"
                                 f" AND {_visible(unrestricted)}",
                           {"id": entity_id, "dept": dept})


async def history(pool: AsyncConnectionPool, entity_id: str, limit: int) -> list[dict]:
    """Score snapshots, newest first."""
    return await fetch(pool, "SELECT computed_at, score, level, clues FROM entity_risk_history"
                             " WHERE entity = %(id)s ORDER BY computed_at DESC LIMIT %(limit)s",
                       {"id": entity_id, "limit": limit})
