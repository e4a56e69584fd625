"""Fire events from active-fire detections: dedupe, group, mask, classify, score.

Why these radii (defaults in ``contract.settings``, ``fire_*``):

* **Duplicates** are one observation counted twice: the same ground in two overlapping MODIS
  scans (the bow-tie effect towards the swath edge), the same row in two overlapping area
  downloads, or Aqua MODIS and S-NPP / NOAA-20 VIIRS, which fly the same afternoon orbit
  minutes apart. Two detections are one when one's pixel centre lies inside the other's
  pixel (distance <= half the larger pixel's longer side: 0.5 km at MODIS nadir, 2.4 km at
  its swath edge, 0.19 km for VIIRS) within ``dedupe_minutes`` (60). Terra (about 10:30
  and 22:30 local) and Aqua (13:30, 01:30) are hours apart: those are separate looks.
* **Events** link detections closer than ``group_km`` (2 km) or, for coarse pixels, than
  the mean of their pixel diagonals (adjacent pixels touch diagonally at 1.4 km at MODIS
  nadir, about 5 km at the edge), and at most ``group_hours`` (12) apart: the longest gap
  between the four MODIS overpasses of a day (Aqua day to Terra night is 9 h; Terra night
  to Terra day 12 h), so a fire that keeps burning is followed from look to look, while a
  field burnt the next afternoon after a silent morning is a new event.
* **Persistent heat**: a steel works, power plant or gas flare is seen on most clear days
  at one place; a burnt field burns once. An event whose centre has detections within
  ``persistent_km`` (1 km, the MODIS nadir pixel) on ``persistent_days`` (4) or more days in
  the last ``persistent_window_days`` (30) is masked. So are events touching an
  ``enterprise_site`` zone marked ``heat_source: true`` (within half a pixel).
* **Kind**: an event with a detection on ``protected_farmland`` in a harvest month is
  ``straw_burning``, anything else ``open_fire``.
* **Confidence**: each overpass counts with its best detection's confidence (MODIS 0-100 /
  100; VIIRS l/n/h = 0.3/0.65/0.9); independent overpasses combine as ``1 - prod(1 - c)``;
  fire radiative power then adds up to 0.3 of what is left, on a log scale (10 MW: 0.15,
  100 MW: 0.3): a strong fire is rarely a false alarm. Capped at 0.99.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point, shape
from shapely.ops import nearest_points

from contract.records import FireDetection

KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_EQ = 111.320


@dataclass(frozen=True)
class FireParams:
    """The radii and windows of fire grouping and masking (see the module doc)."""

    dedupe_minutes: float = 60.0
    group_km: float = 2.0
    group_hours: float = 12.0
    persistent_km: float = 1.0
    persistent_days: int = 4
    persistent_window_days: float = 30.0
    harvest_months: tuple[int, ...] = (5, 6, 9, 10)


@dataclass(frozen=True)
class FireZone:
    id: str
    kind: str
    heat_source: bool
    geometry: Any


class FireZones:
    """The zones fire classification needs, from GeoJSON features (no ``geo`` import: the
    detector stays pure; the stream hands it the registry's zones as features)."""

    def __init__(self, features: Iterable[Mapping[str, Any]]) -> None:
        self.zones: list[FireZone] = []
        for f in features:
            props = dict(f.get("properties") or {})
            geom = shape(f["geometry"])
            if not geom.is_valid:
                geom = shapely.make_valid(geom)
            self.zones.append(FireZone(str(props.get("id", f.get("id", ""))),
                                       str(props.get("kind", "")),
                                       _truthy(props.get("heat_source")), geom))
        self._tree = shapely.STRtree([z.geometry for z in self.zones])

    def at(self, lon: float, lat: float) -> list[FireZone]:
        return [self.zones[i] for i in self._tree.query(Point(lon, lat), predicate="intersects")]

    def heat_source_near(self, d: FireDetection) -> FireZone | None:
        """A heat-source zone within half of ``d``'s pixel (its hot spot may sit off-site)."""
        reach_km = max(d.scan, d.track) / 2
        kx = KM_PER_DEG_LON_EQ * max(math.cos(math.radians(d.lat)), 0.1)
        pt = Point(d.lon, d.lat)
        box = shapely.box(d.lon - reach_km / kx, d.lat - reach_km / KM_PER_DEG_LAT,
                          d.lon + reach_km / kx, d.lat + reach_km / KM_PER_DEG_LAT)
        for i in self._tree.query(box):
            zone = self.zones[i]
            if not (zone.heat_source and zone.kind == "enterprise_site"):
                continue
            near = nearest_points(zone.geometry, pt)[0]
            if math.hypot((near.x - d.lon) * kx, (near.y - d.lat) * KM_PER_DEG_LAT) <= reach_km:
                return zone
        return None


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"true", "1", "yes", "y", "是"}


