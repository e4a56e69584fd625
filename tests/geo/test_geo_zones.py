"""Zones, spatial index, projections, geohash and site keys on the shipped demo set."""

from __future__ import annotations

import pytest
import shapely
from pyproj import Geod

from geo.zones import (
    ZONE_KINDS,
    Zone,
    ZoneIndex,
    area_m2,
    distance_m,
    geohash,
    geohash_bounds,
    grid_cell,
)

GEOD = Geod(ellps="WGS84")
DONGSI = {"type": "Point", "coordinates": [116.417, 39.929]}
COAL_PLANT = {"type": "Point", "coordinates": [119.910, 32.518]}
# Landsat Taizhou pair footprint (UTM 51N bounds reprojected), samples/satellite/taizhou
TAIZHOU_SCENE = shapely.box(119.8410, 32.4341, 119.9723, 32.5453)


def pt(lon: float, lat: float) -> dict:
    return {"type": "Point", "coordinates": [lon, lat]}


@pytest.fixture(scope="module")
def index() -> ZoneIndex:
    return ZoneIndex.demo()


def test_demo_set_is_valid_and_covers_every_kind(index: ZoneIndex) -> None:
    assert {z.kind for z in index.zones} == set(ZONE_KINDS)
    for z in index.zones:
        assert z.geometry.is_valid and z.area_m2 > 0
        assert z.county and z.owner_dept.startswith(z.county + "-"), z.id


def test_dongsi_station_is_in_dongcheng(index: ZoneIndex) -> None:
    j = index.jurisdiction(DONGSI)
    assert j is not None and j.id == "cn-110101" and j.county == "110101"


def test_most_local_jurisdiction_wins_over_city(index: ZoneIndex) -> None:
    hits = {h.zone.id for h in index.hits(COAL_PLANT, kinds=["jurisdiction"])}
    assert hits == {"cn-321200", "cn-321202"}
    assert index.jurisdiction(COAL_PLANT).id == "cn-321202"


def test_taizhou_scene_overlaps_farmland_and_plants(index: ZoneIndex) -> None:
    ids = {h.zone.id for h in index.hits(TAIZHOU_SCENE)}
    assert {"pf-321202-0001", "ent-321202-0001", "ent-321202-0002"} <= ids
    farmland = next(h for h in index.hits(TAIZHOU_SCENE) if h.zone.id == "pf-321202-0001")
    assert farmland.overlap_m2 == pytest.approx(farmland.zone.area_m2, rel=1e-6)


def test_polygon_overlap_is_partial_at_parcel_edge(index: ZoneIndex) -> None:
    # a 1 km-ish patch straddling the west edge of the Hailing farmland parcel
    patch = shapely.box(119.852, 32.450, 119.864, 32.458)
    hit = next(h for h in index.hits(patch) if h.zone.id == "pf-321202-0001")
    assert 0 < hit.overlap_m2 < area_m2(patch)


def test_area_matches_geodesic_area() -> None:
    box = shapely.box(119.0, 32.0, 120.0, 33.0)
    geodesic, _ = GEOD.geometry_area_perimeter(box)
    assert area_m2(box) == pytest.approx(abs(geodesic), rel=1e-4)
    assert area_m2(shapely.Point(1, 1)) == 0.0


def test_distance_in_metres() -> None:
    assert distance_m(pt(116.417, 39.929), pt(116.417, 39.939)) == pytest.approx(
        GEOD.inv(116.417, 39.929, 116.417, 39.939)[2])
    box = shapely.box(119.90, 32.50, 119.91, 32.51)
    expected = GEOD.inv(119.91, 32.505, 119.92, 32.505)[2]  # about 940 m due east
    assert distance_m(box, pt(119.92, 32.505)) == pytest.approx(expected, abs=1.0)
    assert distance_m(box, pt(119.905, 32.505)) == 0.0


def test_nearby_finds_zones_within_radius(index: ZoneIndex) -> None:
    # 200 m north of the coal plant's northern fence (lat 32.522)
    north = pt(119.910, 32.522 + 200 / 111_000)
    near = index.nearby(north, 500, kinds=["enterprise_site"])
    assert [z.id for z, _ in near] == ["ent-321202-0001"]
    assert 150 < near[0][1] < 250
    assert index.nearby(north, 100, kinds=["enterprise_site"]) == []


def test_geohash_known_values() -> None:
    assert geohash(-5.6, 42.6, 5) == "ezs42"
    assert geohash(10.40744, 57.64911, 11) == "u4pruydqqvj"
    lo_lon, lo_lat, hi_lon, hi_lat = geohash_bounds(geohash(116.417, 39.929))
    assert lo_lon <= 116.417 < hi_lon and lo_lat <= 39.929 < hi_lat
    # precision 6 is the ~1 km grid the site key uses
    width = GEOD.inv(lo_lon, lo_lat, hi_lon, lo_lat)[2]
    height = GEOD.inv(lo_lon, lo_lat, lo_lon, hi_lat)[2]
    assert 500 < width < 1500 and 500 < height < 1500
    with pytest.raises(ValueError):
        geohash(200, 0)


@pytest.mark.parametrize(("location", "expected"), [
    (COAL_PLANT, "ent-321202-0001"),             # also in the fuel-ban zone: enterprise first
    (pt(119.986, 32.485), "ws-321204-0001"),     # water source inside farmland
    (pt(120.075, 32.592), "fo-321204-0001"),     # forest inside the red line
    (pt(119.870, 32.455), "pf-321202-0001"),
])
def test_site_key_is_most_specific_zone(index: ZoneIndex, location: dict, expected: str) -> None:
    assert index.site_key(location) == expected


def test_site_key_falls_back_to_grid_cell(index: ZoneIndex) -> None:
    assert index.site_key(DONGSI) == grid_cell(DONGSI) == "gh:" + geohash(116.417, 39.929)
    # only in the (large) red line and the fuel-ban zone: too coarse to be a site
    assert index.site_key(pt(120.105, 32.590)).startswith("gh:")
    assert index.site_key(pt(119.890, 32.500)).startswith("gh:")
    assert index.site_key(pt(119.890, 32.500), max_area_m2=None) == "ra-321202-0001"


def test_bad_zones_are_refused_or_repaired() -> None:
    feature = {"type": "Feature", "properties": {"id": "x", "kind": "car_park"},
               "geometry": {"type": "Point", "coordinates": [0, 0]}}
    with pytest.raises(ValueError, match="unknown kind"):
        Zone.from_feature(feature)
    bowtie = {"type": "Feature", "properties": {"id": "b", "kind": "forest"},
              "geometry": {"type": "Polygon",
                           "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}}
    assert Zone.from_feature(bowtie).geometry.is_valid
    fc = {"type": "FeatureCollection", "features": [bowtie, bowtie]}
    with pytest.raises(ValueError, match="duplicate"):
        ZoneIndex.from_geojson(fc)


def test_feature_round_trip(index: ZoneIndex) -> None:
    zone = index.get("ent-321202-0001")
    again = Zone.from_feature(zone.to_feature())
    assert again == zone and again.properties == zone.properties
    assert again.geometry.equals(zone.geometry)
