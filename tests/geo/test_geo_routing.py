"""Routing of clues to jurisdiction and department by the shipped rule table."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
import shapely

from contract.clue import Clue
from geo.routing import Router, load_rules
from geo.zones import ZoneIndex, grid_cell


def pt(lon: float, lat: float) -> dict:
    return {"type": "Point", "coordinates": [lon, lat]}


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.demo()


def test_dongsi_exceedance_goes_to_dongcheng_ecology(router: Router) -> None:
    clue = Clue(modality="env", kind="exceedance", rule="GB3095-2012/II/a34004/24h",
                subject="dongsi", start=datetime(2016, 1, 1, tzinfo=UTC),
                time=datetime(2016, 1, 2, tzinfo=UTC), location=pt(116.417, 39.929))
    route = router.route_clue(clue)
    assert route.department == "110101-ecology-environment"
    assert route.jurisdiction.id == "cn-110101" and route.county == "110101"
    assert route.site == grid_cell(pt(116.417, 39.929))
    assert route.to_dict()["jurisdiction"]["name"] == "Dongcheng District"


def test_enterprise_clue_goes_to_owner(router: Router) -> None:
    route = router.route(pt(119.910, 32.518), modality="video", kind="occlusion")
    assert route.site == "ent-321202-0001"
    assert route.department == "321202-ecology-environment"
    assert route.assignments[0].rule.zone_kind == "enterprise_site"


def test_farmland_change_goes_to_natural_resources(router: Router) -> None:
    patch = shapely.box(119.870, 32.450, 119.875, 32.455)
    route = router.route(patch, modality="satellite", kind="change")
    assert route.department == "321202-natural-resources"
    assert route.site == "pf-321202-0001"
    assert route.zones[0].overlap_m2 > 200_000


def test_every_zone_hit_gets_a_department_primary_first(router: Router) -> None:
    route = router.route(pt(119.986, 32.485), modality="satellite", kind="change")
    assert route.departments == ["321204-water-resources", "321204-natural-resources"]
    assert [a.zone_id for a in route.assignments] == ["ws-321204-0001", "pf-321204-0001"]


def test_rule_order_env_in_forest_is_pollution(router: Router) -> None:
    assert router.route(pt(120.075, 32.592), modality="env",
                        kind="exceedance").department == "321204-ecology-environment"
    assert router.route(pt(120.075, 32.592), modality="satellite",
                        kind="change").department == "321204-forestry"


def test_outside_every_zone_and_without_location(router: Router) -> None:
    nowhere = router.route(pt(0.0, 0.0), modality="env", kind="flatline")
    assert nowhere.jurisdiction is None and nowhere.department == "ecology-environment"
    assert nowhere.site.startswith("gh:")
    unplaced = router.route(None, modality="env", kind="flatline", subject="st-9")
    assert unplaced.site == "subject:st-9" and unplaced.zones == ()


def test_rules_are_data_first_match_wins() -> None:
    rules = load_rules("clue,zone_kind,department,why\n"
                       "# comment\n"
                       "satellite/*,jurisdiction,natural-resources,land\n"
                       "*,*,ecology-environment,default\n")
    router = Router(ZoneIndex.demo(), rules)
    assert router.route(pt(116.417, 39.929), modality="satellite",
                        kind="change").department == "110101-natural-resources"
    assert router.route(pt(116.417, 39.929), modality="env",
                        kind="change").department == "110101-ecology-environment"
    with pytest.raises(ValueError, match="zone kind"):
        load_rules("clue,zone_kind,department\n*,car_park,x\n")


def test_no_rule_matching_uses_builtin_default() -> None:
    rules = load_rules("clue,zone_kind,department\nvideo/*,forest,forestry\n")
    router = Router(ZoneIndex.demo(), rules)
    route = router.route(pt(116.417, 39.929), modality="env", kind="exceedance")
    assert route.department == "110101-ecology-environment"


def test_departments_cover_every_routed_department(router: Router) -> None:
    known = router.departments()
    assert known["321204-forestry"] == "Jiangyan District forestry bureau"
    rng = np.random.default_rng(7)
    for lon, lat in zip(rng.uniform(119.8, 120.15, 300), rng.uniform(32.38, 32.62, 300),
                        strict=True):
        for modality, kind in [("env", "exceedance"), ("video", "smoke"),
                               ("satellite", "change")]:
            for dept in router.route(pt(lon, lat), modality=modality, kind=kind).departments:
                assert dept in known, dept