@dataclass
class FireEvent:
    """One fire: its (deduplicated) detections and what was decided about it."""

    detections: list[FireDetection]
    kind: str = "open_fire"
    zones: list[str] = field(default_factory=list)
    masked: str | None = None
    confidence: float = 0.0

    @property
    def start(self) -> datetime:
        return min(d.time for d in self.detections)

    @property
    def end(self) -> datetime:
        return max(d.time for d in self.detections)

    @property
    def lon(self) -> float:
        return round(float(np.mean([d.lon for d in self.detections])), 5)

    @property
    def lat(self) -> float:
        return round(float(np.mean([d.lat for d in self.detections])), 5)

    @property
    def max_frp(self) -> float:
        return max(d.frp for d in self.detections)

    @property
    def first(self) -> FireDetection:
        return min(self.detections, key=lambda d: (d.time, d.lat, d.lon))

    @property
    def event_id(self) -> str:
        """Stable id: the earliest detection's place, so an event that grows keeps its id."""
        f = self.first
        return f"firms@{f.lat:.4f},{f.lon:.4f}"

    def to_json(self) -> dict[str, Any]:
        """The offline contract's line (``offsite satellite fires``)."""
        return {"id": self.event_id, "kind": self.kind, "start": _iso(self.start),
                "end": _iso(self.end), "lon": self.lon, "lat": self.lat,
                "detections": len(self.detections), "max_frp": round(self.max_frp, 2),
                "confidence": round(self.confidence, 4), "zones": self.zones,
                "masked": self.masked,
                "satellites": sorted({f"{d.instrument}/{d.satellite}" for d in self.detections})}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _km_matrix(a: Sequence[FireDetection], b: Sequence[FireDetection]) -> np.ndarray:
    """Distances (km) between detections, equirectangular about each pair (few-km scales)."""
    lon_a = np.array([d.lon for d in a])[:, None]
    lat_a = np.array([d.lat for d in a])[:, None]
    lon_b = np.array([d.lon for d in b])[None, :]
    lat_b = np.array([d.lat for d in b])[None, :]
    kx = KM_PER_DEG_LON_EQ * np.cos(np.radians((lat_a + lat_b) / 2))
    return np.hypot((lon_a - lon_b) * kx, (lat_a - lat_b) * KM_PER_DEG_LAT)


def _seconds(dets: Sequence[FireDetection]) -> np.ndarray:
    return np.array([d.time.timestamp() for d in dets])


def dedupe(dets: Sequence[FireDetection], params: FireParams) -> tuple[list[FireDetection], int]:
    """Detections without repeats of one observation (see the module doc), and how many were
    dropped. The best of a repeat is kept: highest confidence, then finer pixel, then FRP."""
    order = sorted(dets, key=lambda d: (-d.confidence, d.scan * d.track, -d.frp, d.time,
                                        d.lat, d.lon, d.satellite))
    if not order:
        return [], 0
    dist = _km_matrix(order, order)
    t = _seconds(order)
    half = np.array([max(d.scan, d.track) / 2 for d in order])
    same = ((dist <= np.maximum(half[:, None], half[None, :]))
            & (np.abs(t[:, None] - t[None, :]) <= params.dedupe_minutes * 60))
    kept: list[int] = []
    dropped = np.zeros(len(order), dtype=bool)
    for i in range(len(order)):
        if dropped[i]:
            continue
        kept.append(i)
        dropped |= same[i]
    out = sorted((order[i] for i in kept), key=lambda d: (d.time, d.lat, d.lon))
    return out, len(order) - len(out)


