"""Regulatory zones, a spatial index over them, and metric geometry on WGS84 data.

Zones come from GeoJSON (one Feature per zone, WGS84 lon/lat) so that departments can
maintain them in any GIS tool. Lookups go through a shapely STRtree because every clue
is routed through here, and a linear scan over thousands of farmland parcels would not keep
up with the stream. Areas and distances are computed in local projections (Lambert
azimuthal equal-area for areas, azimuthal equidistant for distances) centred on the data,
because degrees are not metres and a single national projection distorts at the edges.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import Point, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

ZoneKind = Literal["protected_farmland", "ecological_redline", "water_source", "forest",
                   "enterprise_site", "restricted_area", "jurisdiction"]
ZONE_KINDS: tuple[str, ...] = get_args(ZoneKind)

# Most specific first: a clue inside an enterprise site is about that enterprise even when
# the site also lies in farmland or a red-line area. Jurisdictions are never a site: a
# whole county is too coarse to fuse clues on.
SITE_PRIORITY: tuple[str, ...] = ("enterprise_site", "water_source", "restricted_area",
                                  "protected_farmland", "forest", "ecological_redline")
# A zone larger than this is too coarse to fuse clues on (a red line or a fuel-ban area can
# span tens of km²); clues there fall back to a grid cell. Enterprise sites are always sites.
SITE_MAX_AREA_M2 = 10e6

DEMO_ZONES = Path(__file__).parent / "data" / "demo_zones.geojson"
_WGS84_GEOD = Geod(ellps="WGS84")
_GEOHASH_ALPHABET = "0123456789bcdefghjkmnpqrstuvwxyz"
GRID_PRECISION = 6  # geohash cell of 6 characters: about 1.2 km x 0.6 km


@dataclass(frozen=True)
class Zone:
    """One zone: its kind, who owns it, which county it belongs to, and its shape."""

    id: str
    kind: str
    name: str
    county: str
    owner_dept: str
    geometry: BaseGeometry = field(repr=False, compare=False)
    properties: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    area_m2: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # zones are immutable and often compared by size: measure once
        object.__setattr__(self, "area_m2", area_m2(self.geometry))

    @property
    def level(self) -> int:
        """Administrative level for jurisdictions (higher is more local), 0 if not given."""
        return int(self.properties.get("level", 0))

    @classmethod
    def from_feature(cls, feature: Mapping[str, Any]) -> Zone:
        props = dict(feature.get("properties") or {})
        zone_id = str(props.pop("id", feature.get("id") or ""))
        kind = str(props.pop("kind", ""))
        if not zone_id:
            raise ValueError("zone feature without an id")
        if kind not in ZONE_KINDS:
            raise ValueError(f"zone {zone_id}: unknown kind {kind!r}; expected one of "
                             f"{', '.join(ZONE_KINDS)}")
        geom = shape(feature["geometry"])
        if geom.is_empty:
            raise ValueError(f"zone {zone_id}: empty geometry")
        if not geom.is_valid:  # hand-drawn parcels often self-touch; repair, don't refuse
            geom = shapely.make_valid(geom)
        return cls(id=zone_id, kind=kind, name=str(props.pop("name", zone_id)),
                   county=str(props.pop("county", "")),
                   owner_dept=str(props.pop("owner_dept", "")), geometry=geom,
                   properties=props)

    def to_feature(self) -> dict[str, Any]:
        props = {"id": self.id, "kind": self.kind, "name": self.name, "county": self.county,
                 "owner_dept": self.owner_dept, **self.properties}
        return {"type": "Feature", "properties": props,
                "geometry": mapping(self.geometry)}


@dataclass(frozen=True)
class ZoneHit:
    """A zone a location falls in or overlaps, with how much of the location it covers."""

    zone: Zone
    overlap_m2: float = 0.0


class ZoneIndex:
    """Zones plus an STRtree over their geometries; immutable once built."""

    def __init__(self, zones: Iterable[Zone]) -> None:
        self.zones: list[Zone] = list(zones)
        seen: set[str] = set()
        for z in self.zones:
            if z.id in seen:
                raise ValueError(f"duplicate zone id {z.id}")
            seen.add(z.id)
        self._by_id = {z.id: z for z in self.zones}
        self._tree = shapely.STRtree([z.geometry for z in self.zones])

    @classmethod
    def from_geojson(cls, source: str | Path | Mapping[str, Any]) -> ZoneIndex:
        """Build from a FeatureCollection (a dict, or a path to a .geojson file)."""
        data = source if isinstance(source, Mapping) else json.loads(
            Path(source).read_text(encoding="utf-8"))
        if data.get("type") != "FeatureCollection":
            raise ValueError("zones must be a GeoJSON FeatureCollection")
        return cls(Zone.from_feature(f) for f in data["features"])

    @classmethod
    def demo(cls) -> ZoneIndex:
        """The shipped demo zone set (Taizhou, Jiangsu and Dongcheng, Beijing)."""
        return cls.from_geojson(DEMO_ZONES)

    def __len__(self) -> int:
        return len(self.zones)

    def get(self, zone_id: str) -> Zone | None:
        return self._by_id.get(zone_id)

    def hits(self, location: Mapping[str, Any] | BaseGeometry,
             kinds: Iterable[str] | None = None) -> list[ZoneHit]:
        """Zones that contain a point or overlap an area (boundary points count as inside).

        For an areal location each hit carries the overlap in m², so callers can tell a
        change patch that grazes a parcel from one that lies inside it.
        """
        geom = as_geometry(location)
        wanted = set(kinds) if kinds is not None else None
        idx = self._tree.query(geom, predicate="intersects")
        out = []
        areal = geom.geom_type in ("Polygon", "MultiPolygon")
        for i in sorted(int(i) for i in idx):
            zone = self.zones[i]
            if wanted is not None and zone.kind not in wanted:
                continue
            overlap = area_m2(zone.geometry.intersection(geom)) if areal else 0.0
            out.append(ZoneHit(zone, overlap))
        return out

    def nearby(self, location: Mapping[str, Any] | BaseGeometry, radius_m: float,
               kinds: Iterable[str] | None = None) -> list[tuple[Zone, float]]:
        """Zones within ``radius_m`` metres, nearest first, with their distance in metres.

        The tree is queried with a generous box in degrees, then each candidate is measured
        exactly, so the degree approximation never decides the answer.
        """
        geom = as_geometry(location)
        lat = abs(geom.centroid.y)
        pad_lat = radius_m / 110_000.0 * 1.1
        pad_lon = pad_lat / max(np.cos(np.radians(min(lat + pad_lat, 89.0))), 0.01)
        minx, miny, maxx, maxy = geom.bounds
        box = shapely.box(minx - pad_lon, miny - pad_lat, maxx + pad_lon, maxy + pad_lat)
        wanted = set(kinds) if kinds is not None else None
        out = []
        for i in self._tree.query(box):
            zone = self.zones[int(i)]
            if wanted is not None and zone.kind not in wanted:
                continue
            d = distance_m(geom, zone.geometry)
            if d <= radius_m:
                out.append((zone, d))
        return sorted(out, key=lambda zd: (zd[1], zd[0].id))

    def jurisdiction(self, location: Mapping[str, Any] | BaseGeometry) -> Zone | None:
        """The most local jurisdiction of a location (district before city before province)."""
        return pick_jurisdiction(self.hits(location, kinds=["jurisdiction"]))

    def site_key(self, location: Mapping[str, Any] | BaseGeometry,
                 max_area_m2: float | None = SITE_MAX_AREA_M2) -> str:
        """The key clues about the same place share: a zone id, else a ~1 km grid cell."""
        return site_key(self.hits(location), as_geometry(location), max_area_m2)


def pick_site(hits: Iterable[ZoneHit], max_area_m2: float | None = None) -> Zone | None:
    """The most specific non-jurisdiction zone hit: by kind priority, then overlap, then size.

    With ``max_area_m2`` zones larger than that (other than enterprise sites) are skipped:
    routing wants the most specific zone whatever its size, fusion wants a small place.
    """
    ranked = [h for h in hits if h.zone.kind in SITE_PRIORITY and (
        max_area_m2 is None or h.zone.kind == "enterprise_site"
        or h.zone.area_m2 <= max_area_m2)]
    if not ranked:
        return None
    best = min(ranked, key=lambda h: (SITE_PRIORITY.index(h.zone.kind), -h.overlap_m2,
                                      h.zone.area_m2, h.zone.id))
    return best.zone


def pick_jurisdiction(hits: Iterable[ZoneHit]) -> Zone | None:
    """The most local jurisdiction hit; among equals the one covering most of the location."""
    ranked = [h for h in hits if h.zone.kind == "jurisdiction"]
    if not ranked:
        return None
    return min(ranked, key=lambda h: (-h.zone.level, -h.overlap_m2, h.zone.area_m2,
                                      h.zone.id)).zone


def site_key(hits: Iterable[ZoneHit], geom: BaseGeometry,
             max_area_m2: float | None = SITE_MAX_AREA_M2) -> str:
    """Zone id of the most specific small site hit, else ``gh:`` plus the location's geohash."""
    zone = pick_site(hits, max_area_m2)
    if zone is not None:
        return zone.id
    return grid_cell(geom)


