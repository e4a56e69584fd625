"""Readings sink throughput: binary COPY into staging + INSERT ON CONFLICT, against
``executemany`` of INSERT ... ON CONFLICT, side by side on the same embedded PostgreSQL.

Run: ``.venv/bin/python -m bench.bench_sink [--readings 20000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from contract.records import Reading
from offsite.services import EmbeddedServices
from storage.db import open_pool
from storage.migrate import migrate
from storage.sinks import ReadingsSink

CODES = ("a34004", "a34002", "a21026", "a21004", "a21005", "a05024")


def make_readings(n: int, station: str) -> list[Reading]:
    start = datetime(2016, 1, 1, tzinfo=UTC)
    return [Reading(station=station, time=start + timedelta(hours=i), period="hour",
                    values={c: float(i % 97 + k) for k, c in enumerate(CODES)})
            for i in range(n)]


async def copy_sink(pool, readings: list[Reading], batch: int) -> None:  # type: ignore[no-untyped-def]
    sink = ReadingsSink()
    for i, r in enumerate(readings, 1):
        sink.add(r)
        if i % batch == 0:
            await sink.flush(pool)
    await sink.flush(pool)


async def executemany(pool, readings: list[Reading], batch: int) -> None:  # type: ignore[no-untyped-def]
    sql = ("INSERT INTO readings (time, station, code, period, value, flag, source)"
           " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING")
    rows = [(r.time, r.station, c, r.period, v, "N", r.source)
            for r in readings for c, v in r.values.items()]
    step = batch * len(CODES)
    for i in range(0, len(rows), step):
        async with pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(sql, rows[i:i + step])


async def main(n: int, rounds: int, batch: int, url: str) -> None:
    pool = await open_pool(url)
    results: dict[str, list[float]] = {"copy+staging": [], "executemany": []}
    for rnd in range(rounds):
        for name, fn in (("copy+staging", copy_sink), ("executemany", executemany)):
            readings = make_readings(n, f"{name}-{rnd}")
            t0 = time.perf_counter()
            await fn(pool, readings, batch)
            results[name].append(n * len(CODES) / (time.perf_counter() - t0))
        # redelivery: the same batch again must add nothing and is timed too
    t0 = time.perf_counter()
    await copy_sink(pool, make_readings(n, "copy+staging-0"), batch)
    redelivery = n * len(CODES) / (time.perf_counter() - t0)
    await pool.close()
    print(f"rows per round: {n * len(CODES)} ({n} readings x {len(CODES)} codes), batch {batch}")
    for name, values in results.items():
        print(f"{name:>14}: median {statistics.median(values):>10,.0f} rows/s  "
              f"(rounds: {', '.join(f'{v:,.0f}' for v in values)})")
    ratio = statistics.median(results["copy+staging"]) / statistics.median(results["executemany"])
    print(f"ratio copy+staging / executemany: {ratio:.1f}x")
    print(f"copy+staging on a full redelivery (all conflicts): {redelivery:,.0f} rows/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readings", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    state = Path(".state/bench-sink")
    with EmbeddedServices(state).start(kafka=False, mqtt=False) as svc:
        migrate(svc.database_url)
        asyncio.run(main(args.readings, args.rounds, args.batch, svc.database_url))
