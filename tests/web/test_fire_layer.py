"""Fire events on the monitoring-center map: a layer of FIRMS hotspots, zh-CN first.

The clues are made by the fire detector itself from real FIRMS rows (MODIS Collection 6.1
NRT Hotspot / Active Fire Detections MCD14DL, NASA FIRMS,
doi:10.5067/FIRMS/MODIS/MCD14DL.NRT.0061; in ``samples/satellite/firms``), written
to the database as the clues sink writes them, and looked at in Debian's Chromium.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from detectors.fire import FireParams, FireZones, find_events
from detectors.fire_evidence import event_clue
from detectors.fire_firms import parse_firms
from tests.web.conftest import OWNER, insert_clue, token_for

FIRMS = Path(__file__).resolve().parents[2] / "samples" / "satellite" / \
    "firms" / "modis_2022-05-28_06-04_shandong_box.csv"


def fire_clues() -> list:
    """The two largest events of the real file, the first on (made-up) farmland."""
    dets = parse_firms(FIRMS.read_bytes()).detections
    events = sorted(find_events(dets, FireParams()).events,
                    key=lambda e: (-len(e.detections), e.start))[:2]
    a = events[0].detections[0]
    ring = [[a.lon + dx, a.lat + dy] for dx, dy in
            ((-0.05, -0.05), (0.05, -0.05), (0.05, 0.05), (-0.05, 0.05), (-0.05, -0.05))]
    zones = FireZones([{"type": "Feature", "properties": {"id": "pf-x", "kind":
                                                         "protected_farmland"},
                        "geometry": {"type": "Polygon", "coordinates": [ring]}}])
    events = find_events([d for e in events for d in e.detections], FireParams(), zones).events
    return [event_clue(e, source=FIRMS.name, sha256="0" * 64) for e in events]


def test_fire_events_layer(server: str, fresh_db: str, open_page) -> None:  # type: ignore[no-untyped-def]
    clues = fire_clues()
    assert {c.kind for c in clues} == {"straw_burning", "open_fire"}
    for c in clues:
        insert_clue(fresh_db, c.clue_id, modality=c.modality, kind=c.kind, subject=c.subject,
                    rule=c.rule, location=c.location, metrics=c.metrics, department=OWNER)
    points = sum(len(c.metrics["points"]) for c in clues)
    token = token_for(fresh_db, "fireop", "center", "center_operator")
    page = open_page(f"{server}/ui/?token={token}", locale="zh-CN", timezone_id="Asia/Shanghai")
    page.wait_for_function("document.body.dataset.ready === '1'", timeout=15_000)
    page.wait_for_function(f"document.querySelectorAll('path.fire-dot').length === {points}",
                           timeout=5_000)
    straw = next(c for c in clues if c.kind == "straw_burning")
    title = page.locator(f'#clue-list li[data-clue-id="{straw.clue_id}"] .title').inner_text()
    assert title.startswith(f"秸秆焚烧（{straw.metrics['detections']} 个火点"), title
    control = page.locator(".leaflet-control-layers-overlays label")
    expect(control).to_contain_text("火点事件")
    assert "秸秆焚烧" in page.locator("#legend").inner_text()
    page.screenshot(path=str(page.shots / "center-fires-zh-1600x1000.png"))
    # a click on a hotspot selects its clue
    page.locator(f'path.fire-dot[data-clue-id="{straw.clue_id}"]').first.click(force=True)
    expect(page.locator("#detail h3")).to_have_text(title)
    # the layer can be switched off, and the page speaks English one click away
    control.locator("input").uncheck()
    page.wait_for_function("document.querySelectorAll('path.fire-dot').length === 0")
    control.locator("input").check()
    page.click("#lang-switch")
    page.wait_for_function("document.documentElement.lang === 'en'")
    expect(control).to_contain_text("fire events")
    expect(page.locator(f'#clue-list li[data-clue-id="{straw.clue_id}"] .title')).to_contain_text(
        "Straw burning (")
    assert page.evaluate("document.querySelectorAll('path.fire-dot').length") == points
