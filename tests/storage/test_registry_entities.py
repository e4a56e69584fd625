"""Regulated entities in the registry on a real PostgreSQL: entities.csv imports with its
credit classes and enterprise-site zones, stations and cameras name the entity they watch,
a credit-system export of ``id,credit_class`` changes only the grades, and the folder
round-trips through export."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from storage.registry import Actor, RegistryInvalid, export_folder, import_folder
from tests.registry_folders import FARMLAND, feature, write_clean

OWNER = "provincial-monitoring-center"
ACTOR = Actor("test-user", OWNER)
SITE = [[117.05, 36.65], [117.06, 36.65], [117.06, 36.66], [117.05, 36.66], [117.05, 36.65]]


def with_entities(folder: Path) -> Path:
    """The clean Lixia folder plus two entities (GBK, as Excel on a Chinese desktop writes)."""
    write_clean(folder)
    zones = json.loads((folder / "zones.geojson").read_text(encoding="utf-8"))
    zones["features"].append(feature("es-370102-0001", "enterprise_site", SITE,
                                     county="370102", name="济南示范钢铁厂厂区"))
    (folder / "zones.geojson").write_text(json.dumps(zones, ensure_ascii=False),
                                          encoding="utf-8")
    (folder / "entities.csv").write_bytes(
        "id,name,credit_class,owner_dept,licence,zones\n"
        "E-1,济南示范钢铁厂,c,370102-ecology-environment,91370100MA3C000001,es-370102-0001\n"
        "E-2,历下区某餐饮企业,A,,,\n".encode("gb18030"))
    (folder / "stations.csv").write_text(
        "id,name,lon,lat,st,entity\n"
        "LX-0001,泉城广场,117.02,36.66,22,\n"
        "LX-9001,钢铁厂烟囱 1号,117.055,36.655,31,E-1\n", encoding="utf-8")
    (folder / "cameras.csv").write_text(
        "id,name,url,lon,lat,entity\nLX-CAM-1,厂区东门,rtsp://10.0.0.5/s1,117.05,36.65,E-1\n",
        encoding="utf-8")
    return folder


def run_import(url: str, folder: Path, prune: bool = False) -> dict:
    with psycopg.connect(url) as conn:
        return import_folder(conn, folder, prune=prune, default_owner=OWNER, actor=ACTOR)


def test_entities_and_their_monitors_import(fresh_db: str, tmp_path: Path) -> None:
    result = run_import(fresh_db, with_entities(tmp_path / "f"))
    assert result["entity"].added == 2
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute("SELECT id, name, credit_class, owner_dept, licence, zones"
                            " FROM entities ORDER BY id").fetchall()
        assert rows == [
            ("E-1", "济南示范钢铁厂", "C", "370102-ecology-environment", "91370100MA3C000001",
             ["es-370102-0001"]),
            ("E-2", "历下区某餐饮企业", "A", OWNER, None, []),  # no owner: the default one
        ]
        assert conn.execute("SELECT id, entity FROM stations ORDER BY id").fetchall() == [
            ("LX-0001", None), ("LX-9001", "E-1")]
        assert conn.execute("SELECT entity FROM cameras").fetchone() == ("E-1",)


def test_credit_export_changes_only_the_grades(fresh_db: str, tmp_path: Path) -> None:
    run_import(fresh_db, with_entities(tmp_path / "f"))
    credit = tmp_path / "credit"
    credit.mkdir()
    (credit / "entities.csv").write_text("\ufeffid,credit_class\nE-1,D\nE-2,A\n",
                                         encoding="utf-8")
    result = run_import(fresh_db, credit)
    assert (result["entity"].changed, result["entity"].unchanged) == (1, 1)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT credit_class, name, zones FROM entities WHERE id = 'E-1'"
                            ).fetchone() == ("D", "济南示范钢铁厂", ["es-370102-0001"])
        audit = conn.execute("SELECT detail FROM audit_log WHERE action = 'registry.changed'"
                             " AND resource_id = 'E-1'").fetchall()
        assert [a[0]["fields"] for a in audit] == [["credit_class"]]


def test_export_then_import_is_unchanged(fresh_db: str, tmp_path: Path) -> None:
    run_import(fresh_db, with_entities(tmp_path / "f"))
    with psycopg.connect(fresh_db) as conn:
        export_folder(conn, tmp_path / "out")
    text = (tmp_path / "out" / "entities.csv").read_text(encoding="utf-8-sig")
    assert text.splitlines()[0] == "id,name,credit_class,owner_dept,licence,zones"
    result = run_import(fresh_db, tmp_path / "out")
    assert all(not c.touched for c in result.values()), result


def test_unknown_entities_and_wrong_zones_are_refused(fresh_db: str, tmp_path: Path) -> None:
    folder = with_entities(tmp_path / "f")
    (folder / "entities.csv").write_text(
        "id,name,credit_class,zones\n"
        "E-1,钢铁厂,E,es-370102-0001\n"      # line 2: no such credit class
        "E-3,农场,B,pf-370102-0001\n"        # line 3: farmland is not an enterprise site
        "E-4,无厂区,B,es-nowhere\n", encoding="utf-8")  # line 4: unknown zone
    (folder / "cameras.csv").write_text(
        "id,name,url,lon,lat,entity\nC-9,x,rtsp://h/x,117.05,36.65,E-404\n", encoding="utf-8")
    with pytest.raises(RegistryInvalid) as caught:
        run_import(fresh_db, folder)
    faults = [str(f) for f in caught.value.faults]
    assert faults == [
        "entities.csv:2: credit_class: credit class 'E' is not one of A/B/C/D",
        "entities.csv:3: zone pf-370102-0001 is a protected_farmland zone, not an"
        " enterprise_site",
        "entities.csv:4: zone es-nowhere is not defined",
        "cameras.csv:2: entity E-404 is not defined",
    ]
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*) FROM entities").fetchone() == (0,)
    assert FARMLAND  # the clean folder's farmland zone is pf-370102-0001
