"""The registry folder: the one file format a province keeps its resource pool in.

A folder holds any of ``departments.csv``, ``entities.csv``, ``stations.csv``,
``cameras.csv``, ``scene_collections.csv``, ``zones.geojson`` and ``routing.csv``
(README, "Setting up your province"). People edit these files in Excel and GIS tools, so
this module is forgiving about what those tools write (BOM or not, GB18030 from a Chinese
Windows desktop, extra columns, self-touching polygons) and strict about what would hurt
later (duplicate ids, places outside the globe, owners and routes to departments nobody
defines). It reports every fault at once, ``FILE:LINE: reason``, so a clerk fixes a file
in one round.

Parsing and validation are pure (files in, rows and faults out, no database): the same
check serves ``offsite registry validate`` and the API, and ``storage.registry`` applies
the result.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import shapely
import yaml
from shapely.geometry import mapping, shape

from geo import registry_power
from geo.routing import Rule
from geo.zones import ZONE_KINDS

# kind -> file name, in the order an import applies them (departments first: owners)
FILES: dict[str, str] = {
    "department": "departments.csv",
    "entity": "entities.csv",
    "station": "stations.csv",
    "camera": "cameras.csv",
    "scene_collection": "scene_collections.csv",
    "zone": "zones.geojson",
    "routing_rule": "routing.csv",
    "power_channel": "power_channels.csv",
    "shutdown": "shutdowns.csv",
}
CAMERA_SCHEMES = ("rtsp", "rtsps", "http", "https", "file")
CREDIT_CLASSES = ("A", "B", "C", "D")


@dataclass(frozen=True)
class Fault:
    """One problem: ``FILE:WHERE: reason`` (WHERE a physical line, or a zone id)."""

    file: str
    where: int | str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.where}: {self.reason}"


@dataclass
class Entry:
    """One resource as the folder gives it: only the columns present are in ``fields``."""

    id: str
    line: int | str
    fields: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class RuleRow:
    """One routing rule with its position (1-based, the order first-match uses)."""

    position: int
    clue: str
    zone_kind: str
    department: str
    why: str
    line: int

    def rule(self) -> Rule:
        return Rule(self.clue, self.zone_kind, self.department, self.why)


@dataclass
class Folder:
    """A parsed folder; a kind is None when its file is absent (nothing to change there)."""

    entries: dict[str, list[Entry] | None] = field(default_factory=dict)
    rules: list[RuleRow] | None = None

    def present(self) -> list[str]:
        kinds = [k for k, v in self.entries.items() if v is not None]
        return kinds + (["routing_rule"] if self.rules is not None else [])


# -- typed columns ----------------------------------------------------------------------

def _text(value: str) -> str:
    return value


def _optional_text(value: str) -> str | None:
    return value or None


def _coordinate(lo: float, hi: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        if value == "":
            raise ValueError("empty coordinate")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"not a number: {value!r}") from None
        if not lo <= number <= hi:
            raise ValueError(f"{number} is outside WGS84 range [{lo}, {hi}]")
        return number
    return parse


def _positive_int(value: str) -> int | None:
    if value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"not a whole number: {value!r}") from None
    if number <= 0:
        raise ValueError(f"must be positive: {number}")
    return number


def _credit_class(value: str) -> str | None:
    """A/B/C/D of the environmental credit evaluation; lower case as Excel users type it."""
    if value == "":
        return None
    grade = value.strip().upper()
    if grade not in CREDIT_CLASSES:
        raise ValueError(f"credit class {value!r} is not one of {'/'.join(CREDIT_CLASSES)}")
    return grade


def _id_list(value: str) -> list[str]:
    """``;``-separated ids (also the full-width ``；`` and ``,`` a Chinese keyboard gives)."""
    parts = value.replace("；", ";").replace("，", ";").replace(",", ";").split(";")
    return list(dict.fromkeys(p.strip() for p in parts if p.strip()))


def _camera_url(value: str) -> str:
    scheme = urlsplit(value).scheme.lower()
    if scheme not in CAMERA_SCHEMES:
        raise ValueError(f"camera URL {value!r} is not {'/'.join(CAMERA_SCHEMES)}")
    return value


_LON, _LAT = _coordinate(-180.0, 180.0), _coordinate(-90.0, 90.0)
COLUMNS: dict[str, dict[str, Callable[[str], Any]]] = {
    "department": {"name": _text},
    "entity": {"name": _text, "credit_class": _credit_class, "owner_dept": _optional_text,
               "licence": _optional_text, "zones": _id_list},
    "station": {"name": _text, "lon": _LON, "lat": _LAT, "st": _optional_text,
                "owner_dept": _optional_text, "interval_s": _positive_int,
                "password": _optional_text, "standard": _optional_text,
                "entity": _optional_text},
    "camera": {"name": _text, "url": _camera_url, "lon": _LON, "lat": _LAT,
               "owner_dept": _optional_text, "config": _optional_text,
               "entity": _optional_text},
    "scene_collection": {"name": _text, "owner_dept": _optional_text},
}
COLUMNS.update(registry_power.COLUMNS)
REQUIRED: dict[str, tuple[str, ...]] = {
    "camera": ("url",), "power_channel": ("entity", "meter", "channel", "role", "idle_kw"),
    "shutdown": ("scope", "level", "start", "end")}


# -- reading ------------------------------------------------------------------------------

def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), else GB18030 (a superset of GBK, what Excel writes)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("gb18030")


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, cells) of each CSV record; blank and # comment lines skipped."""
    reader = csv.reader(io.StringIO(text, newline=""))
    end = 0
    for cells in reader:
        start, end = end + 1, reader.line_num
        if not cells or all(not c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        yield start, [c.strip() for c in cells]


def _read(directory: Path, name: str, faults: list[Fault]) -> str | None:
    path = directory / name
    if not path.is_file():
        return None
    try:
        return decode(path.read_bytes())
    except UnicodeDecodeError:
        faults.append(Fault(name, 1, "neither UTF-8 nor GB18030/GBK text"))
        return ""


def parse_csv(kind: str, text: str, faults: list[Fault],
               directory: Path | None) -> list[Entry]:
    name = FILES[kind]
    rows = _rows(text)
    header_row = next(rows, None)
    if header_row is None:
        return []
    header_line, header = header_row
    keyed = kind in registry_power.KEYS  # the id is made of columns (registry_power)
    if "id" not in header and not keyed:
        faults.append(Fault(name, header_line, "no id column"))
        return []
    for col in sorted({c for c in header if header.count(c) > 1}):
        faults.append(Fault(name, header_line, f"column {col!r} appears twice"))
    for col in REQUIRED.get(kind, ()):
        if col not in header:
            faults.append(Fault(name, header_line, f"no {col} column"))
    columns = COLUMNS[kind]
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for line, cells in rows:
        if len(cells) > len(header):
            faults.append(Fault(name, line, f"{len(cells)} values for {len(header)} columns"))
            continue
        row = dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=True))
        rid = _keyed_id(kind, row, name, line, faults) if keyed else row.pop("id")
        if rid is None:
            continue
        if not rid:
            faults.append(Fault(name, line, "empty id"))
            continue
        if rid in seen:
            faults.append(Fault(name, line, f"duplicate id {rid} (first on line {seen[rid]})"))
            continue
        seen[rid] = line
        entry = Entry(rid, line)
        for col, raw in row.items():
            if col not in columns:
                if raw:  # an empty cell of an extra column says nothing
                    entry.properties[col] = raw
                continue
            if col == "owner_dept" and not raw:
                continue  # no owner given: the default owner on insert, unchanged on update
            try:
                entry.fields[col] = columns[col](raw)
            except ValueError as exc:
                faults.append(Fault(name, line, f"{col}: {exc}"))
        for col in REQUIRED.get(kind, ()):
            if col in header and not row.get(col):
                faults.append(Fault(name, line, f"{col} is required"))
        for reason in registry_power.check_row(kind, entry.fields):
            faults.append(Fault(name, line, reason))
        if kind == "camera" and "config" in entry.fields:
            if entry.fields["config"]:
                _load_camera_config(entry, directory, faults)
            else:
                entry.fields["config"] = {}  # an empty cell: the camera's defaults
        entries.append(entry)
    return entries


