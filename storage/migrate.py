"""Versioned, idempotent schema migrations for TimescaleDB or plain PostgreSQL.

Migration files are plain SQL with two kinds of directive comments, rendered per flavour so
that the same tables and the same queries exist on both:

* ``/*@partitioned(col)*/`` after a CREATE TABLE: nothing on TimescaleDB (the hypertable
  partitions it), ``PARTITION BY RANGE (col)`` on plain PostgreSQL.
* ``/*@timeseries(table, col, chunk=.., segmentby=.., compress_after=.., retain=..)*/``:
  hypertable + columnstore compression + retention on TimescaleDB; a default partition,
  monthly partitions around today and a BRIN index on plain PostgreSQL.
* ``/*@hourly_readings*/``: a continuous aggregate on TimescaleDB, a view otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from typing import Literal

import psycopg
from psycopg import sql

Flavor = Literal["timescale", "postgres"]
_DIRECTIVE = re.compile(r"/\*@(\w+)(?:\((.*?)\))?\*/", re.S)
NOTX = "/*!notx*/ "
_LOCK_ID = 0x0FF5173  # advisory lock so concurrent `db migrate` calls serialise


def ensure_database(admin: psycopg.Connection, name: str = "offsite") -> bool:
    """Create database ``name`` unless it exists, over an autocommit ``admin`` connection
    to another database of the cluster (``postgres``); True when it was created.

    The embedded cluster (``offsite/services.py``) calls this while waiting for the server to
    come up, so a fresh ``initdb`` gets the database the URLs name.
    """
    exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if exists:
        return False
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return True


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    out = []
    for entry in resources.files("storage").joinpath("migrations").iterdir():
        m = re.fullmatch(r"(\d+)_(\w+)\.sql", entry.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    return sorted(out, key=lambda m: m.version)


def _split_args(raw: str) -> tuple[list[str], dict[str, str]]:
    parts = [p.replace("\0", ",").strip() for p in raw.replace("\\,", "\0").split(",")]
    positional = [p for p in parts if "=" not in p]
    named = dict(p.split("=", 1) for p in parts if "=" in p)
    return positional, {k.strip(): v.strip() for k, v in named.items()}


def _month_starts(today: date, back: int, ahead: int) -> list[date]:
    index = today.year * 12 + today.month - 1
    return [date(i // 12, i % 12 + 1, 1) for i in range(index - back, index + ahead + 2)]


def _timeseries(args: str, flavor: Flavor, today: date) -> str:
    (table, col), opt = _split_args(args)
    if flavor == "timescale":
        segment = opt.get("segmentby", "")
        return "\n".join([
            f"SELECT create_hypertable('{table}', by_range('{col}', INTERVAL '{opt['chunk']}'),"
            " if_not_exists => TRUE);",
            f"ALTER TABLE {table} SET (timescaledb.compress,"
            f" timescaledb.compress_segmentby = '{segment}',"
            f" timescaledb.compress_orderby = '{col} DESC');",
            f"SELECT add_compression_policy('{table}', INTERVAL '{opt['compress_after']}',"
            " if_not_exists => TRUE);",
            f"SELECT add_retention_policy('{table}', INTERVAL '{opt['retain']}',"
            " if_not_exists => TRUE);",
        ])
    lines = [f"CREATE TABLE IF NOT EXISTS {table}_default PARTITION OF {table} DEFAULT;",
             f"CREATE INDEX IF NOT EXISTS {table}_{col}_brin ON {table} USING brin ({col});"]
    months = _month_starts(today, back=1, ahead=2)
    for lo, hi in zip(months, months[1:], strict=False):
        lines.append(f"SELECT offsite_add_partition('{table}', DATE '{lo}', DATE '{hi}');")
    return "\n".join(lines)


_HOURLY_SELECT = (
    "SELECT {bucket} AS bucket, station, code, period, avg(value) AS mean, min(value) AS min,"
    " max(value) AS max, count(*) AS n FROM readings WHERE flag = 'N'"
    " GROUP BY 1, station, code, period"
)


def _hourly(flavor: Flavor) -> str:
    if flavor == "timescale":
        select = _HOURLY_SELECT.format(bucket="time_bucket(INTERVAL '1 hour', time)")
        # TimescaleDB refuses to create a continuous aggregate inside a transaction
        return "\n".join([
            NOTX + "CREATE MATERIALIZED VIEW IF NOT EXISTS readings_hourly"
            f" WITH (timescaledb.continuous) AS {select} WITH NO DATA;",
            NOTX + "SELECT add_continuous_aggregate_policy('readings_hourly',"
            " start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',"
            " schedule_interval => INTERVAL '30 minutes', if_not_exists => TRUE);",
        ])
    select = _HOURLY_SELECT.format(bucket="date_trunc('hour', time)")
    return f"CREATE OR REPLACE VIEW readings_hourly AS {select};"


# Plain PostgreSQL: add a month partition unless rows for it already sit in the default one.
_PARTITION_FUNCTION = """
CREATE OR REPLACE FUNCTION offsite_add_partition(tbl text, lo date, hi date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE part text := format('%s_%s', tbl, to_char(lo, 'YYYYMM'));
BEGIN
    IF to_regclass(part) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                       part, tbl, lo, hi);
    END IF;
EXCEPTION WHEN check_violation THEN
    RAISE NOTICE 'rows for % already in the default partition; left there', part;
END $$;
"""


def render(sql: str, flavor: Flavor, today: date | None = None) -> str:
    """Render one migration's directives for a flavour."""
    today = today or datetime.now(UTC).date()

    def replace(m: re.Match[str]) -> str:
        name, args = m.group(1), m.group(2) or ""
        if name == "partitioned":
            return "" if flavor == "timescale" else f"PARTITION BY RANGE ({args.strip()})"
        if name == "timeseries":
            return _timeseries(args, flavor, today)
        if name == "hourly_readings":
            return _hourly(flavor)
        raise ValueError(f"unknown migration directive @{name}")

    return _DIRECTIVE.sub(replace, sql)


def detect_flavor(conn: psycopg.Connection) -> Flavor:
    row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    return "timescale" if row else "postgres"


def migrate(database_url: str) -> tuple[Flavor, list[int]]:
    """Apply every migration not yet applied; returns the flavour and the versions applied."""
    applied: list[int] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            flavor = detect_flavor(conn)
            if flavor == "timescale":
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " name text NOT NULL, flavor text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())")
            if flavor == "postgres":
                conn.execute(_PARTITION_FUNCTION)
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for mig in load_migrations():
                if mig.version in done:
                    continue
                rendered = render(mig.sql, flavor).splitlines()
                later = [line.removeprefix(NOTX) for line in rendered if line.startswith(NOTX)]
                with conn.transaction():
                    conn.execute("\n".join(ln for ln in rendered if not ln.startswith(NOTX)))
                for statement in later:  # all IF NOT EXISTS: safe to repeat after a failure
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations (version, name, flavor)"
                             " VALUES (%s, %s, %s)", (mig.version, mig.name, flavor))
                applied.append(mig.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return flavor, applied
