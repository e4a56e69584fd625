"""The monitoring-center page (``/ui/``) in Debian's Chromium, driven by Playwright.

A real uvicorn server on a fresh database (holding the demo registry) serves the pages and
the API. Checked as an operator would: clues have human titles and severities, counts by
kind and status, a clue written to the database shows in the list and on the Leaflet map
within 2 s without a reload, the evidence viewer shows a clue's media, an env clue has the
chart of its station's readings with the limit, station and camera health come with counts,
and the page switches from Chinese (the default) to English. Any console error fails the
test (``open_page``). A missing ``chromium`` fails the test (never a skip).
"""

from __future__ import annotations

import time

import httpx
import psycopg
from playwright.sync_api import expect

from tests.web.conftest import OWNER, add_evidence, insert_clue, png, token_for

ENV_RULE = "GB3095-2012/II/a34004/24h"
# ids as the detectors make them: (modality, subject, rule, start), rules with "/"
ENV_ID = f"env:BJ-DONGSI:{ENV_RULE}:20261204T000000+0800"
CAM_ID = "video:DEMO-CAM-1:tamper/occlusion:20261205T080000+0800"
ENV_METRICS = {"max_mean": 182.0, "window_mean": 182.0, "limit": 75, "unit": "ug/m3",
               "averaging": "24h", "standard": "GB3095-2012/II"}
DONGSI = {"type": "Point", "coordinates": [116.417, 39.929]}
CAMERA = {"type": "Point", "coordinates": [116.4175, 39.9295]}


def seed(url: str) -> None:
    """An exceedance at Dongsi with its readings, a covered camera with evidence, a land
    change polygon, and camera health."""
    insert_clue(url, ENV_ID, modality="env", kind="exceedance",
                subject="BJ-DONGSI", rule=ENV_RULE, location=DONGSI, metrics=ENV_METRICS,
                department=OWNER, start="now() - interval '26 hours'")
    insert_clue(url, CAM_ID, modality="video", kind="occlusion",
                subject="DEMO-CAM-1", rule="tamper/occlusion", location=CAMERA,
                metrics={"flat_fraction": 0.97}, department=OWNER,
                start="'2026-01-15T08:30:00Z'")
    insert_clue(url, "satellite:tile-1:veg", modality="satellite", kind="vegetation_to_built",
                subject="tile-1", rule="change/vegetation_to_built", metrics={
                    "area_m2": 25_000.0, "collection": "landsat-taizhou"},
                location={"type": "Polygon", "coordinates": [[
                    [116.40, 39.90], [116.41, 39.90], [116.41, 39.91], [116.40, 39.91],
                    [116.40, 39.90]]]},
                zones=[{"id": "cn-110101", "kind": "jurisdiction", "name": "Dongcheng"},
                       {"id": "pf-1", "kind": "protected_farmland", "name": "东城农田 0001"}])
    add_evidence(url, "ev1", CAM_ID, "camera:DEMO-CAM-1", 1,
                 "image/png", "frame.png", png(64, 48, (200, 40, 40)))
    add_evidence(url, "ev2", CAM_ID, "camera:DEMO-CAM-1", 2,
                 "video/mp4", "clip.mp4", b"not really mp4")  # only the <video> is checked
    for seq, (name, rgb) in enumerate((("before.png", (40, 140, 40)),
                                       ("after.png", (150, 150, 150))), start=1):
        add_evidence(url, f"sat{seq}", "satellite:tile-1:veg", "tile:tile-1", seq,
                     "image/png", name, png(32, 32, rgb))
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO camera_health (time, camera, online, fps) VALUES"
                     " (now(), 'DEMO-CAM-1', true, 2.0)")
        conn.execute(
            "INSERT INTO readings (time, station, code, period, value, flag, source)"
            " SELECT now() - make_interval(hours => h), 'BJ-DONGSI', 'a34004', 'hour',"
            " 120 + 80 * sin(h / 5.0), 'N', 'test' FROM generate_series(0, 40) AS h")