def _keyed_id(kind: str, row: dict[str, str], name: str, line: int,
              faults: list[Fault]) -> str | None:
    """The id of a row of a file without an id column (None: the key columns are bad)."""
    row.pop("id", None)
    fields: dict[str, Any] = {}
    for col in registry_power.KEYS[kind]:
        try:
            fields[col] = COLUMNS[kind][col](row.get(col, ""))
        except ValueError as exc:
            faults.append(Fault(name, line, f"{col}: {exc}"))
            return None
    return registry_power.row_id(kind, fields)


def _load_camera_config(entry: Entry, directory: Path | None, faults: list[Fault]) -> None:
    """Replace the config path by the YAML's content (stored as JSON in the registry)."""
    rel = entry.fields["config"]
    path = (directory / rel) if directory is not None else Path(rel)
    if directory is not None and not path.resolve().is_relative_to(directory.resolve()):
        faults.append(Fault(FILES["camera"], entry.line, f"config {rel}: outside the folder"))
        entry.fields.pop("config")
        return
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError("not a mapping")
    except (OSError, ValueError, yaml.YAMLError) as exc:
        faults.append(Fault(FILES["camera"], entry.line, f"config {rel}: {exc}"))
        entry.fields.pop("config")
        return
    entry.fields["config"] = data