def group(dets: Sequence[FireDetection], params: FireParams) -> list[list[FireDetection]]:
    """Single-linkage groups of detections in space and time (radii in the module doc)."""
    n = len(dets)
    if n == 0:
        return []
    dist = _km_matrix(dets, dets)
    t = _seconds(dets)
    diag = np.array([math.hypot(d.scan, d.track) for d in dets])
    reach = np.maximum(params.group_km, (diag[:, None] + diag[None, :]) / 2)
    linked = (dist <= reach) & (np.abs(t[:, None] - t[None, :]) <= params.group_hours * 3600)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(linked, 1)), strict=True):
        ri, rj = root(int(i)), root(int(j))
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[FireDetection]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(dets[i])
    return sorted((sorted(g, key=lambda d: (d.time, d.lat, d.lon)) for g in groups.values()),
                  key=lambda g: (g[0].time, g[0].lat, g[0].lon))


class History:
    """Earlier detections as arrays, for the persistent-heat count of many events at once."""

    def __init__(self, dets: Sequence[FireDetection]) -> None:
        self.lon = np.array([d.lon for d in dets], dtype=float)
        self.lat = np.array([d.lat for d in dets], dtype=float)
        self.t = np.array([d.time.timestamp() for d in dets], dtype=float)
        self.day = (self.t // 86400).astype(np.int64)  # UTC day numbers

    def days_near(self, lon: float, lat: float, end: datetime, params: FireParams) -> int:
        """Days with detections within ``persistent_km`` of (lon, lat) in the window."""
        t_end = end.timestamp()
        inside = (self.t <= t_end) & (self.t >= t_end - params.persistent_window_days * 86400)
        kx = KM_PER_DEG_LON_EQ * math.cos(math.radians(lat))
        km = np.hypot((self.lon - lon) * kx, (self.lat - lat) * KM_PER_DEG_LAT)
        return len(np.unique(self.day[inside & (km <= params.persistent_km)]))


def persistent_days(event: FireEvent, history: Sequence[FireDetection] | History,
                    params: FireParams) -> int:
    """Days with detections within ``persistent_km`` of the event's centre in the window."""
    hist = history if isinstance(history, History) else History(history)
    return hist.days_near(event.lon, event.lat, event.end, params)


def confidence(event: FireEvent) -> float:
    """Confidence of an event from its detections' confidence and FRP (module doc)."""
    best: dict[tuple[str, str, int], float] = {}
    for d in event.detections:  # one look: one satellite's overpass (to the half hour)
        look = (d.instrument, d.satellite, int(d.time.timestamp() // 1800))
        best[look] = max(best.get(look, 0.0), d.confidence)
    rest = 1.0
    for c in best.values():
        rest *= 1.0 - c
    seen = 1.0 - rest
    frp_part = 0.3 * min(1.0, math.log10(1.0 + max(event.max_frp, 0.0)) / 2.0)
    return round(min(0.99, 1.0 - (1.0 - seen) * (1.0 - frp_part)), 4)


def classify(event: FireEvent, zones: FireZones | None,
             history: Sequence[FireDetection] | History, params: FireParams) -> FireEvent:
    """Set the event's zones, mask, kind and confidence (in place; returned for chaining)."""
    hit: dict[str, FireZone] = {}
    heat: FireZone | None = None
    if zones is not None:
        for d in event.detections:
            for z in zones.at(d.lon, d.lat):
                hit.setdefault(z.id, z)
            heat = heat or zones.heat_source_near(d)
    event.zones = sorted(hit)
    days = persistent_days(event, history, params)
    if heat is not None:
        event.masked = f"heat_source_zone:{heat.id}"
    elif days >= params.persistent_days:
        event.masked = (f"persistent_heat: detections on {days} days within "
                        f"{params.persistent_km:g} km in {params.persistent_window_days:g} days")
    farmland = any(z.kind == "protected_farmland" for z in hit.values())
    harvest = event.start.month in params.harvest_months
    event.kind = "straw_burning" if farmland and harvest else "open_fire"
    event.confidence = confidence(event)
    return event


@dataclass
class FireResult:
    """What one run over detections found, with the counts a report needs."""

    events: list[FireEvent]
    detections: int
    duplicates: int


def find_events(dets: Sequence[FireDetection], params: FireParams,
                zones: FireZones | None = None,
                history: Sequence[FireDetection] = ()) -> FireResult:
    """Dedupe, group and classify ``dets``; ``history`` (earlier detections, already
    deduplicated) counts for the persistent-heat mask only."""
    kept, dropped = dedupe(dets, params)
    both = History([*history, *kept])
    events = [classify(FireEvent(g), zones, both, params) for g in group(kept, params)]
    return FireResult(events, len(dets), dropped)
