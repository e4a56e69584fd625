"""Clue titles and severity (``api/clue_titles.py``): the messages in both languages, the
thresholds, and the counts by severity that the database groups (``GET /clues/counts``)
agreeing with the severity of each clue listed."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import psycopg
from fastapi.testclient import TestClient

from api.clue_titles import (
    HIGH_AREA_M2,
    HIGH_RATIO,
    LANGS,
    MEDIUM_AREA_M2,
    describe,
    messages,
    render,
    severity,
    titled,
)


def test_both_languages_have_the_same_messages_and_placeholders() -> None:
    zh, en = messages("zh-CN"), messages("en")
    assert zh.keys() == en.keys()
    for key in zh:
        assert set(re.findall(r"\{(\w+)\}", zh[key])) == set(re.findall(r"\{(\w+)\}", en[key])), key
    # every kind that has a title has a label too
    for key in zh:
        if key.startswith("title.") and key != "title.other":
            assert f"kind.{key.removeprefix('title.')}" in zh, key


def test_titles_in_both_languages() -> None:
    clue = {"modality": "env", "kind": "exceedance", "subject": "BJ-DONGSI",
            "rule": "GB3095-2012/II/a34004/24h", "resource_name": "东四",
            "metrics": {"max_mean": 182.0, "limit": 75, "unit": "ug/m3", "averaging": "24h"}}
    assert titled(clue)["title"] == "PM2.5 24 h均值 182 µg/m³ > 75：东四 BJ-DONGSI"
    assert titled(clue, "en")["title"] == "PM2.5 24 h mean 182 µg/m³ > 75 at 东四 BJ-DONGSI"
    covered = {"modality": "video", "kind": "occlusion", "subject": "CAM-9",
               "resource_name": "热电厂烟囱", "rule": "tamper/occlusion", "metrics": {}}
    assert titled(covered)["title"] == "摄像头被遮挡：热电厂烟囱 CAM-9"
    assert titled(covered, "en")["title"] == "Camera covered: 热电厂烟囱 CAM-9"
    # a land change outside any registry zone is named by its jurisdiction
    land = {"modality": "satellite", "kind": "water_loss", "subject": "tile", "zones": [],
            "jurisdiction": "cn-321202", "jurisdiction_name": "海陵区",
            "metrics": {"area_m2": 62_920.0}}
    assert titled(land)["title"] == "水体减少（6.29 公顷）：海陵区"
    assert titled(land)["severity"] == "high"
    person = {"modality": "video", "kind": "person", "subject": "CAM-9",
              "rule": "zone/gate/person", "zones": [{"kind": "forest", "name": "林地"}]}
    assert titled(person, "en")["title"] == "Person in gate: CAM-9"
    odd = describe({"kind": "brand_new_kind", "subject": "X", "metrics": {"limit": "n/a"}})
    assert odd["title_key"] == "title.other" and odd["severity"] == "low"
    assert render(odd["title_key"], odd["title_args"], "en") == "brand_new_kind: X"
    assert set(LANGS) == {"zh-CN", "en"}


def test_severity_thresholds() -> None:
    assert severity("exceedance", HIGH_RATIO) == "high"
    assert severity("exceedance", HIGH_RATIO - 0.01) == "medium"
    assert severity("exceedance", None) == "medium"
    assert severity("occlusion") == "high" and severity("replay") == "high"
    assert severity("offline") == "medium" and severity("motion") == "low"
    assert severity("vegetation_to_built", area_m2=HIGH_AREA_M2) == "high"
    assert severity("vegetation_to_built", area_m2=MEDIUM_AREA_M2 * 2) == "medium"
    assert severity("water_loss", area_m2=MEDIUM_AREA_M2 / 2) == "low"
    # the counts group on ratio steps of 0.1 and log10(area) steps of 0.1: the thresholds
    # must lie on that grid, or a group would straddle one
    assert round(HIGH_RATIO * 10, 9) == int(HIGH_RATIO * 10)
    for area in (HIGH_AREA_M2, MEDIUM_AREA_M2):
        assert float(f"{area:e}".split("e")[0]) == 1.0


def test_counts_by_severity_agree_with_each_clue(api: TestClient, fresh_db: str,
                                                 make_user: Callable[..., dict]) -> None:
    cases = [("exceedance", {"max_mean": 112.5, "limit": 75}),  # ratio 1.5: high
             ("exceedance", {"max_mean": 111.0, "limit": 75}),  # 1.48: medium
             ("exceedance", {"max_mean": "bad", "limit": 75}),
             ("vegetation_loss", {"area_m2": 12_000.0}), ("vegetation_loss", {"area_m2": 9_990}),
             ("water_gain", {"area_m2": 300}), ("occlusion", {}), ("motion", {}),
             ("offline", {"gap_s": 7200})]
    with psycopg.connect(fresh_db) as conn:
        for i, (kind, metrics) in enumerate(cases):
            conn.execute(
                "INSERT INTO clues (clue_id, modality, kind, rule, subject, state, start, time,"
                " confidence, metrics) VALUES (%s, 'env', %s, 'r', 'S1', 'open', now(), now(),"
                " 0.5, %s::jsonb)", (f"c{i}", kind, json.dumps(metrics)))
    admin = make_user("root", "center", "admin")
    items = api.get("/clues", headers=admin).json()["items"]
    expected: dict[str, int] = {"high": 0, "medium": 0, "low": 0}
    for item in items:
        expected[item["severity"]] += 1
    counts = api.get("/clues/counts", headers=admin).json()
    assert counts["by_severity"] == expected == {"high": 3, "medium": 4, "low": 2}
    assert counts["total"] == len(cases) and counts["by_kind"]["exceedance"] == 3
    assert api.get("/clues/counts", params={"kind": "motion"},
                   headers=admin).json()["total"] == 1


def test_fire_titles_name_the_zone_or_the_place() -> None:
    clue = {"modality": "satellite", "kind": "straw_burning", "subject": "firms@36.4071,120.4152",
            "rule": "firms/straw_burning", "metrics": {"detections": 4, "max_frp": 22.44},
            "zones": [{"id": "cn-1", "kind": "jurisdiction", "name": "历下区"},
                      {"id": "pf-1", "kind": "protected_farmland", "name": "基本农田 0001"}]}
    assert titled(clue)["title"] == "秸秆焚烧（4 个火点，最大辐射功率 22.44 MW）：基本农田 0001"
    assert titled(clue)["severity"] == "medium"
    bare = {**clue, "kind": "open_fire", "zones": []}
    assert titled(bare, "en")["title"] == (
        "Open fire (4 hotspots, max FRP 22.44 MW) in firms@36.4071,120.4152")


def test_neighbour_clues_have_titles_in_chinese_first_and_english() -> None:
    from api.clue_titles import describe, render

    clue = {"kind": "interference", "subject": "BJ-DONGSI", "rule": "interference/a34004",
            "metrics": {"value": 31.2, "limit": 180.5}}
    d = describe(clue)
    assert d["title_key"] == "title.interference" and d["severity"] == "high"
    zh, en = render(d["title_key"], d["title_args"]), render(d["title_key"], d["title_args"],
                                                             "en")
    assert "31.2" in zh and "180.5" in zh and "周边站点" in zh
    assert "neighbours" in en and "BJ-DONGSI" in en
    local = describe(dict(clue, kind="local_source", rule="local_source/a34002"))
    assert local["title_key"] == "title.local_source" and local["severity"] == "medium"