def test_pages_served_and_config(server: str, fresh_db: str) -> None:
    token = token_for(fresh_db, "op", "center", "center_operator")
    for path in ("/ui/", "/ui/inspector", "/ui/desk"):
        page = httpx.get(f"{server}{path}", timeout=5)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"], path
        assert "common.js" in page.text
    for name, kind in (("app.js", "javascript"), ("common.css", "css"),
                       ("i18n/zh-CN.json", "json"), ("vendor/leaflet/leaflet.js", "javascript"),
                       ("vendor/leaflet/images/layers.png", "image/png")):
        resp = httpx.get(f"{server}/ui/{name}", timeout=5)
        assert resp.status_code == 200 and kind in resp.headers["content-type"], name
    for bad in ("..%2Fauth.py", "missing.js", "vendor/../../api/auth.py", ".hidden.js",
                "vendor/leaflet/LICENSE"):
        assert httpx.get(f"{server}/ui/{bad}", timeout=5).status_code == 404, bad
    assert httpx.get(f"{server}/ui/config", timeout=5).json()["map_tile_url"] is None

    # titles and severity come with every clue, in the language asked for
    insert_clue(fresh_db, ENV_ID, modality="env", kind="exceedance",
                subject="BJ-DONGSI", rule=ENV_RULE, location=DONGSI, metrics=ENV_METRICS)
    auth = {"Authorization": f"Bearer {token}"}
    item = httpx.get(f"{server}/clues", headers=auth, timeout=5).json()["items"][0]
    assert item["severity"] == "high"  # 182 / 75 >= 1.5
    assert item["title"] == "PM2.5 24 h均值 182 µg/m³ > 75：Dongsi 东四 BJ-DONGSI"
    en = httpx.get(f"{server}/clues/{ENV_ID}", params={"lang": "en"}, headers=auth,
                   timeout=5).json()
    assert en["title"] == "PM2.5 24 h mean 182 µg/m³ > 75 at Dongsi 东四 BJ-DONGSI"
    counts = httpx.get(f"{server}/clues/counts", headers=auth, timeout=5).json()
    assert counts["total"] == 1 and counts["by_severity"]["high"] == 1
    assert counts["by_kind"] == {"exceedance": 1} and counts["by_status"] == {"open": 1}

    # access_token works for the stream only (EventSource cannot send headers)
    assert httpx.get(f"{server}/clues", params={"access_token": token},
                     timeout=5).status_code == 401
    with httpx.stream("GET", f"{server}/clues/stream", params={"access_token": token},
                      timeout=5) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")


