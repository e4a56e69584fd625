"""Change polygons from per-block kind codes: polygonise, merge, reproject, measure, filter.

Why: blocks are polygonised one at a time (memory stays flat), in *pixel* coordinates of the
whole grid, so two halves of a field cut by a window edge share exactly the same integer
vertices and ``unary_union`` merges them without float slivers. Only after merging are
polygons turned into map coordinates, then WGS84 (RFC 7946), measured in an equal-area
projection and checked against the minimum mapping unit and the zones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from rasterio import features
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

from detectors.satellite import KINDS, NODATA_CODE, ChangePolygon, DetectParams

EQUAL_AREA = "EPSG:6933"  # WGS 84 / NSIDC EASE-Grid 2.0 Global: equal-area everywhere


@dataclass
class _Part:
    geom: BaseGeometry  # full-grid pixel coordinates
    counts: np.ndarray  # pixels per kind code 1..len(KINDS)
    score_sum: float


class PartCollector:
    """Collects polygon parts block by block and merges those cut by block edges."""

    def __init__(self, grid_shape: tuple[int, int]) -> None:
        self.height, self.width = grid_shape
        self.done: list[_Part] = []
        self.pending: list[_Part] = []

    def add_block(self, codes: np.ndarray, score: np.ndarray, row_off: int,
                  col_off: int) -> None:
        """Polygonise the changed pixels of one block placed at (row_off, col_off)."""
        self.add_parts(block_parts(codes, score, row_off, col_off), codes.shape, row_off,
                       col_off)

    def add_parts(self, parts: list[_Part], shape_: tuple[int, int], row_off: int,
                  col_off: int) -> None:
        """Add parts made by :func:`block_parts` (possibly on a worker thread)."""
        h, w = shape_
        inner = (col_off if col_off > 0 else None,
                 col_off + w if col_off + w < self.width else None,
                 row_off if row_off > 0 else None,
                 row_off + h if row_off + h < self.height else None)
        for part in parts:
            minx, miny, maxx, maxy = part.geom.bounds
            cut = (minx == inner[0] or maxx == inner[1] or miny == inner[2]
                   or maxy == inner[3])
            (self.pending if cut else self.done).append(part)

    def merged(self) -> list[_Part]:
        """All parts, with those cut by block edges merged into whole polygons."""
        if not self.pending:
            return list(self.done)
        geoms = [p.geom for p in self.pending]
        tree = shapely.STRtree(geoms)
        union = shapely.unary_union(geoms)
        out = list(self.done)
        for poly in getattr(union, "geoms", [union]):
            idx = tree.query(poly, predicate="covers")
            counts = np.sum([self.pending[i].counts for i in idx], axis=0)
            score = float(sum(self.pending[i].score_sum for i in idx))
            out.append(_Part(poly, counts, score))
        return out

    def finish(self, transform: Any, crs: Any, threshold: float, params: DetectParams,
               zones: Mapping[str, Any] | None = None) -> list[ChangePolygon]:
        """Map coordinates, WGS84, area, MMU, zone rules and confidence for every polygon."""
        return finish_parts(self.merged(), transform, crs, threshold, params, zones)


def block_parts(codes: np.ndarray, score: np.ndarray, row_off: int,
                col_off: int) -> list[_Part]:
    """Polygons of the changed pixels of one block with per-kind pixel counts and score.

    Only the bounding box of the changed pixels is polygonised. Each 4-connected component
    is labelled first (OpenCV), so a polygon's label *is* its pixel set: counts and score
    sums are one ``bincount`` over the changed pixels, with no rasterising back.
    """
    changed = (codes > 0) & (codes != NODATA_CODE)
    rows = np.flatnonzero(changed.any(axis=1))
    if rows.size == 0:
        return []
    cols = np.flatnonzero(changed.any(axis=0))
    box = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    changed, codes, score = changed[box], codes[box], score[box]
    n, labels = cv2.connectedComponents(np.ascontiguousarray(changed, np.uint8), connectivity=4,
                                        ltype=cv2.CV_32S)
    pix = Affine.translation(col_off + int(cols[0]), row_off + int(rows[0]))
    ids = labels[changed]
    score_sum = np.bincount(ids, weights=score[changed], minlength=n)
    kinds = len(KINDS) + 1
    counts = np.bincount(ids * kinds + codes[changed], minlength=n * kinds).reshape(n, kinds)
    return [_Part(shape(g), counts[int(v), 1:], float(score_sum[int(v)]))
            for g, v in features.shapes(labels, mask=changed, transform=pix, connectivity=4)]


@dataclass
class _Zone:
    id: str
    kind: str
    geom: BaseGeometry


def load_zones(zones: Mapping[str, Any] | None) -> list[_Zone]:
    """Zones from a GeoJSON FeatureCollection (WGS84) with ``kind``, ``name``, ``id``."""
    out: list[_Zone] = []
    for i, feat in enumerate((zones or {}).get("features", [])):
        props = feat.get("properties") or {}
        zid = props.get("id", feat.get("id", props.get("name", f"zone-{i}")))
        geom = shapely.make_valid(shape(feat["geometry"]))
        out.append(_Zone(str(zid), str(props.get("kind", "")), geom))
    return out


def _to_lonlat(crs: Any) -> Transformer:
    return Transformer.from_crs(CRS.from_user_input(crs), "EPSG:4326", always_xy=True)


def _apply(tr: Transformer, geom: BaseGeometry) -> BaseGeometry:
    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])
    return shapely.transform(geom, fn)


def confidence(mean_score: float, threshold: float, purity: float) -> float:
    """0.5 at the threshold, towards 1 for strong changes; mixed kinds lower it."""
    if mean_score <= 0 or not np.isfinite(threshold):
        return 0.0
    base = 1.0 - 0.5 * min(1.0, (threshold / mean_score) ** 2)
    return float(np.clip(base * (0.75 + 0.25 * purity), 0.0, 0.99))


def finish_parts(parts: list[_Part], transform: Any, crs: Any, threshold: float,
                 params: DetectParams, zones: Mapping[str, Any] | None) -> list[ChangePolygon]:
    """Turn merged pixel-space parts into filtered, measured WGS84 change polygons."""
    if not parts:
        return []
    t = transform if isinstance(transform, Affine) else Affine(*tuple(transform)[:6])
    matrix = [t.a, t.b, t.d, t.e, t.c, t.f]
    to_ll = _to_lonlat(crs)
    to_ea = Transformer.from_crs("EPSG:4326", EQUAL_AREA, always_xy=True)
    zone_list = load_zones(zones)
    tree = shapely.STRtree([z.geom for z in zone_list]) if zone_list else None
    mmu = params.mmu_ha * 10_000.0
    out: list[ChangePolygon] = []
    for part in parts:
        npix = int(part.counts.sum())
        if npix == 0:
            continue
        # simplify(0) drops collinear vertices (staircase runs, former window edges), so the
        # result does not depend on how the scene was cut into windows.
        geom = shapely.affinity.affine_transform(shapely.simplify(part.geom, 0), matrix)
        ll = _apply(to_ll, geom)
        if not ll.is_valid:
            ll = shapely.make_valid(ll)
        area = float(_apply(to_ea, ll).area)
        if area < mmu:
            continue
        hits = [zone_list[i] for i in tree.query(ll, predicate="intersects")] if tree else []
        if zone_list and not hits and not params.outside_zones:
            continue
        allowed: dict[str, str] = {}  # kind -> rule label
        for z in hits:
            for k in params.zone_rules.get(z.kind, KINDS):
                allowed.setdefault(k, f"{z.kind or 'zone'}/{k}")
        if not hits:
            allowed = {k: f"default/{k}" for k in KINDS}
        order = np.argsort(-part.counts, kind="stable")
        kind = next((KINDS[i] for i in order
                     if part.counts[i] > 0 and KINDS[i] in allowed), None)
        if kind is None:
            continue
        mean_score = part.score_sum / npix
        relevant = [z for z in hits if kind in params.zone_rules.get(z.kind, KINDS)]
        zone = max(relevant, key=lambda z: (ll.intersection(z.geom).area, z.id)).id \
            if relevant else None
        purity = float(part.counts[KINDS.index(kind)] / npix)
        ll = orient(ll, 1.0) if ll.geom_type == "Polygon" else ll
        out.append(ChangePolygon(
            geometry=mapping(ll),
            kind=kind, area_m2=area, confidence=confidence(mean_score, threshold, purity),
            rule=allowed[kind], zones=sorted({z.id for z in hits}), pixels=npix,
            mean_score=mean_score, zone=zone,
            kind_fractions={KINDS[i]: round(float(c) / npix, 3)
                            for i, c in enumerate(part.counts) if c}))
    out.sort(key=lambda c: -c.area_m2)
    return out


def to_feature_collection(polys: list[ChangePolygon],
                          extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """RFC 7946 FeatureCollection; ``extra`` (e.g. before/after) goes into every feature."""
    feats = []
    for i, p in enumerate(polys):
        props = p.properties()
        props.update(extra or {})
        feats.append({"type": "Feature", "id": i + 1, "geometry": p.geometry,
                      "properties": props})
    return {"type": "FeatureCollection", "features": feats}