def grid_cell(location: Mapping[str, Any] | BaseGeometry,
              precision: int = GRID_PRECISION) -> str:
    """Grid-cell key of a location: its representative point's geohash, prefixed ``gh:``."""
    geom = as_geometry(location)
    pt = geom if isinstance(geom, Point) else geom.representative_point()
    return "gh:" + geohash(pt.x, pt.y, precision)


def geohash(lon: float, lat: float, precision: int = GRID_PRECISION) -> str:
    """Standard geohash (base32, interleaved lon/lat bisection) — no dependency needed."""
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise ValueError(f"not a WGS84 lon/lat: {lon}, {lat}")
    lon_lo, lon_hi, lat_lo, lat_hi = -180.0, 180.0, -90.0, 90.0
    chars: list[str] = []
    bits = 0
    nbits = 0
    even = True  # geohash starts with a longitude bit
    while len(chars) < precision:
        if even:
            mid = (lon_lo + lon_hi) / 2
            bit = lon >= mid
            lon_lo, lon_hi = (mid, lon_hi) if bit else (lon_lo, mid)
        else:
            mid = (lat_lo + lat_hi) / 2
            bit = lat >= mid
            lat_lo, lat_hi = (mid, lat_hi) if bit else (lat_lo, mid)
        bits = (bits << 1) | int(bit)
        nbits += 1
        even = not even
        if nbits == 5:
            chars.append(_GEOHASH_ALPHABET[bits])
            bits = nbits = 0
    return "".join(chars)