def test_monitoring_center(server: str, fresh_db: str, open_page) -> None:  # type: ignore[no-untyped-def]
    seed(fresh_db)
    token = token_for(fresh_db, "boss", "center", "admin")  # admins see evidence too
    page = open_page(f"{server}/ui/?token={token}", locale="zh-CN", timezone_id="Asia/Shanghai")
    page.wait_for_function("document.body.dataset.ready === '1'"
                           " && document.getElementById('conn').classList.contains('on')",
                           timeout=15_000)
    assert page.evaluate("localStorage.getItem('offsite.token')") == token
    assert "token=" not in page.url
    assert page.locator("html").get_attribute("lang") == "zh-CN"

    items = page.locator("#clue-list li")
    assert items.count() == 3
    first = page.locator(f'#clue-list li[data-clue-id="{ENV_ID}"]')
    assert first.locator(".title").inner_text() == (
        "PM2.5 24 h均值 182 µg/m³ > 75：Dongsi 东四 BJ-DONGSI")
    assert first.locator(".sev").inner_text() == "高"
    assert "Dongcheng District ecology-environment bureau" in first.inner_text()
    counts = page.locator("#counts").inner_text()
    assert "超标 1" in counts and "新发 3" in counts and "高 3" in counts
    # the map: zones of the registry as the base (no tile server set), clues as markers
    assert page.locator("#map path.leaflet-interactive").count() >= 10
    assert not page.locator("#base-note").is_hidden()
    page.wait_for_function("window.offsiteMapClues().length === 3", timeout=5_000)

    # a clue written to the database shows in the list and on the map within 2 s
    page.evaluate("window.__marker = 'same page'")
    t0 = time.monotonic()
    insert_clue(fresh_db, "video:DEMO-CAM-1:person", modality="video", kind="person",
                subject="DEMO-CAM-1", rule="zone/room/person",
                location={"type": "Point", "coordinates": [116.42, 39.935]})
    page.wait_for_function(
        "document.querySelector('#clue-list li[data-clue-id=\"video:DEMO-CAM-1:person\"]')"
        " && window.offsiteMapClues().includes('video:DEMO-CAM-1:person')", timeout=2_000)
    assert time.monotonic() - t0 < 2.5
    assert page.evaluate("window.__marker") == "same page"  # no reload
    expect(page.locator("#clue-count")).to_have_text("显示 4 / 4 条")  # the counts follow
    assert items.first.get_attribute("data-clue-id") == "video:DEMO-CAM-1:person"
    assert items.first.locator(".title").inner_text() == (
        "room 有人员：Demo camera (sample video) DEMO-CAM-1")

    # health with counts by state
    page.wait_for_function("document.querySelectorAll('#health tr').length >= 3")
    health = page.locator("#health").inner_text()
    assert "在线：1" in health and "从未上报：1" in health or "迟报" in health, health

    # the env clue: the chart of its station's readings with the limit line
    first.click()
    page.wait_for_selector("#chart .uplot canvas", timeout=5_000)
    legend = page.locator("#chart .u-legend").inner_text()
    assert "PM2.5" in legend and "75" in legend
    assert "邻近站点" in page.locator("#chart-note").inner_text()
    page.screenshot(path=str(page.shots / "center-zh-1600x1000.png"))

    # the evidence viewer shows the covered camera's frame and clip
    page.locator(f'#clue-list li[data-clue-id="{CAM_ID}"]').click()
    page.wait_for_function(
        "(() => { const i = document.querySelector('#evidence img');"
        " return i && i.complete && i.naturalWidth === 64 && i.src.startsWith('blob:') })()",
        timeout=5_000)
    assert page.locator("#evidence video").get_attribute("src").startswith("blob:")
    assert page.locator("#detail h3").inner_text() == (
        "摄像头被遮挡：Demo camera (sample video) DEMO-CAM-1")
    assert page.locator("#chart-box").is_hidden()
    # times in the viewer's time zone (the browser's: Asia/Shanghai here)
    assert "2026/01/15 16:30:00" in page.locator("#detail").inner_text()

    # filter by modality: the list pages through the server with the filter
    page.select_option("#f-modality", "satellite")
    page.wait_for_function("[...document.querySelectorAll('#clue-list li')].map(li =>"
                           " li.dataset.clueId).join() === 'satellite:tile-1:veg'")
    assert "东城农田 0001" in items.first.inner_text()
    # a land change shows its before and after images side by side
    items.first.click()
    page.wait_for_function("document.querySelectorAll('#evidence .ev-grid.pair img').length"
                           " === 2 && [...document.querySelectorAll('#evidence img')]"
                           ".every(i => i.complete && i.naturalWidth === 32)")
    boxes = [page.locator("#evidence img").nth(i).bounding_box() for i in (0, 1)]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["x"] < boxes[1]["x"]
    page.select_option("#f-modality", "")
    page.wait_for_function("document.querySelectorAll('#clue-list li').length === 4")

    # English is one switch away; times stay in the viewer's time zone
    page.click("#lang-switch")
    page.wait_for_function("document.documentElement.lang === 'en'")
    expect(page.locator("#clue-list li .title").first).to_have_text(
        "Person in room: Demo camera (sample video) DEMO-CAM-1")
    expect(page.locator("#detail h3")).to_have_text(
        "Vegetation built over (2.5 ha) in 东城农田 0001")
    assert "Clues" in page.locator("#clues-panel h2").inner_text()
    page.screenshot(path=str(page.shots / "center-en-1600x1000.png"))


def test_page_asks_for_token(server: str, fresh_db: str, open_page) -> None:  # type: ignore[no-untyped-def]
    page = open_page(f"{server}/ui/")
    page.wait_for_selector("#login:not([hidden])")
    assert page.locator("#app").is_hidden()
    assert page.locator("#login button").inner_text() == "登录"
    token = token_for(fresh_db, "op", "center", "center_operator")
    page.fill("#token-input", token)
    page.click("#login button")
    page.wait_for_function("document.body.dataset.ready === '1'")
    page.click("#logout")
    page.wait_for_selector("#login:not([hidden])")
    assert page.evaluate("localStorage.getItem('offsite.token')") is None

    open_page.allow("401")  # the rejected token's answer, logged by the browser
    page.goto(f"{server}/ui/?token=not-a-token")
    page.wait_for_function("document.getElementById('login-error').textContent === '令牌无效'")
    assert page.locator("#app").is_hidden()
