"""The risk layer of the monitoring center's map, in Debian's Chromium: entities drawn at
their enterprise-site zones (or stations) in their level's colour, a popup with the score
and the largest contributions, a contribution that opens its clue in the detail panel, the
layer toggled off and on, and English one switch away. The scores come from the API's own
recomputer (no hand-written rows)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

from tests.risk_world import ES1_ZONES, OTHER_EE, add_clue, import_world
from tests.web.conftest import token_for


def seed(db: str, tmp_path: Path) -> None:
    import_world(db, tmp_path)
    now = datetime.now(UTC)
    for n in range(4):  # E-1: four open replays at its site -> 16 points: high
        add_clue(db, f"env:LX-0001:replay/{n}", kind="replay", subject="LX-0001",
                 start=now - timedelta(hours=n + 1), time=now - timedelta(hours=n),
                 state="open", zones=ES1_ZONES)
    add_clue(db, "env:HX-9001:exc", kind="exceedance", subject="HX-9001",
             start=now - timedelta(hours=3), time=now, end=now, department=OTHER_EE)  # E-2: 2


def wait_computed(server: str, token: str) -> list[dict]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        items = httpx.get(f"{server}/risk", headers={"Authorization": f"Bearer {token}"},
                          timeout=5).json()["items"]
        levels = {i["entity"]: (i["level"], i["computed_at"]) for i in items}
        if levels["E-1"][0] == "high" and levels["E-2"][1]:
            return items
        time.sleep(0.2)
    raise AssertionError(f"risk never computed: {items}")


def test_risk_layer(server: str, fresh_db: str, open_page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seed(fresh_db, tmp_path)
    # an admin: a center operator may not read the station's readings, and the clue opened
    # from the popup draws their chart (a 404 in the console otherwise)
    token = token_for(fresh_db, "op", "provincial-monitoring-center", "admin")
    items = wait_computed(server, token)  # with the demo registry's two entities (0 points)
    assert [i["entity"] for i in items][:2] == ["E-1", "E-2"]
    drawn = [i for i in items if i["location"]]  # all but E-3 (no zone, no station)
    lows = sum(i["level"] == "low" for i in items)
    page = open_page(f"{server}/ui/?token={token}", locale="zh-CN", timezone_id="Asia/Shanghai")
    page.wait_for_function("document.body.dataset.ready === '1'"
                           f" && document.querySelectorAll('#map .risk-area').length"
                           f" === {len(drawn)}", timeout=15_000)
    # E-1 at its enterprise site (a polygon), E-2 at its station (a circle); E-3 has neither
    assert page.locator("#map path.risk-area.risk-high").count() == 1
    assert page.locator("#map path.risk-area.risk-low").count() == len(drawn) - 1
    assert page.locator('#map path.risk-area[data-entity="E-1"]').count() == 1
    assert page.locator('#map path.risk-area[data-entity="E-2"]').count() == 1
    legend = page.locator("#risk-legend").inner_text()
    assert "高风险 1" in legend and f"低风险 {lows}" in legend

    page.evaluate("state.map.fitBounds(L.geoJSON("
                  "risk.items.find(i => i.entity === 'E-1').location).getBounds())")
    page.locator('#map path.risk-area[data-entity="E-1"]').click()
    popup = page.locator(".leaflet-popup .risk-popup")
    popup.wait_for(timeout=5_000)
    text = popup.inner_text()
    assert "示范化工厂" in text and "高风险" in text and "信用等级 C" in text
    assert f"{items[0]['score']:.2f}" in text
    links = popup.locator("a[data-clue-id]")
    assert links.count() == 3  # the top three of the list
    assert [links.nth(i).get_attribute("data-clue-id") for i in range(3)] == [
        c["clue_id"] for c in items[0]["contributions"]]
    page.screenshot(path=str(page.shots / "center-risk-zh-1600x1000.png"))
    first = links.first.get_attribute("data-clue-id")
    links.first.click()
    page.wait_for_function(f"document.querySelector('#detail').innerText.includes('{first}')",
                           timeout=5_000)

    # the layer toggles off and on
    page.uncheck("#risk-toggle")
    page.wait_for_function("document.querySelectorAll('#map .risk-area').length === 0")
    assert page.locator("#risk-legend").is_hidden()
    page.check("#risk-toggle")
    page.wait_for_function(f"document.querySelectorAll('#map .risk-area').length === {len(drawn)}")

    # English
    page.click("#lang-switch")
    page.wait_for_function("document.documentElement.lang === 'en'")
    assert "High risk 1" in page.locator("#risk-legend").inner_text()
    assert page.locator(".risk-toggle").inner_text().strip() == "Entity risk"
    with psycopg.connect(fresh_db) as conn:  # what the page showed is what the table holds
        assert conn.execute("SELECT level FROM entity_risk WHERE entity = 'E-1'"
                            ).fetchone() == ("high",)
