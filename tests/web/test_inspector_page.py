"""The inspector page (``/ui/inspector``) on a 375x812 phone screen in Debian's Chromium.

As an inspector would: a task routed to them appears without a reload, they open it (the
clue's title and evidence), accept it, and report with a result, a note and a photo from the
camera input while the phone has no network; the report waits on the phone and reaches the
API when the network returns, with the photo as evidence and the phone's position in the
note. Any console error fails the test (``open_page``).
"""

from __future__ import annotations

import httpx
import psycopg

from tests.web.conftest import OWNER, add_evidence, insert_clue, png, token_for

CAM_ID = "video:DEMO-CAM-1:tamper/occlusion:20261205T080000+0800"


def test_inspector_reports_with_a_photo(server: str, fresh_db: str, open_page) -> None:  # type: ignore[no-untyped-def]
    token = token_for(fresh_db, "li.wei", OWNER, "inspector")
    page = open_page(f"{server}/ui/inspector?token={token}", width=375, height=812,
                     is_mobile=True, has_touch=True, locale="zh-CN",
                     timezone_id="Asia/Shanghai", permissions=["geolocation"],
                     geolocation={"latitude": 39.9291, "longitude": 116.4172, "accuracy": 12})
    page.wait_for_function("document.body.dataset.ready === '1'", timeout=15_000)
    assert not page.locator("#tasks-empty").is_hidden()

    # a clue routed to the department becomes a task of its inspector: it appears by itself
    insert_clue(fresh_db, CAM_ID, modality="video", kind="occlusion",
                subject="DEMO-CAM-1", rule="tamper/occlusion",
                location={"type": "Point", "coordinates": [116.4175, 39.9295]},
                department=OWNER)
    add_evidence(fresh_db, "ev1", CAM_ID, "camera:DEMO-CAM-1", 1,
                 "image/png", "frame.png", png(64, 48, (90, 90, 90)))
    item = page.locator("#tasks li").first
    item.wait_for(timeout=10_000)
    assert item.locator(".title").inner_text() == (
        "摄像头被遮挡：Demo camera (sample video) DEMO-CAM-1")
    assert "已派发" in item.inner_text()
    task_id = int(item.get_attribute("data-task-id"))
    page.screenshot(path=str(page.shots / "inspector-inbox-375x812.png"))

    item.click()
    page.wait_for_selector("#task-evidence img")
    page.click("#accept")
    page.wait_for_selector("#report:not([hidden])")
    page.wait_for_function("document.getElementById('position').textContent.includes('39.92910')")

    # no network: the report is kept on the phone
    page.context.set_offline(True)
    page.check("input[name=result][value=confirmed]")
    page.fill("#note", "镜头被塑料袋遮住，已取下")
    page.set_input_files("#photos", files=[{"name": "site.png", "mimeType": "image/png",
                                            "buffer": png(40, 30, (30, 160, 60))}])
    page.wait_for_selector("#previews img")
    page.screenshot(path=str(page.shots / "inspector-report-375x812.png"), full_page=True)
    page.click("#send")
    page.wait_for_function("document.getElementById('report-msg').className === 'queued'")
    assert "1" in page.locator("#queue").inner_text()
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{server}/tasks/{task_id}", headers=auth,
                     timeout=5).json()["state"] == "accepted"

    # the network returns: the report is sent, with the photo
    page.context.set_offline(False)
    page.wait_for_selector("#task-closed:not([hidden])", timeout=10_000)
    assert page.locator("#queue").is_hidden()
    task = httpx.get(f"{server}/tasks/{task_id}", headers=auth, timeout=5).json()
    assert task["state"] == "closed" and task["result"] == "confirmed"
    # (a form field sends its line break as CRLF)
    assert task["note"].replace("\r\n", "\n") == (
        "镜头被塑料袋遮住，已取下\n位置：39.92910, 116.41720（±12 米）")
    assert len(task["evidence_ids"]) == 1
    with psycopg.connect(fresh_db) as conn:
        media, content = conn.execute("SELECT media_type, content FROM evidence WHERE id = %s",
                                      (task["evidence_ids"][0],)).fetchone()
    assert media == "image/png" and bytes(content) == png(40, 30, (30, 160, 60))
    page.screenshot(path=str(page.shots / "inspector-closed-375x812.png"))

    wide = open_page(f"{server}/ui/inspector?token={token}&lang=en")
    wide.wait_for_function("document.body.dataset.ready === '1'")
    assert wide.locator("#tasks li .title").first.inner_text() == (
        "Camera covered: Demo camera (sample video) DEMO-CAM-1")
    wide.screenshot(path=str(wide.shots / "inspector-en-1600x1000.png"))


def test_second_inspector_sees_and_accepts_a_drawn_inspection(server: str, fresh_db: str,
                                                              open_page) -> None:  # type: ignore[no-untyped-def]
    """A random inspection drawn for the department reaches the second inspector of its pair
    on the phone: titled by its entity, with both inspectors and the date; it may accept."""
    admin = token_for(fresh_db, "root", OWNER, "admin")
    first = token_for(fresh_db, "a.first", OWNER, "inspector")
    second = token_for(fresh_db, "b.second", OWNER, "inspector")
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO entities (id, name, credit_class, owner_dept)"
                     " VALUES ('ent-1', '东四化工厂', 'D', %s)", (OWNER,))
    made = httpx.post(f"{server}/inspections/draws", timeout=10,
                      headers={"Authorization": f"Bearer {admin}"},
                      json={"department": OWNER, "from": "2027-03-01", "to": "2027-03-31",
                            "count": 1, "seed": 3})
    assert made.status_code == 201, made.text
    item = made.json()["items"][0]
    who = {"a.first": first, "b.second": second}[item["inspectors"][1]]
    page = open_page(f"{server}/ui/inspector?token={who}", width=375, height=812,
                     is_mobile=True, has_touch=True, locale="zh-CN", timezone_id="Asia/Shanghai")
    page.wait_for_function("document.body.dataset.ready === '1'", timeout=15_000)
    task = page.locator("#tasks li").first
    task.wait_for(timeout=10_000)
    assert task.locator(".title").inner_text() == "双随机抽查：东四化工厂"
    task.click()
    page.wait_for_selector("#accept:not([hidden])")
    facts = page.locator("#task-facts").inner_text()
    assert "a.first" in facts and "b.second" in facts and item["planned_date"] in facts
    page.click("#accept")
    page.wait_for_selector("#report:not([hidden])")
    page.screenshot(path=str(page.shots / "inspector-drawn-375x812.png"))
