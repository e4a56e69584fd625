"""Cost of keeping entity risk current (issue 17): the trigger on every clue write, a full
recompute of every entity, and the recompute of one queued entity.

Embedded PostgreSQL in ``.state/bench-risk``. Entities each have two stations and one
enterprise-site zone id; clues are made inside PostgreSQL with ``generate_series`` about
those stations (half of them also routed to the entity's zone), times over the last year,
no department (no tasks). Clue inserts are timed in the same run without and with the risk
triggers (``clues_risk_inserted``, ``clues_risk_updated``), in alternating batches, so the
ratio is side by side.

Run: ``.venv/bin/python -m bench.bench_risk [--quick] [--entities N] [--clues N]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from offsite.services import EmbeddedServices, remove_state
from oversight.risk import RiskWeights
from storage import risk
from storage.migrate import migrate

STATE = Path(".state/bench-risk")

SEED = """
INSERT INTO departments (id, name) VALUES ('bench', 'bench') ON CONFLICT DO NOTHING;
INSERT INTO entities (id, name, credit_class, owner_dept, zones)
SELECT 'E' || lpad(i::text, 6, '0'), 'entity ' || i, 'B', 'bench', ARRAY['es-' || i]
FROM generate_series(0, %(n)s - 1) AS i;
INSERT INTO stations (id, name, owner_dept, entity)
SELECT 'S' || lpad(i::text, 7, '0'), 'station ' || i, 'bench',
       'E' || lpad((i / 2)::text, 6, '0')
FROM generate_series(0, 2 * %(n)s - 1) AS i
"""

CLUES = """
INSERT INTO clues (clue_id, modality, kind, rule, subject, state, start, time, "end",
                   confidence, summary, site, zones)
SELECT 'bench-' || g, 'env',
       (ARRAY['exceedance','replay','offline','flatline','near_limit'])[1 + g %% 5], 'bench',
       'S' || lpad((g %% (2 * %(n)s))::text, 7, '0'),
       CASE WHEN g %% 10 = 0 THEN 'open' ELSE 'closed' END,
       t - interval '6 hours', t, CASE WHEN g %% 10 = 0 THEN NULL ELSE t END, 0.9, '',
       'cell', CASE WHEN g %% 2 = 0 THEN jsonb_build_array(jsonb_build_object(
           'id', 'es-' || ((g %% (2 * %(n)s)) / 2), 'kind', 'enterprise_site'))
           ELSE '[]'::jsonb END
FROM (SELECT g, now() - random() * interval '365 days' AS t
      FROM generate_series(%(lo)s, %(hi)s - 1) AS g) AS src
"""


def insert_clues(conn: psycopg.Connection, n: int, lo: int, hi: int, trigger: bool) -> float:
    for name in ("clues_risk_inserted", "clues_risk_updated"):
        conn.execute(f"ALTER TABLE clues {'ENABLE' if trigger else 'DISABLE'} TRIGGER {name}")
    conn.commit()
    t0 = time.perf_counter()
    conn.execute(CLUES, {"n": n, "lo": lo, "hi": hi})
    conn.commit()
    return time.perf_counter() - t0


def run(entities: int, clues: int) -> dict[str, float]:
    remove_state(STATE)
    with EmbeddedServices(STATE / "services").start(kafka=False, mqtt=False) as svc:
        migrate(svc.database_url)
        weights = RiskWeights()
        with psycopg.connect(svc.database_url) as conn:
            for statement in SEED.strip().split(";\n"):
                conn.execute(statement, {"n": entities})
            conn.commit()
            batch, timings = clues // 10, {True: [], False: []}
            for i in range(10):  # alternating batches: without, with, without, ...
                trigger = i % 2 == 1
                timings[trigger].append(insert_clues(conn, entities, i * batch,
                                                     (i + 1) * batch, trigger))
            queued = risk.queued(conn)
            conn.commit()
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE")  # as autovacuum leaves a table in steady state
            t0 = time.perf_counter()
            done = risk.recompute_all(conn, datetime.now(UTC), weights, 0.5) or []
            full_s = time.perf_counter() - t0
            conn.autocommit = False
            conn.execute("DELETE FROM entity_risk_dirty")
            conn.commit()
            one = []
            for i in range(50):
                conn.execute("INSERT INTO entity_risk_dirty (entity) VALUES (%s)",
                             (f"E{i * 7 % entities:06d}",))
                conn.commit()
                t0 = time.perf_counter()
                risk.recompute_queued(conn, datetime.now(UTC), weights, 0.5)
                one.append(time.perf_counter() - t0)
    per_clue = {k: sum(v) / (batch * len(v)) for k, v in timings.items()}
    remove_state(STATE)
    return {"entities": entities, "clues": clues,
            "insert_us_per_clue_without_trigger": round(per_clue[False] * 1e6, 1),
            "insert_us_per_clue_with_trigger": round(per_clue[True] * 1e6, 1),
            "trigger_ratio": round(per_clue[True] / per_clue[False], 2),
            "entities_queued_by_inserts": queued,
            "full_recompute_s": round(full_s, 2),
            "full_recompute_entities": len(done),
            "one_entity_recompute_ms_p50": round(statistics.median(one) * 1e3, 2),
            "one_entity_recompute_ms_max": round(max(one) * 1e3, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 entities, 20 k clues")
    parser.add_argument("--entities", type=int, default=2000)
    parser.add_argument("--clues", type=int, default=200_000)
    args = parser.parse_args()
    if args.quick:
        args.entities, args.clues = 200, 20_000
    print(json.dumps(run(args.entities, args.clues)))


if __name__ == "__main__":
    main()
