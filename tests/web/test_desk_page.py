"""The department desk (``/ui/desk``) in Debian's Chromium: two departments at their desks.

The water-resources bureau finds Dongsi in the resource directory and asks for access; the
request appears on the owner's desk (the ecology-environment bureau), which approves it; the
requester's directory then shows the grant, and the owner revokes it. Both desks show the
department's work statistics with a chart; the owner's desk its audit log. Any console
error fails the test (``open_page``).
"""

from __future__ import annotations

import httpx
import psycopg
from playwright.sync_api import expect

from tests.web.conftest import OWNER, token_for

REQUESTER = "110101-water-resources"


def work(url: str) -> None:
    """Eight weeks of the owner's work: clues routed to it, their tasks closed with results."""
    with psycopg.connect(url) as conn:
        for i in range(40):
            kind = ("exceedance", "occlusion", "offline", "flatline")[i % 4]
            conn.execute(
                "INSERT INTO clues (clue_id, modality, kind, rule, subject, state, start, time,"
                " confidence, department) VALUES (%s, 'env', %s, 'r', 'BJ-DONGSI', 'closed',"
                " now() - make_interval(hours => %s), now(), 0.7, %s)",
                (f"past-{i}", kind, 30 * i + 5, OWNER))
        conn.execute(
            "UPDATE tasks SET state = 'closed', assigned_at = created_at,"
            " accepted_at = created_at + interval '20 minutes',"
            " closed_at = created_at + interval '5 hours', result = CASE WHEN id % 5 = 0"
            " THEN 'false_positive' ELSE 'confirmed' END WHERE clue_id LIKE 'past-%'")
        conn.execute("UPDATE tasks t SET created_at = c.start, assigned_at = c.start,"
                     " accepted_at = c.start + interval '20 minutes',"
                     " closed_at = c.start + interval '5 hours'"
                     " FROM clues c WHERE c.clue_id = t.clue_id AND t.clue_id LIKE 'past-%'")


def test_request_approved_on_the_owners_desk(server: str, fresh_db: str, open_page) -> None:  # type: ignore[no-untyped-def]
    asker = token_for(fresh_db, "wang.fang", REQUESTER, "department_user")
    owner = token_for(fresh_db, "zhao.min", OWNER, "department_user")
    token_for(fresh_db, "li.wei", OWNER, "inspector")  # the tasks go to an inspector
    work(fresh_db)

    desk = open_page(f"{server}/ui/desk?token={asker}", locale="zh-CN",
                     timezone_id="Asia/Shanghai")
    desk.wait_for_function("document.body.dataset.ready === '1'", timeout=15_000)
    desk.wait_for_selector("#stats-chart .uplot canvas")
    desk.fill("#q", "DONGSI")
    row = desk.locator('#resources tr[data-resource="station/BJ-DONGSI"]')
    row.wait_for()
    desk.wait_for_function("document.querySelectorAll('#resources tbody tr').length === 2")
    assert row.locator("td.access").inner_text() == "无权限"
    row.locator("button.request").click()
    form = desk.locator("tr.request-row form")
    form.locator("input[name=purpose]").fill("核查东四站 PM2.5 超标")
    form.locator("button[type=submit]").click()
    desk.wait_for_function(
        "document.querySelector('#resources tr[data-resource=\"station/BJ-DONGSI\"]"
        " td.access').textContent === '已申请'", timeout=5_000)
    expect(desk.locator("#mine")).to_contain_text("核查东四站 PM2.5 超标")

    # the owner's desk: the request is there to approve
    own = open_page(f"{server}/ui/desk?token={owner}", locale="zh-CN",
                    timezone_id="Asia/Shanghai")
    own.wait_for_function("document.body.dataset.ready === '1'", timeout=15_000)
    card = own.locator("#pending .card").first
    assert "BJ-DONGSI ← 110101-water-resources" in card.inner_text()
    assert "核查东四站 PM2.5 超标" in card.inner_text()
    own.screenshot(path=str(own.shots / "desk-owner-zh-1600x1000.png"))
    card.locator("button.approve").click()
    own.wait_for_selector("#grants .card button.revoke")
    assert "110101-water-resources" in own.locator("#grants").inner_text()
    expect(own.locator("#pending")).to_have_text("本部门资源暂无待审批申请。")

    # the API agrees, and the requester's directory shows the grant (after its refresh)
    auth = {"Authorization": f"Bearer {asker}"}
    item = httpx.get(f"{server}/resources", params={"q": "BJ-DONGSI"}, headers=auth,
                     timeout=5).json()["items"][0]
    assert item["access"] == "granted" and set(item["permissions"]) == {"live", "history"}
    desk.fill("#q", "BJ-DONGSI")
    desk.wait_for_function(
        "(document.querySelector('#resources tr[data-resource=\"station/BJ-DONGSI\"]"
        " td.access') || {}).textContent?.startsWith('已授权至')", timeout=5_000)
    expect(desk.locator("#mine")).to_contain_text("已批准", timeout=15_000)
    desk.screenshot(path=str(desk.shots / "desk-requester-zh-1600x1000.png"))

    # revoke: the grant leaves the owner's list
    own.locator("#grants .card button.revoke").click()
    own.wait_for_function("document.getElementById('grants').textContent"
                          " === '本部门资源暂无有效授权。'")
    assert httpx.get(f"{server}/resources", params={"q": "BJ-DONGSI"}, headers=auth,
                     timeout=5).json()["items"][0]["access"] == "none"

    own.click("#lang-switch")
    own.wait_for_function("document.documentElement.lang === 'en'")
    own.wait_for_function("document.getElementById('pending').textContent"
                          " === 'No pending requests for your resources.'")
    expect(own.locator("#stats-chart .u-legend")).to_contain_text("Clues raised")
    assert "Readings received" in own.locator("#figures").inner_text()
    # the figures of the last 30 days, and the per-kind false-positive rate
    assert own.locator("#fp tr").count() == 5
    assert "5 h 0 min" in own.locator("#figures").inner_text()  # median time to close
    own.screenshot(path=str(own.shots / "desk-owner-en-1600x1000.png"))