def _parse_zones(text: str, faults: list[Fault]) -> list[Entry]:
    name = FILES["zone"]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        faults.append(Fault(name, exc.lineno, f"not JSON: {exc.msg}"))
        return []
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        faults.append(Fault(name, 1, "not a GeoJSON FeatureCollection"))
        return []
    entries: list[Entry] = []
    seen: set[str] = set()
    for n, feature in enumerate(data.get("features") or [], start=1):
        props = dict((feature or {}).get("properties") or {})
        zid = str(props.pop("id", None) or (feature or {}).get("id") or "")
        if not zid:
            faults.append(Fault(name, f"feature {n}", "no id"))
            continue
        if zid in seen:
            faults.append(Fault(name, zid, "duplicate id"))
            continue
        seen.add(zid)
        kind = str(props.pop("kind", ""))
        if kind not in ZONE_KINDS:
            faults.append(Fault(name, zid, f"unknown zone kind {kind!r}; expected one of "
                                           f"{', '.join(ZONE_KINDS)}"))
        geometry, reason = repair_geometry(feature.get("geometry"))
        if reason:
            faults.append(Fault(name, zid, reason))
        fields: dict[str, Any] = {"kind": kind, "geometry": geometry}
        for col in ("name", "county", "owner_dept"):
            if col in props:
                value = props.pop(col)
                fields[col] = "" if value is None else str(value)
        if not fields.get("owner_dept"):
            fields.pop("owner_dept", None)
        entries.append(Entry(zid, zid, fields, props))
    return entries


def repair_geometry(geojson: Any) -> tuple[dict[str, Any] | None, str]:
    """A valid polygonal GeoJSON geometry, or None and why it cannot be one.

    Hand-drawn parcels often self-touch or self-intersect; ``make_valid`` repairs them, and
    what it cannot make an area of (a polygon collapsed to a line) is refused.
    """
    try:
        geom = shape(geojson)
    except Exception as exc:  # shapely raises several types on malformed input
        return None, f"geometry cannot be read: {exc}"
    if geom.is_empty:
        return None, "empty geometry"
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        return None, "coordinates outside WGS84 lon/lat ranges"
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
        if geom.geom_type == "GeometryCollection":
            parts = [g for g in geom.geoms if g.geom_type in ("Polygon", "MultiPolygon")]
            geom = shapely.union_all(parts) if parts else geom
    if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.area == 0:
        return None, f"geometry cannot be repaired into an area ({geom.geom_type})"
    # lists, not tuples: the same value the database gives back, so re-imports compare equal
    return json.loads(json.dumps(mapping(geom))), ""


def _parse_rules(text: str, faults: list[Fault]) -> list[RuleRow]:
    name = FILES["routing_rule"]
    rows = _rows(text)
    header_row = next(rows, None)
    if header_row is None:
        return []
    header_line, header = header_row
    missing = [c for c in ("clue", "zone_kind", "department") if c not in header]
    if missing:
        faults.append(Fault(name, header_line, f"missing column(s) {', '.join(missing)}"))
        return []
    out: list[RuleRow] = []
    for line, cells in rows:
        row = dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=False))
        clue, kind, dept = row["clue"], row["zone_kind"], row["department"]
        if not clue or not dept:
            faults.append(Fault(name, line, "clue and department are required"))
            continue
        if kind != "*" and kind not in ZONE_KINDS:
            faults.append(Fault(name, line, f"unknown zone kind {kind!r}"))
            continue
        out.append(RuleRow(len(out) + 1, clue, kind, dept, row.get("why", ""), line))
    return out


def parse_folder(directory: str | Path) -> tuple[Folder, list[Fault]]:
    """Read every file present; faults of form and type (not of references: see validate)."""
    directory = Path(directory)
    faults: list[Fault] = []
    folder = Folder()
    for kind, name in FILES.items():
        text = _read(directory, name, faults)
        if kind == "routing_rule":
            folder.rules = None if text is None else _parse_rules(text, faults)
        elif kind == "zone":
            folder.entries[kind] = None if text is None else _parse_zones(text, faults)
        else:
            folder.entries[kind] = None if text is None else parse_csv(
                kind, text, faults, directory)
    return folder, faults
