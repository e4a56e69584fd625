"""Cross-references of a registry folder: owners and routes must reach defined departments.

Split from ``geo.registry_folder`` (form and types of each file) because these checks see
the whole folder at once, and on import also the departments already in the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from geo.registry_folder import (
    FILES,
    Entry,
    Fault,
    Folder,
    RuleRow,
    decode,
    parse_csv,
    parse_folder,
)
from geo.routing import DEFAULT_ROLE, OWNER
from geo.zones import SITE_PRIORITY


def check_references(folder: Folder, *, default_owner: str,
                     known_departments: Iterable[str] = (), known_entities: Iterable[str] = (),
                     known_zones: Iterable[str] = ()) -> list[Fault]:
    """Owners, routes, entities and entity zones that point at what nobody defines.

    ``known_*`` are those already in the database (on import); the default owner always
    counts as defined (the importer creates it when missing).
    """
    defined = {e.id for e in folder.entries.get("department") or []}
    defined |= set(known_departments) | {default_owner}
    faults: list[Fault] = []
    for kind, entries in folder.entries.items():
        for e in entries or []:
            owner = e.fields.get("owner_dept")
            if owner and owner not in defined:
                faults.append(Fault(FILES[kind], e.line,
                                    f"owner department {owner} is not defined"))
    faults += _check_routes(folder, defined)
    faults += _check_entities(folder, set(known_entities), set(known_zones))
    return faults


def _check_entities(folder: Folder, known_entities: set[str], known_zones: set[str]
                    ) -> list[Fault]:
    """Stations and cameras watch defined entities; an entity's zones are enterprise sites.

    A zone the folder itself defines must be of kind ``enterprise_site`` (the site an entity
    is responsible for); one only in the database is taken as it is.
    """
    entities = {e.id for e in folder.entries.get("entity") or []} | known_entities
    zones = {z.id: z.fields.get("kind") for z in folder.entries.get("zone") or []}
    faults: list[Fault] = []
    for kind in ("station", "camera"):
        for e in folder.entries.get(kind) or []:
            entity = e.fields.get("entity")
            if entity and entity not in entities:
                faults.append(Fault(FILES[kind], e.line, f"entity {entity} is not defined"))
    for e in folder.entries.get("entity") or []:
        for zid in e.fields.get("zones") or []:
            if zid in zones:
                if zones[zid] != "enterprise_site":
                    faults.append(Fault(FILES["entity"], e.line,
                                        f"zone {zid} is a {zones[zid]} zone, not an"
                                        " enterprise_site"))
            elif zid not in known_zones:
                faults.append(Fault(FILES["entity"], e.line, f"zone {zid} is not defined"))
    for e in folder.entries.get("power_channel") or []:
        entity = e.fields.get("entity")
        if entity and entity not in entities:
            faults.append(Fault(FILES["power_channel"], e.line,
                                f"entity {entity} is not defined"))
    for e in folder.entries.get("shutdown") or []:
        scope = e.fields.get("scope")
        if scope and scope not in entities and scope not in zones and scope not in known_zones:
            faults.append(Fault(FILES["shutdown"], e.line,
                                f"scope {scope} is neither an entity nor a zone"))
    return faults


def _check_routes(folder: Folder, defined: set[str]) -> list[Fault]:
    """Every department a rule can resolve to, over the folder's zones, must be defined.

    A rule is checked for each zone of its kind (``*``: every kind) unless an earlier
    catch-all rule (clue ``*``) for that kind shadows it; the role resolves per county as
    ``geo.routing`` does (``<county>-<role>``; ``@owner``: the zone's owner department).
    """
    zones = folder.entries.get("zone")
    if folder.rules is None or not zones:
        return []
    faults: list[Fault] = []
    reported: set[tuple[int, str]] = set()
    rules = folder.rules + [RuleRow(len(folder.rules) + 1, "*", "*", DEFAULT_ROLE, "", 0)]
    for zone in zones:
        kind = zone.fields.get("kind")
        if kind not in SITE_PRIORITY and kind != "jurisdiction":
            continue
        county = zone.fields.get("county", "")
        for rule in rules:
            if rule.zone_kind not in ("*", kind):
                continue
            if rule.department == OWNER:
                dept = zone.fields.get("owner_dept") or (
                    f"{county}-{DEFAULT_ROLE}" if county else "")
            else:
                dept = f"{county}-{rule.department}" if county else ""
            if dept and dept not in defined and (rule.position, dept) not in reported:
                reported.add((rule.position, dept))
                where = ("routing.csv", rule.line) if rule.line else ("zones.geojson", zone.id)
                faults.append(Fault(where[0], where[1],
                                    f"routes {kind} zone {zone.id} to department {dept},"
                                    " which is not defined"))
            if rule.clue == "*":
                break  # every later rule is shadowed for this zone
    return faults


def validate_folder(directory: str | Path, *, default_owner: str,
                    known_departments: Iterable[str] = (), known_entities: Iterable[str] = (),
                    known_zones: Iterable[str] = ()) -> tuple[Folder, list[Fault]]:
    """Parse and check a folder; the faults come in file order, every one of them."""
    folder, faults = parse_folder(directory)
    faults += check_references(folder, default_owner=default_owner,
                               known_departments=known_departments,
                               known_entities=known_entities, known_zones=known_zones)
    order = list(FILES.values())
    faults.sort(key=lambda f: (order.index(f.file) if f.file in order else 99,
                               f.where if isinstance(f.where, int) else 0))  # stable
    return folder, faults


def read_file(path: str | Path, kind: str) -> tuple[list[Entry], list[Fault]]:
    """One registry file read as its kind, wherever it lies (an offline tool's input,
    ``offsite power analyze --channels``): the faults an import would report for it."""
    path = Path(path)
    faults: list[Fault] = []
    try:
        text = decode(path.read_bytes())
    except UnicodeDecodeError:
        return [], [Fault(path.name, 1, "neither UTF-8 nor GB18030/GBK text")]
    return parse_csv(kind, text, faults, path.parent), faults
