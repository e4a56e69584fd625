"""The registry tables: import a registry folder, export it, and read what routing needs.

An import is one transaction, all or nothing: the folder is validated first (against the
departments already in the database too), then every kind whose file is present is upserted
by id. A column the file leaves out leaves that field as it is, so a county can send just
``id,owner_dept`` to hand stations over. ``prune`` retires (never deletes: clues, readings,
grants and the audit log keep pointing at them) what a present file no longer lists; a
``routing.csv`` is always the whole rule table. Each change is audited and each kind that
changed is announced with ``NOTIFY offsite_registry, '<kind>'``, delivered on commit, so
running processes reload (see the migration 007).
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from geo.registry import router_from_rows, write_folder
from geo.registry_check import validate_folder
from geo.registry_folder import FILES, Entry, Fault, Folder, RuleRow
from geo.routing import Router
from storage.registry_listen import CHANNEL

_LOCK_ID = 0x0FF5174  # one registry import at a time
TABLES: dict[str, str] = {"department": "departments", "entity": "entities",
                          "station": "stations",
                          "camera": "cameras", "scene_collection": "scene_collections",
                          "zone": "zones", "power_channel": "power_channels",
                          "shutdown": "shutdowns"}
# columns an import may set, per kind (besides id, status, properties)
FIELDS: dict[str, tuple[str, ...]] = {
    "department": ("name",),
    "entity": ("name", "credit_class", "owner_dept", "licence", "zones"),
    "station": ("name", "lon", "lat", "st", "owner_dept", "interval_s", "password",
                "standard", "entity"),
    "camera": ("name", "url", "lon", "lat", "owner_dept", "config", "entity"),
    "scene_collection": ("name", "owner_dept"),
    "zone": ("kind", "name", "county", "owner_dept", "geometry"),
    "power_channel": ("entity", "meter", "channel", "role", "rated_kw", "idle_kw"),
    "shutdown": ("scope", "level", "start", "end"),
}
_JSON_FIELDS = {"config", "geometry", "properties"}
_RULE_FIELDS = ("clue", "zone_kind", "department", "why")


@dataclass
class Counts:
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    retired: int = 0

    @property
    def touched(self) -> bool:
        return bool(self.added or self.changed or self.retired)


class RegistryInvalid(ValueError):
    """The folder has faults; nothing was written."""

    def __init__(self, faults: list[Fault]) -> None:
        super().__init__(f"{len(faults)} fault(s) in the registry folder")
        self.faults = faults


@dataclass(frozen=True)
class Actor:
    """Who made a change, for the audit log."""

    user_id: str
    department: str

    @classmethod
    def cli(cls, department: str) -> Actor:
        try:
            name = getpass.getuser()
        except Exception:  # no user name in some containers
            name = "unknown"
        return cls(f"cli:{name}", department)


def _norm(value: Any) -> Any:
    """Compare jsonb by value: the database gives lists where Python built tuples."""
    return json.loads(json.dumps(value)) if isinstance(value, (dict, list, tuple)) else value


def _names(columns: Iterable[str]) -> str:
    """Quoted column names (a shutdown's ``end`` is an SQL keyword)."""
    return ", ".join(f'"{c}"' for c in columns)


def _param(col: str, value: Any) -> Any:
    return Jsonb(value) if col in _JSON_FIELDS and value is not None else value


def _audit(conn: psycopg.Connection, actor: Actor, action: str, kind: str | None,
           resource_id: str | None, owner: str | None, detail: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO audit_log (user_id, department, action, resource_kind, resource_id,"
        " owner_dept, detail) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (actor.user_id, actor.department, action, kind, resource_id, owner, Jsonb(detail)))


def active_departments(conn: psycopg.Connection) -> set[str]:
    return active_ids(conn, "department")


def active_ids(conn: psycopg.Connection, kind: str) -> set[str]:
    """Ids of the active rows of one registry kind."""
    return {r[0] for r in conn.execute(f"SELECT id FROM {TABLES[kind]} WHERE status = 'active'")}


def _upsert(conn: psycopg.Connection, kind: str, entries: list[Entry], *, prune: bool,
            default_owner: str, actor: Actor) -> Counts:
    table, fields = TABLES[kind], FIELDS[kind]
    counts = Counts()
    ids = [e.id for e in entries]
    cur = conn.cursor(row_factory=dict_row)
    existing = {r["id"]: r for r in cur.execute(
        f"SELECT id, status, properties, {_names(fields)} FROM {table}"
        " WHERE id = ANY(%s)", (ids,))}
    for e in entries:
        given = {k: v for k, v in e.fields.items() if k in fields}
        old = existing.get(e.id)
        if old is None:
            row = {"name": e.id if kind == "department" else "", **given}
            if "owner_dept" in fields:
                row.setdefault("owner_dept", default_owner)
            cols = ["id", "properties", *row]
            conn.execute(
                f"INSERT INTO {table} ({_names(cols)}) VALUES"
                f" ({', '.join(['%s'] * len(cols))})",
                [e.id, Jsonb(e.properties), *(_param(c, v) for c, v in row.items())])
            counts.added += 1
            _audit(conn, actor, "registry.added", kind, e.id, row.get("owner_dept"),
                   {"fields": sorted(row)})
            continue
        changes = {k: v for k, v in given.items() if _norm(old[k]) != _norm(v)}
        props = {**(old["properties"] or {}), **e.properties}
        if _norm(props) != _norm(old["properties"] or {}):
            changes["properties"] = props
        if old["status"] != "active":
            changes["status"] = "active"
        if not changes:
            counts.unchanged += 1
            continue
        conn.execute(
            f"UPDATE {table} SET {', '.join(f'{_names([c])} = %s' for c in changes)},"
            " updated_at = now()"
            " WHERE id = %s", [*(_param(c, v) for c, v in changes.items()), e.id])
        counts.changed += 1
        _audit(conn, actor, "registry.changed", kind, e.id,
               changes.get("owner_dept", old.get("owner_dept")), {"fields": sorted(changes)})
    if prune:
        if kind == "department":
            ids = [*ids, default_owner]  # what owns unassigned resources is never retired
        gone = conn.execute(
            f"UPDATE {table} SET status = 'retired', updated_at = now()"
            " WHERE status = 'active' AND NOT (id = ANY(%s))"
            f" RETURNING id, {'owner_dept' if 'owner_dept' in fields else 'NULL'}",
            (ids,)).fetchall()
        for rid, owner in gone:
            _audit(conn, actor, "registry.retired", kind, rid, owner, {})
        counts.retired = len(gone)
    return counts


def _replace_rules(conn: psycopg.Connection, rules: list[RuleRow], actor: Actor) -> Counts:
    counts = Counts()
    cur = conn.cursor(row_factory=dict_row)
    old = {r["position"]: r for r in cur.execute(
        "SELECT position, status, clue, zone_kind, department, why FROM routing_rules")}
    for rule in rules:
        new = {f: getattr(rule, f) for f in _RULE_FIELDS}
        prev = old.get(rule.position)
        if prev is None:
            conn.execute("INSERT INTO routing_rules (position, clue, zone_kind, department, why)"
                         " VALUES (%s, %s, %s, %s, %s)", (rule.position, *new.values()))
            counts.added += 1
        elif prev["status"] != "active" or any(prev[f] != new[f] for f in _RULE_FIELDS):
            conn.execute("UPDATE routing_rules SET clue = %s, zone_kind = %s, department = %s,"
                         " why = %s, status = 'active', updated_at = now() WHERE position = %s",
                         (*new.values(), rule.position))
            counts.changed += 1
        else:
            counts.unchanged += 1
    counts.retired = len(conn.execute(
        "UPDATE routing_rules SET status = 'retired', updated_at = now()"
        " WHERE status = 'active' AND position > %s RETURNING position",
        (len(rules),)).fetchall())
    if counts.touched:
        _audit(conn, actor, "registry.routing_rules", "routing_rule", None, None,
               asdict(counts))
    return counts


def apply_folder(conn: psycopg.Connection, folder: Folder, *, prune: bool,
                 default_owner: str, actor: Actor, source: str = "") -> dict[str, Counts]:
    """Write a validated folder inside the caller's transaction; counts per present kind."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
    result: dict[str, Counts] = {}
    for kind in FILES:
        if kind == "entity":  # after the folder's departments: owner of what names none
            made = conn.execute(
                "INSERT INTO departments (id, name) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING"
                " RETURNING id", (default_owner, default_owner)).fetchone()
            if made:
                result.setdefault("department", Counts()).added += 1
                _audit(conn, actor, "registry.added", "department", default_owner, None,
                       {"fields": ["name"], "why": "default owner"})
        if kind == "routing_rule":
            if folder.rules is not None:
                result[kind] = _replace_rules(conn, folder.rules, actor)
            continue
        entries = folder.entries.get(kind)
        if entries is not None:
            result[kind] = _upsert(conn, kind, entries, prune=prune,
                                   default_owner=default_owner, actor=actor)
    for kind, counts in result.items():
        if counts.touched:
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, kind))
    _audit(conn, actor, "registry.import", None, None, None,
           {"source": source, "prune": prune,
            "counts": {k: asdict(v) for k, v in result.items()}})
    return result


def import_folder(conn: psycopg.Connection, directory: str | Path, *, prune: bool = False,
                  default_owner: str, actor: Actor) -> dict[str, Counts]:
    """Validate a registry folder against this database and apply it, all or nothing.

    Raises ``RegistryInvalid`` with every fault (and writes nothing) when it has any.
    """
    with conn.transaction():
        folder, faults = validate_folder(directory, default_owner=default_owner,
                                         known_departments=active_departments(conn),
                                         known_entities=active_ids(conn, "entity"),
                                         known_zones=active_ids(conn, "zone"))
        if faults:
            raise RegistryInvalid(faults)
        return apply_folder(conn, folder, prune=prune, default_owner=default_owner,
                            actor=actor, source=str(directory))


def registry_tables(conn: psycopg.Connection, *, with_secrets: bool = False
                    ) -> dict[str, list[dict[str, Any]]]:
    """Every active registry row per kind (station passwords only ``with_secrets``)."""
    cur = conn.cursor(row_factory=dict_row)
    tables: dict[str, list[dict[str, Any]]] = {}
    for kind, table in TABLES.items():
        cols = [c for c in FIELDS[kind] if with_secrets or c != "password"]
        tables[kind] = cur.execute(
            f"SELECT id, properties, {_names(cols)} FROM {table}"
            " WHERE status = 'active' ORDER BY id").fetchall()
    tables["routing_rule"] = routing_rule_rows(conn)
    return tables


def export_folder(conn: psycopg.Connection, directory: str | Path, *,
                  with_secrets: bool = False) -> dict[str, int]:
    """Write the active registry as a registry folder; rows written per kind."""
    return write_folder(directory, registry_tables(conn, with_secrets=with_secrets),
                        with_secrets=with_secrets)


_ZONES_SQL = ("SELECT id, kind, name, county, owner_dept, properties, geometry FROM zones"
              " WHERE status = 'active' ORDER BY id")
_RULES_SQL = ("SELECT position, clue, zone_kind, department, why FROM routing_rules"
              " WHERE status = 'active' ORDER BY position")


def zone_rows(conn: psycopg.Connection) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(_ZONES_SQL).fetchall()


def routing_rule_rows(conn: psycopg.Connection) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(_RULES_SQL).fetchall()


def load_router(conn: psycopg.Connection) -> Router:
    """The router over the registered (active) zones and rules."""
    return router_from_rows(zone_rows(conn), routing_rule_rows(conn))


async def load_router_async(conn: psycopg.AsyncConnection) -> Router:
    """``load_router`` for async code (workers): one connection, two reads."""
    cur = conn.cursor(row_factory=dict_row)
    zones = await (await cur.execute(_ZONES_SQL)).fetchall()
    rules = await (await cur.execute(_RULES_SQL)).fetchall()
    return router_from_rows(zones, rules)


def format_counts(result: dict[str, Counts]) -> Iterable[str]:
    """One line per kind, in folder order: what ``offsite registry import`` prints."""
    for kind in FILES:
        if kind in result:
            c = result[kind]
            yield (f"{kind}: {c.added} added, {c.changed} changed, {c.unchanged} unchanged,"
                   f" {c.retired} retired")


async def zone_features(pool: AsyncConnectionPool, kind: str | None = None
                        ) -> list[dict[str, Any]]:
    """Active zones as GeoJSON Features (properties as in the registry folder), for the map."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT jsonb_build_object('type', 'Feature', 'geometry', geometry,"
            " 'properties', jsonb_build_object('id', id, 'kind', kind, 'name', name,"
            " 'county', county, 'owner_dept', owner_dept) || properties)"
            " FROM zones WHERE status = 'active' AND (%(k)s::text IS NULL OR kind = %(k)s)"
            # jurisdictions first, wider ones (lower level) first: the page opens on the first
            " ORDER BY kind <> 'jurisdiction', CASE WHEN properties->>'level' ~ '^[0-9]+$'"
            " THEN (properties->>'level')::int END NULLS LAST, id", {"k": kind})
        return [r[0] for r in await cur.fetchall()]
