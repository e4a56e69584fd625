"""The registry folder format, checked without a database: what a clerk's files say, and
every fault at once with its file and physical line (or zone id)."""

from __future__ import annotations

import json
from pathlib import Path

from geo.registry_check import validate_folder
from geo.registry_folder import decode
from tests.registry_folders import write_broken, write_clean

ROOT = Path(__file__).resolve().parents[2]
OWNER = "provincial-monitoring-center"


def test_the_demo_folder_is_clean_and_complete() -> None:
    folder, faults = validate_folder(ROOT / "samples" / "registry", default_owner=OWNER)
    assert faults == []
    assert folder.present() == ["department", "entity", "station", "camera",
                                "scene_collection", "zone", "power_channel", "routing_rule"]
    entities = {e.id: e for e in folder.entries["entity"] or []}
    assert entities["ENT-321202-0001"].fields["zones"] == ["ent-321202-0001"]
    stations = {e.id: e for e in folder.entries["station"] or []}
    assert stations["BJ-DONGSI"].fields["lon"] == 116.417
    assert stations["BJ-DONGSI"].fields["owner_dept"] == "110101-ecology-environment"
    camera = (folder.entries["camera"] or [])[0]
    assert camera.id == "DEMO-CAM-1" and camera.fields["config"]["camera_id"] == "DEMO-CAM-1"


def test_every_fault_is_listed_with_file_and_line(tmp_path: Path) -> None:
    folder, expected = write_broken(tmp_path / "broken")
    _, faults = validate_folder(folder, default_owner=OWNER)
    lines = [str(f) for f in faults]
    assert len(lines) == len(expected), "\n".join(lines)
    for got, want in zip(lines, expected, strict=True):
        assert got.startswith(want), (got, want)


def test_departments_in_the_database_count_as_defined(tmp_path: Path) -> None:
    folder, _ = write_broken(tmp_path / "broken")
    _, faults = validate_folder(folder, default_owner=OWNER,
                                known_departments={"370102-police", "370102-land-bureau",
                                                   "370102-natural-resources"})
    text = "\n".join(map(str, faults))
    assert "not defined" not in text


def test_gbk_and_bom_files_read_the_same(tmp_path: Path) -> None:
    utf8 = write_clean(tmp_path / "utf8", "utf-8")
    gbk = write_clean(tmp_path / "gbk", "gbk")
    bom = write_clean(tmp_path / "bom", "utf-8-sig")
    parsed = [validate_folder(d, default_owner=OWNER) for d in (utf8, gbk, bom)]
    assert all(faults == [] for _, faults in parsed)
    names = [[e.fields["name"] for e in f.entries["station"] or []] for f, _ in parsed]
    assert names[0] == names[1] == names[2] == ["泉城广场", "Multi\nline name"]
    assert decode("历下区".encode("gb18030")) == "历下区"


def test_extra_columns_become_properties_and_empty_owner_is_not_given(tmp_path: Path) -> None:
    folder, faults = validate_folder(write_clean(tmp_path / "c"), default_owner=OWNER)
    assert faults == []
    s1, s2 = folder.entries["station"] or []
    assert s1.properties == {"site_code": "S-17"} and s2.properties == {}
    assert "owner_dept" not in s2.fields  # default owner on insert, unchanged on update
    assert s2.fields["interval_s"] == 60 and s2.fields["password"] is None


def test_self_intersecting_zone_is_repaired(tmp_path: Path) -> None:
    folder, faults = validate_folder(write_clean(tmp_path / "c"), default_owner=OWNER)
    assert faults == []
    bowtie = next(e for e in folder.entries["zone"] or [] if e.id == "ra-370102-0001")
    assert bowtie.fields["geometry"]["type"] == "MultiPolygon"
    assert len(bowtie.fields["geometry"]["coordinates"]) == 2


def test_unreadable_json_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "zones.geojson").write_text('{"type": "FeatureCollection",\n "features": [,]}')
    _, faults = validate_folder(tmp_path, default_owner=OWNER)
    assert [str(f).split(": ")[0] for f in faults] == ["zones.geojson:2"]


def test_routing_to_an_owner_nobody_defines_is_a_fault(tmp_path: Path) -> None:
    write_clean(tmp_path)
    data = json.loads((tmp_path / "zones.geojson").read_text())
    data["features"][1]["properties"]["owner_dept"] = "370102-farm-office"
    (tmp_path / "zones.geojson").write_text(json.dumps(data))
    (tmp_path / "routing.csv").write_text("clue,zone_kind,department,why\n"
                                          "*,protected_farmland,@owner,the owner\n"
                                          "*,*,ecology-environment,default\n")
    _, faults = validate_folder(tmp_path, default_owner=OWNER)
    text = [str(f) for f in faults]
    assert "zones.geojson:pf-370102-0001: owner department 370102-farm-office is not defined" \
        in text
    assert any(t.startswith("routing.csv:2: routes protected_farmland zone pf-370102-0001 to"
                            " department 370102-farm-office") for t in text), text


def test_camera_config_is_read_from_inside_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "reg"
    (folder / "cams").mkdir(parents=True)
    (folder / "cams" / "c1.yaml").write_text("camera_id: C1\ntimezone: Asia/Shanghai\n")
    (tmp_path / "outside.yaml").write_text("camera_id: X\n")
    (folder / "cameras.csv").write_text(
        "id,name,url,lon,lat,config\n"
        "C1,one,http://h/x.mjpg,117,36,cams/c1.yaml\n"
        "C2,two,file:///v/two.mp4,117,36,../outside.yaml\n"
        "C3,three,rtsp://h/3,117,36,missing.yaml\n"
        "C4,four,rtsp://h/4,117,36,\n")
    parsed, faults = validate_folder(folder, default_owner=OWNER)
    assert [str(f).split(": ")[0] for f in faults] == ["cameras.csv:3", "cameras.csv:4"]
    configs = {e.id: e.fields.get("config") for e in parsed.entries["camera"] or []}
    assert configs == {"C1": {"camera_id": "C1", "timezone": "Asia/Shanghai"}, "C2": None,
                       "C3": None, "C4": {}}