def geohash_cover(west: float, south: float, east: float, north: float,
                  precision: int) -> list[str]:
    """The geohash cells a lon/lat box touches: the box sampled at one cell's size (cells
    are aligned, so every cell the box crosses gets a sample), its far edges included."""
    lon_bits, lat_bits = (5 * precision + 1) // 2, 5 * precision // 2
    width, height = 360.0 / 2 ** lon_bits, 180.0 / 2 ** lat_bits

    def steps(lo: float, hi: float, step: float) -> list[float]:
        n = max(0, math.floor((hi - lo) / step))
        return [lo + k * step for k in range(n + 1)] + [hi]

    return sorted({geohash(min(max(x, -180.0), 180.0), min(max(y, -90.0), 90.0), precision)
                   for x in steps(west, east, width) for y in steps(south, north, height)})


def geohash_bounds(code: str) -> tuple[float, float, float, float]:
    """(min lon, min lat, max lon, max lat) of a geohash cell, for drawing grid sites."""
    lon_lo, lon_hi, lat_lo, lat_hi = -180.0, 180.0, -90.0, 90.0
    even = True
    for ch in code.removeprefix("gh:"):
        val = _GEOHASH_ALPHABET.index(ch)
        for shift in range(4, -1, -1):
            bit = (val >> shift) & 1
            if even:
                mid = (lon_lo + lon_hi) / 2
                lon_lo, lon_hi = (mid, lon_hi) if bit else (lon_lo, mid)
            else:
                mid = (lat_lo + lat_hi) / 2
                lat_lo, lat_hi = (mid, lat_hi) if bit else (lat_lo, mid)
            even = not even
    return lon_lo, lat_lo, lon_hi, lat_hi


def as_geometry(location: Mapping[str, Any] | BaseGeometry) -> BaseGeometry:
    """A shapely geometry from a GeoJSON geometry (or Feature) dict, or a geometry as is."""
    if isinstance(location, BaseGeometry):
        geom = location
    else:
        if location.get("type") == "Feature":
            location = location["geometry"]
        geom = shape(location)
    if geom.is_empty:
        raise ValueError("empty location")
    return geom


@lru_cache(maxsize=256)
def _local_transformer(proj: str, lon0: float, lat0: float) -> Transformer:
    crs = f"+proj={proj} +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m +no_defs"
    return Transformer.from_crs("EPSG:4326", crs, always_xy=True)


def _project(geom: BaseGeometry, proj: str, lon0: float, lat0: float) -> BaseGeometry:
    # rounding the centre keeps the transformer cache small; at 0.01 degree the centre moves
    # by under a kilometre, which changes equal-area results not at all and distances by
    # far less than a millimetre for zone-sized shapes
    tr = _local_transformer(proj, round(lon0, 2), round(lat0, 2))

    def fwd(coords: np.ndarray) -> np.ndarray:
        x, y = tr.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, fwd)


def area_m2(geom: BaseGeometry) -> float:
    """Area in m² in a Lambert azimuthal equal-area projection centred on the geometry."""
    if geom.is_empty or geom.area == 0.0:
        return 0.0
    c = geom.centroid
    return float(_project(geom, "laea", c.x, c.y).area)


def distance_m(a: Mapping[str, Any] | BaseGeometry, b: Mapping[str, Any] | BaseGeometry) -> float:
    """Shortest distance in metres: geodesic between points, else in a local equidistant frame.

    0 when the shapes touch or overlap. The azimuthal equidistant frame is centred between
    the two shapes, which keeps the error far below a metre at the few-kilometre scale
    routing works at.
    """
    ga, gb = as_geometry(a), as_geometry(b)
    if isinstance(ga, Point) and isinstance(gb, Point):
        return float(_WGS84_GEOD.inv(ga.x, ga.y, gb.x, gb.y)[2])
    if ga.intersects(gb):
        return 0.0
    pa, pb = nearest_points(ga, gb)
    lon0, lat0 = (pa.x + pb.x) / 2, (pa.y + pb.y) / 2
    return float(_project(ga, "aeqd", lon0, lat0).distance(_project(gb, "aeqd", lon0, lat0)))
