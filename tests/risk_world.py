"""A small registry with regulated entities, and clues written as the clues sink writes them:
shared by the risk tests (storage, API, CLI, page).

County 370102 (Lixia): entity E-1 (credit C) with an enterprise-site zone ``es-1``, a flue
gas station ``LX-9001`` and a camera watching it; E-3 (credit B) with nothing yet. County
370103: entity E-2 (credit A) watched by station ``HX-9001``. ``LX-0001`` is an ambient
station of no entity.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from storage.registry import Actor, import_folder
from tests.registry_folders import feature, write_clean

OWNER = "provincial-monitoring-center"
LIXIA_EE = "370102-ecology-environment"
LIXIA_NR = "370102-natural-resources"
OTHER_EE = "370103-ecology-environment"
SITE = [[117.05, 36.65], [117.06, 36.65], [117.06, 36.66], [117.05, 36.66], [117.05, 36.65]]
ES1_ZONES = [{"id": "es-1", "kind": "enterprise_site", "name": "示范化工厂厂区", "overlap_m2": 0.0},
             {"id": "cn-370102", "kind": "jurisdiction", "name": "历下区", "overlap_m2": 0.0}]


def write_world(folder: Path) -> Path:
    write_clean(folder)
    (folder / "departments.csv").write_text(
        "id,name\n"
        f"{OWNER},省生态环境监控中心\n"
        f"{LIXIA_EE},历下区生态环境分局\n"
        f"{LIXIA_NR},历下区自然资源局\n"
        f"{OTHER_EE},市中区生态环境分局\n", encoding="utf-8")
    zones = json.loads((folder / "zones.geojson").read_text(encoding="utf-8"))
    zones["features"].append(feature("es-1", "enterprise_site", SITE, county="370102",
                                     name="示范化工厂厂区"))
    (folder / "zones.geojson").write_text(json.dumps(zones, ensure_ascii=False),
                                          encoding="utf-8")
    (folder / "entities.csv").write_text(
        "id,name,credit_class,owner_dept,licence,zones\n"
        f"E-1,示范化工厂,C,{LIXIA_EE},91370100MA3C000001,es-1\n"
        f"E-2,市中区某电镀厂,A,{OTHER_EE},,\n"
        f"E-3,历下区某印染厂,B,{LIXIA_EE},,\n", encoding="utf-8")
    (folder / "stations.csv").write_text(
        "id,name,lon,lat,st,owner_dept,entity\n"
        f"LX-0001,泉城广场,117.02,36.66,22,{LIXIA_EE},\n"
        f"LX-9001,化工厂烟囱 1号,117.055,36.655,31,{LIXIA_EE},E-1\n"
        f"HX-9001,电镀厂排口,116.98,36.64,32,{OTHER_EE},E-2\n", encoding="utf-8")
    (folder / "cameras.csv").write_text(
        "id,name,url,lon,lat,owner_dept,entity\n"
        f"LX-CAM-1,化工厂东门,rtsp://10.0.0.5/s1,117.052,36.651,{LIXIA_EE},E-1\n",
        encoding="utf-8")
    return folder


def import_world(db: str, tmp_path: Path) -> None:
    with psycopg.connect(db) as conn:
        import_folder(conn, write_world(tmp_path / "registry"), default_owner=OWNER,
                      actor=Actor("test", OWNER))


def add_clue(db: str, clue_id: str, *, kind: str, subject: str, start: datetime,
             time: datetime, state: str = "closed", end: datetime | None = None,
             modality: str = "env", zones: list | None = None,
             department: str | None = LIXIA_EE) -> None:
    """A clue row as the clues sink writes it (routed: department, zones); with a department
    the database opens its task."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO clues (clue_id, modality, kind, rule, subject, state, start, time,"
            ' "end", confidence, department, site, zones, summary)'
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 0.9, %s, 'site', %s, 'test')"
            " ON CONFLICT (clue_id) DO UPDATE SET state = EXCLUDED.state, time = EXCLUDED.time,"
            ' "end" = EXCLUDED."end", zones = EXCLUDED.zones',
            (clue_id, modality, kind, f"{kind}/rule", subject, state, start, time, end,
             department, Jsonb(zones or [])))


def set_result(db: str, clue_id: str, result: str) -> None:
    """What an inspector's report does to the clue's task (storage.tasks.report)."""
    with psycopg.connect(db, autocommit=True) as conn:
        done = conn.execute("UPDATE tasks SET state = 'closed', closed_at = now(), result = %s"
                            " WHERE clue_id = %s", (result, clue_id)).rowcount
    assert done == 1, f"no task for {clue_id}"
