"""Migrations on a real PostgreSQL (plain path) and the TimescaleDB rendering of the same SQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg

from storage.migrate import load_migrations, migrate, render


def test_migrate_is_idempotent_and_versioned(fresh_db: str) -> None:
    flavor, applied = migrate(fresh_db)
    assert applied == []  # the fixture already applied everything
    with psycopg.connect(fresh_db) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == [m.version for m in load_migrations()]
        assert {r[0] for r in conn.execute("SELECT DISTINCT flavor FROM schema_migrations")} \
            == {flavor}


def test_plain_postgres_gets_time_partitions_and_brin(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        strategy = conn.execute(
            "SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'readings'::regclass"
        ).fetchone()
        assert strategy == ("r",)
        parts = {r[0] for r in conn.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits"
            " WHERE inhparent = 'readings'::regclass")}
        this_month = datetime.now(UTC).strftime("readings_%Y%m")
        assert "readings_default" in parts and this_month in parts
        brin = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'readings_time_brin'"
                            ).fetchone()
        assert brin and "USING brin" in brin[0]


def test_same_queries_work_on_plain_path(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "INSERT INTO readings (time, station, code, period, value, flag, source) VALUES"
            " ('2015-01-01 10:05+08', 's1', 'a34004', 'rtd', 10, 'N', 't'),"
            " ('2015-01-01 10:35+08', 's1', 'a34004', 'rtd', 30, 'N', 't'),"
            " ('2015-01-01 10:40+08', 's1', 'a34004', 'rtd', 999, 'D', 't')")
        row = conn.execute("SELECT mean, n FROM readings_hourly WHERE station = 's1'").fetchone()
        assert row == (20.0, 2)  # flagged D is not valid data


def test_timescale_rendering_has_hypertables_compression_retention_and_caggs() -> None:
    sql = "\n".join(render(m.sql, "timescale", date(2026, 1, 15)) for m in load_migrations())
    for table in ("readings", "clue_events", "camera_health"):
        assert f"create_hypertable('{table}'" in sql
        assert f"ALTER TABLE {table} SET (timescaledb.compress" in sql
        assert f"add_compression_policy('{table}'" in sql
        assert f"add_retention_policy('{table}'" in sql
    assert "WITH (timescaledb.continuous)" in sql
    assert "add_continuous_aggregate_policy('readings_hourly'" in sql
    assert "PARTITION BY RANGE" not in sql and "brin" not in sql


def test_plain_rendering_has_no_timescale_calls() -> None:
    sql = "\n".join(render(m.sql, "postgres", date(2026, 1, 15)) for m in load_migrations())
    assert "timescaledb" not in sql and "create_hypertable" not in sql
    assert "SELECT offsite_add_partition('readings', DATE '2026-01-01', DATE '2026-02-01');" in sql
