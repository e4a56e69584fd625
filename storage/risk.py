"""Recomputing the risk of regulated entities (tables of migrations 010 and 013).

The formula is pure (``oversight/risk.py``); this module reads each entity's clues with
their task results, hands them to it and writes ``entity_risk`` (the current score, level
and top contributions) and, when the score moved, ``entity_risk_history``.

Which entities: those the triggers of migration 013 queued in ``entity_risk_dirty``
(``recompute_queued``: clues, task results, monitors' entity, entity zones changed), or a
list, or all active ones (``recompute``). Every recompute of an entity is a pure function
of the database and the moment, so running one twice (two API instances, a retry after a
crash) writes the same row: idempotent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

from oversight.risk import ClueFact, Risk, RiskWeights, score

# An entity's clues: by its stations, its cameras, its power meters (power clues are about
# the entity itself) and its enterprise-site zones (the UNION
# keeps a clue that is linked twice once). Closed clues older than the horizon are not
# read (their terms are below 1/1000 of their weight).
_COLS = ('c.clue_id, c.kind, c.modality, c.subject, c.state, c.start, c.time, c."end"')
_RECENT = "(c.state <> 'closed' OR c.time >= %(horizon)s)"
_CLUES = f"""
WITH ent AS (SELECT id, zones FROM entities WHERE id = ANY(%(ids)s)),
linked AS (
    SELECT ent.id AS entity, {_COLS} FROM ent JOIN stations s ON s.entity = ent.id
    JOIN clues c ON c.subject = s.id AND c.modality = 'env' WHERE {_RECENT}
    UNION
    SELECT ent.id, {_COLS} FROM ent JOIN cameras k ON k.entity = ent.id
    JOIN clues c ON c.subject = k.id AND c.modality = 'video' WHERE {_RECENT}
    UNION
    SELECT ent.id, {_COLS} FROM ent
    JOIN clues c ON c.subject = ent.id AND c.modality = 'power' WHERE {_RECENT}
    UNION
    SELECT ent.id, {_COLS} FROM ent CROSS JOIN LATERAL unnest(ent.zones) AS z(id)
    JOIN clues c ON c.zones @> jsonb_build_array(jsonb_build_object('id', z.id))
    WHERE {_RECENT})
SELECT l.*, t.result FROM linked l LEFT JOIN tasks t ON t.clue_id = l.clue_id
"""


@dataclass(frozen=True)
class EntityRisk:
    """What was written for one entity."""

    entity: str
    risk: Risk
    clues: int
    history: bool  # a history row was added

    def line(self) -> str:
        return f"{self.entity}\t{self.risk.score:.2f}\t{self.risk.level}\t{self.clues} clue(s)"


def active_entities(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT id FROM entities WHERE status = 'active' ORDER BY id")]


def entity_clues(conn: psycopg.Connection, ids: Sequence[str], now: datetime,
                 weights: RiskWeights) -> dict[str, list[ClueFact]]:
    """The clues of each entity (with the result of their task, if reported)."""
    out: dict[str, list[ClueFact]] = defaultdict(list)
    horizon = now - timedelta(days=weights.horizon_days)
    for row in conn.execute(_CLUES, {"ids": list(ids), "horizon": horizon}):
        out[row[0]].append(ClueFact(*row[1:]))
    return out


def recompute(conn: psycopg.Connection, ids: Sequence[str] | None, now: datetime,
              weights: RiskWeights, history_step: float) -> list[EntityRisk]:
    """Recompute ``ids`` (None: every active entity) at ``now`` and write the results.

    Runs in the caller's transaction if there is one (``recompute_queued``), else in its own.
    Ids that are no entity are skipped.
    """
    with conn.transaction():
        # the planner overestimates the zone join (unnest x GIN) by orders of magnitude and
        # would JIT-compile the query: seconds of compiling for milliseconds of work
        conn.execute("SET LOCAL jit = off")
        known = set(active_entities(conn)) if ids is None else {r[0] for r in conn.execute(
            "SELECT id FROM entities WHERE id = ANY(%s)", (list(ids),))}
        chosen = sorted(known)
        clues = entity_clues(conn, chosen, now, weights)
        last = {r[0]: (r[1], r[2]) for r in conn.execute(
            "SELECT DISTINCT ON (entity) entity, score, level FROM entity_risk_history"
            " WHERE entity = ANY(%s) ORDER BY entity, computed_at DESC", (chosen,))}
        out = []
        for entity in chosen:
            facts = clues.get(entity, [])
            risk = score(facts, now, weights)
            before = last.get(entity)
            moved = (before is None or before[1] != risk.level
                     or abs(before[0] - risk.score) >= history_step)
            out.append(EntityRisk(entity, risk, len(facts), moved))
        _write(conn, out, now, weights.top_n)
    return out


def _write(conn: psycopg.Connection, results: list[EntityRisk], now: datetime,
           top_n: int) -> None:
    """All rows in two batched statements (psycopg pipelines executemany: no round trip
    per entity)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO entity_risk (entity, score, level, contributions, clues, computed_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (entity) DO UPDATE SET"
            " score = EXCLUDED.score, level = EXCLUDED.level,"
            " contributions = EXCLUDED.contributions, clues = EXCLUDED.clues,"
            " computed_at = EXCLUDED.computed_at",
            [(r.entity, r.risk.score, r.risk.level, Jsonb(r.risk.contributions(top_n)),
              r.clues, now) for r in results])
        cur.executemany(
            "INSERT INTO entity_risk_history (entity, computed_at, score, level, clues)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (entity, computed_at) DO UPDATE SET"
            " score = EXCLUDED.score, level = EXCLUDED.level, clues = EXCLUDED.clues",
            [(r.entity, now, r.risk.score, r.risk.level, r.clues)
             for r in results if r.history])


