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

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from storage.access import fetch

# positions in a readings row as storage.sinks.ReadingsSink lays it out:
# (time, station, code, period, value, flag, source)
TIME, STATION, SOURCE = 0, 1, 6

_NOTE = """
    INSERT INTO unregistered_sources AS u (kind, id, first_seen, last_seen, readings,
                                           last_source)
    SELECT 'station', b.station, b.first_seen, b.last_seen, b.n, b.source
    FROM unnest(%(station)s::text[], %(first)s::timestamptz[], %(last)s::timestamptz[],
                %(n)s::bigint[], %(source)s::text[])
         AS b(station, first_seen, last_seen, n, source)
    WHERE NOT EXISTS (SELECT 1 FROM stations s WHERE s.id = b.station AND s.status = 'active')
      AND NOT EXISTS (SELECT 1 FROM power_channels p
                      WHERE p.meter = b.station AND p.status = 'active')
    ON CONFLICT (kind, id) DO UPDATE SET
        first_seen = least(u.first_seen, EXCLUDED.first_seen),
        last_seen = greatest(u.last_seen, EXCLUDED.last_seen),
        readings = u.readings + EXCLUDED.readings,
        last_source = EXCLUDED.last_source, updated_at = now()"""


def summarize(rows: Iterable[Sequence[Any]]) -> dict[str, tuple[datetime, datetime, int, str]]:
    """Per station of a batch: (first time, last time, values, last source)."""
    out: dict[str, tuple[datetime, datetime, int, str]] = {}
    for row in rows:
        station, time, source = row[STATION], row[TIME], row[SOURCE]
        got = out.get(station)
        out[station] = ((time, time, 1, source) if got is None else
                        (min(got[0], time), max(got[1], time), got[2] + 1, source))
    return out


async def note_unregistered(conn: AsyncConnection, rows: Iterable[Sequence[Any]]) -> None:
    """Count a batch's readings of stations with no active registry row (one statement;
    the per-station lookup is by primary key, a few stations per batch)."""
    per = summarize(rows)
    if not per:
        return
    stations = list(per)
    await conn.execute(_NOTE, {"station": stations,
                               "first": [per[s][0] for s in stations],
                               "last": [per[s][1] for s in stations],
                               "n": [per[s][2] for s in stations],
                               "source": [per[s][3] for s in stations]})


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
