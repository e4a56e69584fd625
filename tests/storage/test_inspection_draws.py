"""Draw odds on a real PostgreSQL: candidates are read through ``storage.inspections`` (credit
class, risk, draws so far this year) and drawn many times with different seeds; the
selection frequency of each credit class follows the configured rates. The CLI draws,
writes the public CSV and finds the same draw again from the same seed."""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import psycopg
import pytest

from contract.settings import Settings
from oversight.draws import draw
from storage import inspections as store
from storage.db import open_pool
from tests.inspection_registry import ECO, registry

ROOT = Path(__file__).resolve().parents[2]
PER_CLASS = 40
SEEDS = 3000


def many_entities(db: str) -> None:
    registry(db)
    with psycopg.connect(db) as conn:
        conn.execute("UPDATE entities SET status = 'retired'")  # the four of the registry
        for cls in "ABCD":
            for i in range(PER_CLASS):
                conn.execute("INSERT INTO entities (id, name, credit_class, owner_dept, zones)"
                             " VALUES (%s, %s, %s, %s, '{es-1}')",
                             (f"{cls}-{i:03d}", f"企业{cls}{i}", cls, ECO))


def candidates(db: str, year: int):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        pool = await open_pool(db, max_size=1)
        try:
            async with pool.connection() as conn:
                return await store.candidates(conn, ECO, year)
        finally:
            await pool.close()
    return asyncio.run(main())


@pytest.mark.parametrize("count", [None, 30])
def test_class_frequencies_follow_the_rates(fresh_db: str, count: int | None) -> None:
    """Over 3,000 seeded draws of one month among 40 entities per class, each class's
    selection frequency f_c (selections / (40 x 3,000)) is within 4 binomial standard errors
    of its inclusion probability p_c, sqrt(p_c (1 - p_c) / 120,000): p_c = rate_c x 31/365
    without a count, and p_c = 30 x rate_c / (40 x sum of rates) with ``count`` = 30 (no
    class reaches 1 there). A draw is without replacement, which makes the class counts
    vary less than independent trials, so 4 binomial sigmas is a conservative bound (a
    false alarm about 1 in 16,000 per class). The ratios between classes then follow."""
    many_entities(fresh_db)
    params = store.params_from(Settings())
    cands = candidates(fresh_db, 2027)
    assert len(cands) == 4 * PER_CLASS and all(c.level == "low" for c in cands)
    start, end = date(2027, 3, 1), date(2027, 3, 31)
    hits = dict.fromkeys("ABCD", 0)
    for seed in range(SEEDS):
        for item in draw(cands, ["i1", "i2", "i3"], start, end, params, seed, count).items:
            hits[item.entity[0]] += 1
    total_rate = sum(params.rates[c] for c in "ABCD")
    n = PER_CLASS * SEEDS
    for cls in "ABCD":
        p = (params.rates[cls] * 31 / 365 if count is None
             else count * params.rates[cls] / (PER_CLASS * total_rate))
        sigma = (p * (1 - p) / n) ** 0.5
        assert abs(hits[cls] / n - p) <= 4 * sigma, (cls, hits[cls] / n, p, sigma)


def offsite(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OFFSITE_DATABASE_URL": db, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "offsite", "inspections", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=180)


def test_cli_draw_csv_same_seed_and_yearly_cap(fresh_db: str, tmp_path: Path) -> None:
    registry(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        for name in ("eco-1", "eco-2"):
            conn.execute("INSERT INTO users (id, department, role) VALUES (%s, %s, 'inspector')",
                         (name, ECO))
    args = ["draw", "--department", ECO, "--from", "2027-05-01", "--to", "2027-05-31",
            "--count", "3", "--seed", "77"]
    first = offsite(fresh_db, *args, "--out", str(tmp_path / "one.csv"))
    assert first.returncode == 0, first.stderr
    assert "(new)" in first.stderr and "seed 77" in first.stderr
    again = offsite(fresh_db, *args, "--out", str(tmp_path / "two.csv"))
    assert again.returncode == 0 and "(existing)" in again.stderr
    assert first.stdout == again.stdout
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    with (tmp_path / "one.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and {r["inspector_1"] for r in rows} <= {"eco-1", "eco-2"}
    assert all(r["inspector_1"] != r["inspector_2"] for r in rows)
    assert all(r["entity_name"] == f"企业{r['entity']}" for r in rows)
    draw_id = rows[0]["draw_id"]
    check = offsite(fresh_db, "verify", draw_id)
    assert check.returncode == 0 and "reproduced" in check.stdout
    # the draws so far count against the yearly cap of each entity
    drawn = {c.entity: c.drawn_this_year for c in candidates(fresh_db, 2027)}
    assert sorted(drawn.values()) == [0, 1, 1, 1]
    assert candidates(fresh_db, 2028)[0].drawn_this_year == 0
    assert offsite(fresh_db, "draw", "--department", "nobody", "--from", "2027-05-01",
                   "--to", "2027-05-02").returncode == 2
