"""p95 of the monitoring-center clue query with many readings and clues loaded (issue 9.4).

The query is ``storage.access.clues`` as ``GET /clues`` runs it for the monitoring center
(unrestricted): kind + last 24 h + a 1x1 degree bbox, newest first, limit 100. Rows are
made inside PostgreSQL with ``generate_series`` (embedded PostgreSQL in
``.state/bench-storage``): readings over the last 30 days (6 codes per station-hour), clues
spread over the last 365 days, 5 kinds, points in a 10x10 degree box. Clue triggers (event
numbering, task opening) are off while loading (``session_replication_role = replica``), so
no tasks are opened for these clues. p95 is measured without and then with the
``clues_kind_time_idx`` index of migration 006, in the same run.

Run: ``.venv/bin/python -m bench.bench_storage [--quick] [--readings N] [--clues N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from offsite.services import EmbeddedServices, remove_state
from storage import access
from storage.db import open_pool
from storage.migrate import migrate

STATE = Path(".state/bench-storage")
KINDS = ("exceedance", "spike", "flatline", "offline", "near_limit")

LOAD_READINGS = """
INSERT INTO readings (time, station, code, period, value, flag, source)
SELECT date_trunc('hour', now()) - (h.i * interval '1 hour'), 'S' || lpad(s.i::text, 5, '0'),
       c.code, 'hour', random() * 100, 'N', 'bench'
FROM generate_series(0, %(stations)s - 1) AS s(i),
     generate_series(0, %(hours)s - 1) AS h(i),
     unnest(ARRAY['a34004','a34002','a21026','a21004','a21005','a05024']) AS c(code)
"""

LOAD_CLUES = """
INSERT INTO clues (clue_id, modality, kind, rule, subject, state, start, time, confidence,
                   location, summary, detector, site, department)
SELECT 'bench-' || g, 'env', (ARRAY['exceedance','spike','flatline','offline','near_limit'])
       [1 + g %% 5], 'bench', 'S' || lpad((g %% 2000)::text, 5, '0'),
       (ARRAY['open','updated','closed'])[1 + g %% 3], t - interval '1 hour', t, 0.9,
       jsonb_build_object('type', 'Point', 'coordinates',
                          jsonb_build_array(110 + random() * 10, 30 + random() * 10)),
       '', 'bench', 'cell:' || g %% 1000, 'dept-' || g %% 10
FROM (SELECT g, now() - random() * interval '365 days' AS t
      FROM generate_series(%(lo)s, %(hi)s - 1) AS g) AS src
"""


def load(url: str, readings: int, clues: int) -> dict[str, float]:
    stations = 2000
    hours = max(1, readings // (stations * 6))
    out = {}
    with psycopg.connect(url, autocommit=True) as conn:
        t = time.perf_counter()
        conn.execute(LOAD_READINGS, {"stations": stations, "hours": hours})
        out["load_readings_s"] = round(time.perf_counter() - t, 1)
        out["readings"] = stations * hours * 6
        t = time.perf_counter()
        conn.execute("SET session_replication_role = replica")
        step = 200_000
        for lo in range(0, clues, step):
            conn.execute(LOAD_CLUES, {"lo": lo, "hi": min(clues, lo + step)})
        conn.execute("SET session_replication_role = DEFAULT")
        out["load_clues_s"] = round(time.perf_counter() - t, 1)
        out["clues"] = clues
        conn.execute("VACUUM ANALYZE clues")
        conn.execute("ANALYZE readings")
    return out


async def p95(url: str, runs: int) -> tuple[float, float, float]:
    """(p50 ms, p95 ms, mean rows) of the query over random kinds and 1x1 degree boxes."""
    rng = random.Random(95)
    pool = await open_pool(url)
    times, rows = [], []
    try:
        for i in range(runs + 5):
            x, y = 110 + rng.random() * 9, 30 + rng.random() * 9
            since = datetime.now(UTC) - timedelta(hours=24)
            t = time.perf_counter()
            got = await access.clues(pool, dept="center", unrestricted=True,
                                     kind=rng.choice(KINDS), since=since,
                                     bbox=(x, y, x + 1, y + 1), limit=100)
            if i >= 5:  # the first few warm the pool and the cache
                times.append((time.perf_counter() - t) * 1000)
                rows.append(len(got))
    finally:
        await pool.close()
    times.sort()
    return (round(times[len(times) // 2], 2), round(times[int(0.95 * len(times))], 2),
            round(sum(rows) / len(rows), 1))


def main(quick: bool = False, readings: int | None = None,
         clues: int | None = None) -> dict[str, Any]:
    readings = readings or (1_000_000 if quick else 10_000_000)
    clues = clues or (100_000 if quick else 1_000_000)
    runs = 100 if quick else 300
    remove_state(STATE)
    with EmbeddedServices(STATE / "services").start(kafka=False, mqtt=False) as svc:
        migrate(svc.database_url)
        result: dict[str, Any] = load(svc.database_url, readings, clues)
        with psycopg.connect(svc.database_url, autocommit=True) as conn:
            conn.execute("DROP INDEX IF EXISTS clues_kind_time_idx")
        before = asyncio.run(p95(svc.database_url, runs))
        with psycopg.connect(svc.database_url, autocommit=True) as conn:
            conn.execute("CREATE INDEX IF NOT EXISTS clues_kind_time_idx"
                         " ON clues (kind, time DESC)")
            conn.execute("ANALYZE clues")
        after = asyncio.run(p95(svc.database_url, runs))
    result.update({"queries": runs, "no_index_p50_ms": before[0], "no_index_p95_ms": before[1],
                   "p50_ms": after[0], "p95_ms": after[1], "rows_per_query": after[2],
                   "goal_p95_ms": 50})
    return {"benchmark": "storage", "quick": quick, **result}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--readings", type=int, default=None)
    parser.add_argument("--clues", type=int, default=None)
    args = parser.parse_args()
    print(json.dumps(main(args.quick, args.readings, args.clues)))
