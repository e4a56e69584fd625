"""Unregistered sources: readings of stations the registry does not list, counted.

Readings of an unknown (or retired) station are stored in ``readings`` like any other --
there is no foreign key, nothing is dropped and no ``stations`` row is invented, since an
invented row would have no owner, no place and no password and would hide the question.
The readings sink calls ``note_unregistered`` with each batch, inside its transaction, so
``unregistered_sources`` (migration 008) tells per station when it was first and last seen,
how many values came and over which path. Registering the station ends the count (its row
stays as the record of what came before).
"""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from storage.access import fetch

_NOTE = """
    WITH candidates AS (
        SELECT DISTINCT st.station FROM {stage} st
        WHERE NOT EXISTS (SELECT 1 FROM stations s
                          WHERE s.id = st.station AND s.status = 'active')
          AND NOT EXISTS (SELECT 1 FROM power_channels p
                          WHERE p.meter = st.station AND p.status = 'active')),
    fresh AS (
        SELECT DISTINCT ON (st.station, st.code, st.period, st.time)
               st.station, st.time, st.source
        FROM {stage} st JOIN candidates USING (station)
        WHERE NOT EXISTS (SELECT 1 FROM readings r
                          WHERE r.station = st.station AND r.code = st.code
                            AND r.period = st.period AND r.time = st.time))
    INSERT INTO unregistered_sources AS u (kind, id, first_seen, last_seen, readings,
                                           last_source)
    SELECT 'station', station, min(time), max(time), count(*),
           (array_agg(source ORDER BY time DESC))[1]
    FROM fresh GROUP BY station
    ON CONFLICT (kind, id) DO UPDATE SET
        first_seen = least(u.first_seen, EXCLUDED.first_seen),
        last_seen = greatest(u.last_seen, EXCLUDED.last_seen),
        readings = u.readings + EXCLUDED.readings,
        last_source = CASE WHEN EXCLUDED.last_seen >= u.last_seen THEN EXCLUDED.last_source
                           ELSE u.last_source END,
        updated_at = now()"""


async def note_unregistered(conn: AsyncConnection, stage: str) -> None:
    """Count the staged readings of stations with no active registry row, before they are
    inserted: only values ``readings`` does not hold yet, so a batch delivered again (the
    at-least-once path after a crash) counts nothing twice. All in SQL: the stations are
    looked up once each, and the worker does no per-row work for it."""
    await conn.execute(_NOTE.format(stage=stage))


async def unregistered_sources(pool: AsyncConnectionPool, *,
                               include_registered: bool = False) -> list[dict]:
    """Sources seen without a registry row, latest first (``include_registered``: also
    those registered since)."""
    return await fetch(pool, """
        SELECT u.kind, u.id, u.first_seen, u.last_seen, u.readings, u.last_source,
               (s.id IS NOT NULL OR m.meter IS NOT NULL) AS registered
        FROM unregistered_sources u
        LEFT JOIN stations s ON u.kind = 'station' AND s.id = u.id AND s.status = 'active'
        LEFT JOIN (SELECT DISTINCT meter FROM power_channels WHERE status = 'active') m
               ON u.kind = 'station' AND m.meter = u.id
        WHERE %(all)s OR (s.id IS NULL AND m.meter IS NULL)
        ORDER BY u.last_seen DESC, u.id""", {"all": include_registered})
