"""Small registry folders the registry tests write: a clean one for Lixia District, Jinan
(county 370102), and a broken one with one fault of each kind on known lines."""

from __future__ import annotations

import json
from pathlib import Path

LIXIA = [[117.00, 36.60], [117.10, 36.60], [117.10, 36.70], [117.00, 36.70], [117.00, 36.60]]
FARMLAND = [[117.02, 36.62], [117.04, 36.62], [117.04, 36.64], [117.02, 36.64], [117.02, 36.62]]
# a bow tie: self-intersecting, repaired by make_valid into two triangles
BOWTIE = [[117.05, 36.62], [117.07, 36.64], [117.07, 36.62], [117.05, 36.64], [117.05, 36.62]]


def feature(zid: str, kind: str, ring: list, **props: object) -> dict:
    return {"type": "Feature", "properties": {"id": zid, "kind": kind, **props},
            "geometry": {"type": "Polygon", "coordinates": [ring]}}


def write_clean(folder: Path, encoding: str = "utf-8") -> Path:
    """Departments, a station, a camera, a scene collection, zones and rules of one county."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "departments.csv").write_text(
        "id,name\n"
        "370102-ecology-environment,历下区生态环境分局\n"
        "370102-natural-resources,历下区自然资源局\n", encoding=encoding)
    (folder / "stations.csv").write_text(
        "id,name,lon,lat,st,owner_dept,interval_s,password,site_code\n"
        "LX-0001,泉城广场,117.02,36.66,22,370102-ecology-environment,3600,secret1,S-17\n"
        "LX-0002,\"Multi\nline name\",117.03,36.67,32,,60,,\n", encoding=encoding)
    (folder / "cameras.csv").write_text(
        "id,name,url,lon,lat,owner_dept\n"
        "LX-CAM-1,大明湖东门,rtsp://10.0.0.5/stream1,117.03,36.68,370102-ecology-environment\n",
        encoding=encoding)
    (folder / "scene_collections.csv").write_text(
        "id,name,owner_dept\ns2-jinan,Sentinel-2 济南,370102-natural-resources\n",
        encoding=encoding)
    (folder / "zones.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        feature("cn-370102", "jurisdiction", LIXIA, name="历下区", county="370102",
                owner_dept="370102-ecology-environment", level=3),
        feature("pf-370102-0001", "protected_farmland", FARMLAND, name="基本农田 0001",
                county="370102", owner_dept="370102-natural-resources"),
        feature("ra-370102-0001", "restricted_area", BOWTIE, name="禁燃区", county="370102",
                owner_dept="370102-ecology-environment"),
    ]}, ensure_ascii=False), encoding="utf-8")
    (folder / "routing.csv").write_text(
        "# rules of the test county\n"
        "clue,zone_kind,department,why\n"
        "satellite/*,protected_farmland,natural-resources,farmland conversion\n"
        "*,*,ecology-environment,default\n", encoding=encoding)
    return folder


def write_broken(folder: Path) -> tuple[Path, list[str]]:
    """A folder with one fault per line; returns it and the faults validate must report."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "departments.csv").write_text(
        "id,name\n370102-ecology-environment,Lixia EEB\n370102-ecology-environment,again\n")
    (folder / "stations.csv").write_text(
        "id,name,lon,lat,interval_s,owner_dept\n"
        "S1,\"two\nlines\",117.0,36.6,60,\n"            # lines 2-3, fine
        "S2,empty lon,,36.6,60,\n"                       # line 4
        "S3,far away,190.5,36.6,60,\n"                   # line 5
        "S4,bad interval,117.0,36.6,hourly,\n"           # line 6
        "S5,nobody's,117.0,36.6,60,370102-police\n"      # line 7
        "S1,dup,117.0,36.6,60,\n")                       # line 8
    (folder / "cameras.csv").write_text(
        "id,name,url,lon,lat\nC1,ftp cam,ftp://10.0.0.1/x,117.0,36.6\nC2,ok,rtsps://h/x,117,36\n")
    (folder / "zones.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        feature("cn-370102", "jurisdiction", LIXIA, county="370102"),
        feature("wet-1", "wetland", FARMLAND, county="370102"),
        feature("flat-1", "forest", [[117.0, 36.6], [117.05, 36.6], [117.1, 36.6], [117.0, 36.6]],
                county="370102"),
        feature("pf-1", "protected_farmland", FARMLAND, county="370102",
                owner_dept="370102-land-bureau"),
    ]}))
    (folder / "routing.csv").write_text(
        "clue,zone_kind,department,why\n"
        "satellite/*,protected_farmland,natural-resources,farmland\n"
        "*,*,ecology-environment,default\n")
    expected = [
        "departments.csv:3: duplicate id 370102-ecology-environment (first on line 2)",
        "stations.csv:4: lon: empty coordinate",
        "stations.csv:5: lon: 190.5 is outside WGS84 range [-180.0, 180.0]",
        "stations.csv:6: interval_s: not a whole number: 'hourly'",
        "stations.csv:7: owner department 370102-police is not defined",
        "stations.csv:8: duplicate id S1 (first on line 2)",
        "cameras.csv:2: url: camera URL 'ftp://10.0.0.1/x' is not rtsp/rtsps/http/https/file",
        "zones.geojson:wet-1: unknown zone kind 'wetland'",
        "zones.geojson:flat-1: geometry cannot be repaired",
        "zones.geojson:pf-1: owner department 370102-land-bureau is not defined",
        "routing.csv:2: routes protected_farmland zone pf-1 to department"
        " 370102-natural-resources, which is not defined",
    ]
    return folder, expected