def recompute_queued(conn: psycopg.Connection, now: datetime, weights: RiskWeights,
                     history_step: float, limit: int = 500) -> tuple[int, list[EntityRisk]]:
    """Take up to ``limit`` queued entities, recompute them and dequeue them in one
    transaction (rows another process holds are skipped: it recomputes them). Returns how
    many were taken (0: the queue is empty for us) and the results."""
    with conn.transaction():
        ids = [r[0] for r in conn.execute(
            "DELETE FROM entity_risk_dirty WHERE entity IN (SELECT entity FROM"
            " entity_risk_dirty ORDER BY since FOR UPDATE SKIP LOCKED LIMIT %s)"
            " RETURNING entity", (limit,))]
        return len(ids), (recompute(conn, ids, now, weights, history_step) if ids else [])


def queued(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM entity_risk_dirty").fetchone()
    return int(row[0]) if row else 0


def recompute_all(conn: psycopg.Connection, now: datetime, weights: RiskWeights,
                  history_step: float, *, exclusive: bool = False,
                  chunk: int = 500) -> list[EntityRisk] | None:
    """Recompute every active entity, ``chunk`` entities per transaction (no transaction
    holds rows for long). ``exclusive``: only if no other session runs it (the periodic
    round of several API instances); None when another does. ``conn`` is in autocommit."""
    if exclusive:
        row = conn.execute("SELECT pg_try_advisory_lock(hashtext('offsite_risk_full'))"
                           ).fetchone()
        if not (row and row[0]):
            return None
    try:
        ids, out = active_entities(conn), []
        for start in range(0, len(ids), chunk):
            out += recompute(conn, ids[start:start + chunk], now, weights, history_step)
        return out
    finally:
        if exclusive:
            conn.execute("SELECT pg_advisory_unlock(hashtext('offsite_risk_full'))")



def ranked(conn: psycopg.Connection, level: str | None, department: str | None,
           limit: int) -> list[tuple]:
    """(entity, name, credit class, owner, score, level, clues, computed_at) of active
    entities, highest score first: ``offsite risk list``."""
    return conn.execute(
        "SELECT e.id, e.name, e.credit_class, e.owner_dept, coalesce(r.score, 0),"
        " coalesce(r.level, 'low'), coalesce(r.clues, 0), r.computed_at"
        " FROM entities e LEFT JOIN entity_risk r ON r.entity = e.id"
        " WHERE e.status = 'active' AND (%(l)s::text IS NULL OR coalesce(r.level, 'low') = %(l)s)"
        " AND (%(d)s::text IS NULL OR e.owner_dept = %(d)s)"
        " ORDER BY coalesce(r.score, 0) DESC, e.id LIMIT %(n)s",
        {"l": level, "d": department, "n": limit}).fetchall()
