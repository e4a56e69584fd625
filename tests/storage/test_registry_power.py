"""Power channels and declared shutdowns in the registry on a real PostgreSQL: files
without an id column import by their natural keys, re-import and export change nothing,
references to unknown entities or scopes are refused, and a registered meter counts as a
registered source."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from storage.registry import Actor, RegistryInvalid, export_folder, import_folder
from tests.storage.test_registry_entities import with_entities

OWNER = "provincial-monitoring-center"
ACTOR = Actor("test-user", OWNER)


def with_power(folder: Path) -> Path:
    with_entities(folder)
    (folder / "power_channels.csv").write_bytes(
        "entity,meter,channel,role,rated_kw,idle_kw\n"
        "E-1,PM-01,p1,production,800,20\n"
        "E-1,PM-01,t1,治污,90,3\n"
        "E-1,PM-02,t2,treatment,,1.5\n".encode("gb18030"))
    (folder / "shutdowns.csv").write_text(
        "scope,level,start,end\n"
        "E-1,橙色,2026-12-01 00:00,2026-12-03 00:00\n"
        "cn-370102,红色,2026-12-10T00:00:00+08:00,2026-12-12T00:00:00+08:00\n",
        encoding="utf-8")
    return folder


def run_import(url: str, folder: Path, prune: bool = False) -> dict:
    with psycopg.connect(url) as conn:
        return import_folder(conn, folder, prune=prune, default_owner=OWNER, actor=ACTOR)


def test_channels_and_shutdowns_import_and_round_trip(fresh_db: str, tmp_path: Path) -> None:
    result = run_import(fresh_db, with_power(tmp_path / "f"))
    assert result["power_channel"].added == 3 and result["shutdown"].added == 2
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT id, entity, role, rated_kw, idle_kw FROM power_channels"
                            " ORDER BY id").fetchall() == [
            ("PM-01/p1", "E-1", "production", 800.0, 20.0),
            ("PM-01/t1", "E-1", "treatment", 90.0, 3.0),
            ("PM-02/t2", "E-1", "treatment", None, 1.5)]
        start, = conn.execute("SELECT start FROM shutdowns WHERE scope = 'E-1'").fetchone()
        assert start == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # no offset: +08:00
        export_folder(conn, tmp_path / "out")
    again = run_import(fresh_db, tmp_path / "out")
    assert not any(c.touched for c in again.values()), again
    assert not any(c.touched for c in run_import(fresh_db, tmp_path / "f").values())


def test_unknown_entity_and_scope_are_faults(fresh_db: str, tmp_path: Path) -> None:
    folder = with_power(tmp_path / "f")
    (folder / "power_channels.csv").write_text(
        "entity,meter,channel,role,rated_kw,idle_kw\nE-9,PM-01,p1,production,800,20\n",
        encoding="utf-8")
    (folder / "shutdowns.csv").write_text(
        "scope,level,start,end\nnowhere,红色,2026-12-10,2026-12-09\n", encoding="utf-8")
    with pytest.raises(RegistryInvalid) as caught:
        run_import(fresh_db, folder)
    assert [str(f) for f in caught.value.faults] == [
        "power_channels.csv:2: entity E-9 is not defined",
        "shutdowns.csv:2: end is not after start",
        "shutdowns.csv:2: scope nowhere is neither an entity nor a zone",
    ]


def test_a_registered_meter_is_a_registered_source(fresh_db: str, tmp_path: Path) -> None:
    import asyncio

    from psycopg_pool import AsyncConnectionPool

    from storage.stations import POWER_METER_ST, station_rows

    run_import(fresh_db, with_power(tmp_path / "f"))

    async def rows() -> list:
        async with AsyncConnectionPool(fresh_db, min_size=1, open=False) as pool:
            return await station_rows(pool, ["PM-01", "LX-0001", "NOPE"])

    got = {r[0]: r[1] for r in asyncio.run(rows())}
    assert got == {"PM-01": POWER_METER_ST, "LX-0001": "22"}
