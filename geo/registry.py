"""Registry rows to routing objects, and registry rows back to a registry folder.

``storage.registry`` reads the tables; this module turns zone and rule rows into a
``Router`` (so workers, the API and case bundles route over what the province registered,
not a shipped demo set) and writes the folder format of ``geo.registry_folder`` for
``offsite registry export``. Both are pure apart from writing files.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from shapely.geometry import shape

from geo.registry_folder import FILES
from geo.routing import Router, Rule
from geo.zones import Zone, ZoneIndex

# the columns export writes first, in this order; properties follow as extra columns
EXPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "department": ("id", "name"),
    "entity": ("id", "name", "credit_class", "owner_dept", "licence", "zones"),
    "station": ("id", "name", "lon", "lat", "st", "owner_dept", "interval_s", "standard",
                "password", "entity"),
    "camera": ("id", "name", "url", "lon", "lat", "owner_dept", "config", "entity"),
    "scene_collection": ("id", "name", "owner_dept"),
    # the id of these is made of their columns (geo.registry_power): not written
    "power_channel": ("entity", "meter", "channel", "role", "rated_kw", "idle_kw"),
    "shutdown": ("scope", "level", "start", "end"),
}


def zone_from_row(row: Mapping[str, Any]) -> Zone:
    """A ``Zone`` from a ``zones`` row (geometry already repaired on import)."""
    return Zone(id=row["id"], kind=row["kind"], name=row.get("name") or row["id"],
                county=row.get("county") or "", owner_dept=row.get("owner_dept") or "",
                geometry=shape(row["geometry"]), properties=dict(row.get("properties") or {}))


def rule_from_row(row: Mapping[str, Any]) -> Rule:
    return Rule(row["clue"], row["zone_kind"], row["department"], row.get("why") or "")


def router_from_rows(zones: Iterable[Mapping[str, Any]],
                     rules: Iterable[Mapping[str, Any]]) -> Router:
    """The router over registered zones and rules (active rows, rules by position).

    With no rules at all every clue goes to the built-in default role of its county.
    """
    return Router(ZoneIndex(zone_from_row(z) for z in zones),
                  [rule_from_row(r) for r in rules])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """A CSV in UTF-8 with a BOM, so that Excel on a Chinese desktop shows names right."""
    count = 0
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(columns)
        for row in rows:
            out.writerow([_cell(row.get(c)) for c in columns])
            count += 1
    return count


def write_folder(directory: str | Path, tables: Mapping[str, list[dict[str, Any]]], *,
                 with_secrets: bool = False) -> dict[str, int]:
    """Write registry rows (kind -> rows as dicts with ``properties``) as a registry folder.

    Camera configs go to ``cameras/<id>.yaml`` next to ``cameras.csv``; station passwords
    are written only ``with_secrets``. Returns the number of rows written per kind.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, int] = {}
    for kind, base in EXPORT_COLUMNS.items():
        if kind not in tables:
            continue
        columns = [c for c in base if with_secrets or c != "password"]
        rows = []
        extra: list[str] = []
        for row in tables[kind]:
            flat = {k: v for k, v in row.items() if k != "properties"}
            for key, value in (row.get("properties") or {}).items():
                if key not in base and key not in flat:
                    flat[key] = value
                    if key not in extra:
                        extra.append(key)
            if kind == "camera":
                flat["config"] = _write_camera_config(directory, row)
            if kind == "entity":  # the folder's form: ;-separated, as Excel users type it
                flat["zones"] = ";".join(row.get("zones") or [])
            rows.append(flat)
        written[kind] = write_csv(directory / FILES[kind], columns + extra, rows)
    if "zone" in tables:
        features = [{"type": "Feature",
                     "properties": {"id": z["id"], "kind": z["kind"], "name": z["name"],
                                    "county": z["county"], "owner_dept": z["owner_dept"],
                                    **(z.get("properties") or {})},
                     "geometry": z["geometry"]} for z in tables["zone"]]
        (directory / FILES["zone"]).write_text(json.dumps(
            {"type": "FeatureCollection", "features": features}, ensure_ascii=False, indent=1),
            encoding="utf-8")
        written["zone"] = len(features)
    if "routing_rule" in tables:
        written["routing_rule"] = write_csv(directory / FILES["routing_rule"],
                                            ("clue", "zone_kind", "department", "why"),
                                            tables["routing_rule"])
    return written


def _write_camera_config(directory: Path, row: Mapping[str, Any]) -> str:
    config = row.get("config") or {}
    if not config:
        return ""
    rel = Path("cameras") / (re.sub(r"[^\w.-]", "_", str(row["id"])) + ".yaml")
    (directory / rel).parent.mkdir(parents=True, exist_ok=True)
    (directory / rel).write_text(yaml.safe_dump(dict(config), allow_unicode=True,
                                                sort_keys=False), encoding="utf-8")
    return rel.as_posix()
