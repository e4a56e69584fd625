"""Routing of a clue to the zones it touches, its jurisdiction and the departments in charge.

Who handles what is policy, and policy changes by decree, not by release: the rules are a
CSV table (clue pattern x zone kind -> department), first match wins, with a catch-all
row. A department in a rule is a role ("natural-resources"), resolved against the county
of the zone hit, so one table serves every county; ``@owner`` defers to the zone's own
owner department (an enterprise's permit-holding bureau).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from shapely.geometry.base import BaseGeometry

from contract.clue import Clue
from geo.zones import (
    SITE_MAX_AREA_M2,
    SITE_PRIORITY,
    ZONE_KINDS,
    Zone,
    ZoneHit,
    ZoneIndex,
    as_geometry,
    pick_jurisdiction,
    site_key,
)

DEMO_RULES = Path(__file__).parent / "data" / "routing_rules.csv"
OWNER = "@owner"
DEFAULT_ROLE = "ecology-environment"

ROLE_LABELS: dict[str, str] = {
    "ecology-environment": "ecology-environment bureau",
    "natural-resources": "natural-resources bureau",
    "water-resources": "water-resources bureau",
    "forestry": "forestry bureau",
}


@dataclass(frozen=True)
class Rule:
    """One row: clues matching ``clue`` (pattern on "modality/kind") in ``zone_kind``."""

    clue: str
    zone_kind: str
    department: str
    why: str = ""

    def matches(self, clue_key: str, zone_kind: str | None) -> bool:
        if not fnmatchcase(clue_key, self.clue):
            return False
        return self.zone_kind == "*" or self.zone_kind == zone_kind


def load_rules(source: str | Path = DEMO_RULES) -> list[Rule]:
    """Rules from a CSV file or CSV text (lines starting with # are comments)."""
    text = source if isinstance(source, str) and "\n" in source else Path(source).read_text(
        encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    rules = []
    for n, row in enumerate(csv.DictReader(io.StringIO("\n".join(lines))), start=1):
        clue = (row.get("clue") or "").strip()
        zone_kind = (row.get("zone_kind") or "").strip()
        dept = (row.get("department") or "").strip()
        if not clue or not dept:
            raise ValueError(f"routing rule {n}: clue and department are required")
        if zone_kind != "*" and zone_kind not in ZONE_KINDS:
            raise ValueError(f"routing rule {n}: unknown zone kind {zone_kind!r}")
        rules.append(Rule(clue, zone_kind, dept, (row.get("why") or "").strip()))
    if not rules:
        raise ValueError("no routing rules")
    return rules


@dataclass(frozen=True)
class Assignment:
    """A department made responsible for a clue through one zone, and the rule that did it."""

    department: str
    zone_id: str | None
    zone_kind: str | None
    rule: Rule


@dataclass(frozen=True)
class Route:
    """Where a clue belongs: its site key, the zones hit, jurisdiction and departments."""

    site: str
    zones: tuple[ZoneHit, ...]
    jurisdiction: Zone | None
    assignments: tuple[Assignment, ...]

    @property
    def department(self) -> str:
        """The primary department: the one routed through the most specific zone."""
        return self.assignments[0].department

    @property
    def departments(self) -> list[str]:
        """Every department involved, primary first, without repeats."""
        return list(dict.fromkeys(a.department for a in self.assignments))

    @property
    def county(self) -> str:
        return self.jurisdiction.county if self.jurisdiction else ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the clue's metrics/lifecycle record and the API."""
        j = self.jurisdiction
        return {
            "site": self.site,
            "jurisdiction": {"id": j.id, "name": j.name, "county": j.county} if j else None,
            "department": self.department,
            "departments": self.departments,
            "zones": [{"id": h.zone.id, "kind": h.zone.kind, "name": h.zone.name,
                       "overlap_m2": round(h.overlap_m2, 1)} for h in self.zones],
            "assignments": [{"department": a.department, "zone": a.zone_id,
                             "zone_kind": a.zone_kind, "why": a.rule.why}
                            for a in self.assignments],
        }


class Router:
    """Routes clues over one zone index with one rule table; cheap to share between agents."""

    def __init__(self, index: ZoneIndex, rules: Sequence[Rule],
                 site_max_area_m2: float | None = SITE_MAX_AREA_M2) -> None:
        self.index = index
        self.rules = list(rules)
        self.site_max_area_m2 = site_max_area_m2

    @classmethod
    def demo(cls) -> Router:
        return cls(ZoneIndex.demo(), load_rules(DEMO_RULES))

    def route(self, location: Mapping[str, Any] | BaseGeometry | None, *, modality: str,
              kind: str, subject: str = "") -> Route:
        """Route a clue given its location (GeoJSON point/polygon, WGS84), modality and kind.

        Without a location (a station not yet placed) the site falls back to the subject so
        its clues still fuse, and the department to the catch-all rule at province level.
        """
        clue_key = f"{modality}/{kind}"
        if location is None:
            rule = self._rule(clue_key, None)
            dept = _resolve(rule, None, "")
            return Route(f"subject:{subject}", (), None, (Assignment(dept, None, None, rule),))
        geom = as_geometry(location)
        hits = self.index.hits(geom)
        juris = pick_jurisdiction(hits)
        county = juris.county if juris else ""
        zones = sorted((h for h in hits if h.zone.kind in SITE_PRIORITY),
                       key=lambda h: (SITE_PRIORITY.index(h.zone.kind), -h.overlap_m2,
                                      h.zone.area_m2, h.zone.id))
        through: list[Zone | None] = [h.zone for h in zones] or [juris]
        assignments = []
        for zone in through:
            rule = self._rule(clue_key, zone.kind if zone else None)
            assignments.append(Assignment(_resolve(rule, zone, county),
                                          zone.id if zone else None,
                                          zone.kind if zone else None, rule))
        ordered = tuple(zones) + tuple(h for h in hits if h.zone.kind == "jurisdiction")
        return Route(site_key(hits, geom, self.site_max_area_m2), ordered, juris,
                     tuple(assignments))

    def route_clue(self, clue: Clue) -> Route:
        return self.route(clue.location, modality=clue.modality, kind=clue.kind,
                          subject=clue.subject)

    def _rule(self, clue_key: str, zone_kind: str | None) -> Rule:
        for rule in self.rules:
            if rule.matches(clue_key, zone_kind):
                return rule
        return Rule("*", "*", DEFAULT_ROLE, "built-in default: no rule matched")

    def departments(self) -> dict[str, str]:
        """Every department the rules can route to in this zone set, id -> readable name.

        Used to seed the ``departments`` table so routed clues never point at a missing row.
        """
        names: dict[str, str] = {}
        counties = _county_names(self.index.zones)
        roles = {r.department for r in self.rules if r.department != OWNER} | {DEFAULT_ROLE}
        for county, cname in counties.items():
            for role in sorted(roles):
                names[f"{county}-{role}"] = f"{cname} {ROLE_LABELS.get(role, role)}"
        for zone in self.index.zones:
            if zone.owner_dept and zone.owner_dept not in names:
                names[zone.owner_dept] = department_name(zone.owner_dept, counties)
        return dict(sorted(names.items()))


def _resolve(rule: Rule, zone: Zone | None, county: str) -> str:
    if rule.department == OWNER:
        if zone is not None and zone.owner_dept:
            return zone.owner_dept
        role = DEFAULT_ROLE  # @owner on a zone without an owner: the county default
    else:
        role = rule.department
    county = (zone.county if zone is not None and zone.county else county)
    return f"{county}-{role}" if county else role


def _county_names(zones: Iterable[Zone]) -> dict[str, str]:
    out: dict[str, str] = {}
    for z in zones:
        if z.kind == "jurisdiction" and z.county:
            out.setdefault(z.county, z.name)
    return out


def department_name(dept_id: str, counties: Mapping[str, str]) -> str:
    """A readable name for ``<county>-<role>`` ids; other ids are returned unchanged."""
    county, _, role = dept_id.partition("-")
    if county in counties and role:
        return f"{counties[county]} {ROLE_LABELS.get(role, role)}"
    return dept_id
