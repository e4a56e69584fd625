"""The department desk (``/ui/desk``) in Debian's Chromium: two departments at their desks.

The water-resources bureau finds Dongsi in the resource directory and asks for access; the
request appears on the owner's desk (the ecology-environment bureau), which approves it; the
requester's directory then shows the grant, and the owner revokes it. Both desks show the
department's work statistics with a chart; the owner's desk its audit log. Any console
error fails the test (``open_page``).
"""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.web.conftest import OWNER, token_for

REQUESTER = "110101-water-resources"


def test_request_approved_on_the_owners_desk(server: str, fresh_db: str, open_page) -> None:  # type: ignore[no-untyped-def]
    asker = token_for(fresh_db, "wang.fang", REQUESTER, "department_user")
    owner = token_for(fresh_db, "zhao.min", OWNER, "department_user")

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
    assert "核查东四站 PM2.5 超标" in desk.locator("#mine").inner_text()

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
    desk.wait_for_function("document.querySelector('#mine').textContent.includes('已批准')",
                           timeout=15_000)
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
    assert "Readings received" in own.locator("#figures").inner_text()
    own.screenshot(path=str(own.shots / "desk-owner-en-1600x1000.png"))
