"""The wallboard in a real browser (headless Chromium from Debian, driven by Playwright) on
the wired service and the PBX simulator over TCP: the board follows a simulated call from
its start to its end, listening in from the board rings the supervisor's seat with ChanSpy,
a supervisor moves a live call to a free seat from the 转接到 list, an alert is acted on from
the board and lands in the audit log, and a specialist is refused. Server time is a VirtualClock the test moves; the browser is
polled, never slept. Screenshots go to the `artifacts` folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.seat_page_support import (  # noqa: F401
    Site,
    artifacts_fixture,
    browser_fixture,
    drive_until,
    sign_in_browser,
    site_fixture,
)
from tests.test_board_api import free_seat

expect.set_options(timeout=30_000)
# The browser tests run on SQLite only: the board's database paths are tested on both in
# tests/test_board_api.py, and a browser test is the slowest kind.
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
VIEWPORT = {"width": 1600, "height": 900}


async def open_board(browser: Any, site: Site, username: str = "boss") -> Page:
    context = await browser.new_context(viewport=VIEWPORT, locale="zh-CN", base_url=site.url)
    page: Page = await context.new_page()
    await sign_in_browser(page, username, "/board")
    return page


async def wait_for(site: Site, page: Page, selector: str, count: int = 1) -> None:
    """Move server time until `selector` matches `count` elements in the browser."""

    async def shown() -> bool:
        return await page.locator(selector).count() == count

    await drive_until(site.clock, shown)


async def test_the_board_follows_a_call_from_start_to_end(
    browser: Any, site: Site, artifacts: Path
) -> None:
    page = await open_board(browser, site)
    await expect(page.locator("body")).to_have_attribute("data-live", "1")
    await expect(page.locator("#conn")).to_have_text("实时")
    wang = site.specialists[0]
    await site.service.dialer.sign_in(wang, ready=True)
    tile = page.locator(f'#seats .tile[data-key="{wang}"]')
    await wait_for(site, page, f'#seats .tile[data-key="{wang}"][data-state="on_call"]')
    await expect(tile.locator(".name")).to_have_text("王芳")
    row = page.locator("#calls tr")
    await wait_for(site, page, '#calls tr[data-answered="1"]')
    await expect(row).to_have_count(1)
    await expect(row.locator(".cstate")).to_have_text("通话中")
    await expect(page.locator("#links tr[data-key='pbx1'][data-connected='1']")).to_have_count(1)
    await page.screenshot(path=str(artifacts / "board-01-call-live.png"))
    # The customer hangs up after 56 s: the row goes, the seat wraps up.
    await wait_for(site, page, "#calls tr", 0)
    # The seat wraps up once the result is written (the board moves on the service's clock).
    await wait_for(site, page, f'#seats .tile[data-key="{wang}"][data-state="wrap_up"]')
    await page.screenshot(path=str(artifacts / "board-02-call-ended.png"))


async def test_listening_in_from_the_board_rings_the_supervisors_seat(
    browser: Any, site: Site, artifacts: Path
) -> None:
    page = await open_board(browser, site)
    await site.service.dialer.sign_in(site.specialists[0], ready=True)
    await wait_for(site, page, '#calls tr[data-answered="1"]')
    await page.locator('#calls button[data-action="listen"]').click()
    await expect(page.locator("#toast")).to_have_attribute("data-status", "200")
    await expect(page.locator("#toast")).to_have_text("已完成：您的坐席将振铃")

    def spies() -> list[Any]:
        return [c for c in site.sim.pbx.channels.values() if c.name.startswith("PJSIP/8999-")]

    async def answered() -> bool:
        return any(c.app == "ChanSpy" for c in spies())

    await drive_until(site.clock, answered)
    assert len(spies()) == 1 and spies()[0].appdata.endswith(",qE")
    await page.screenshot(path=str(artifacts / "board-03-listening.png"))


async def test_a_supervisor_moves_a_live_call_to_a_free_seat_from_the_board(
    browser: Any, site: Site, artifacts: Path
) -> None:
    """The 转接到 list offers the free seats; the move is carried out on the simulator (the
    customer's channel redirected, the new seat dialled) and both seats' tiles show it."""
    wang, lina = site.specialists
    page = await open_board(browser, site)
    await site.service.dialer.sign_in(wang, ready=True)
    await wait_for(site, page, '#calls tr[data-answered="1"]')
    lina_seat = await free_seat(site)
    await wait_for(site, page, f'#seats .tile[data-key="{lina}"][data-state="ready"]')
    # The list is drawn when it is opened: only 李娜 is free (王芳 is on the call).
    picker = page.locator("#move-to")
    await picker.focus()
    await expect(picker.locator("option")).to_have_count(2)
    await expect(picker.locator(f'option[value="{lina_seat}"]')).to_have_text(f"李娜 {lina_seat}")
    await picker.select_option(lina_seat)
    await page.locator('#calls button[data-action="move"]').click()
    await expect(page.locator("#toast")).to_have_attribute("data-status", "200")
    await expect(page.locator("#toast")).to_have_text("已完成")
    # The new seat answers when the customer is bridged to it; 王芳 talked: she wraps up.
    await wait_for(site, page, f'#seats .tile[data-key="{lina}"][data-state="on_call"]')
    await wait_for(site, page, f'#seats .tile[data-key="{wang}"][data-state="wrap_up"]')
    row = page.locator("#calls tr")
    await expect(row).to_have_count(1)
    await expect(row.locator("td").first).to_have_text(f"王芳 {lina_seat}")
    await expect(row).to_have_attribute("data-answered", "1")
    dialled = [c for c in site.sim.pbx.channels.values() if c.name.startswith(f"{lina_seat}-")]
    assert len(dialled) == 1, "the simulator rang 李娜's seat"
    await page.screenshot(path=str(artifacts / "board-07-call-moved.png"))


async def test_a_specialist_is_refused_the_board(browser: Any, site: Site, artifacts: Path) -> None:
    context = await browser.new_context(viewport=VIEWPORT, locale="zh-CN", base_url=site.url)
    page: Page = await context.new_page()
    await sign_in_browser(page, "lina", "/seat")
    await expect(page.locator("nav.pages a[href='/seat']")).to_have_count(1)
    assert await page.locator("nav.pages a[href='/board']").count() == 0, "no board link"
    status = await page.evaluate(
        """async () => (await fetch('/api/board/calls/att-x/listen', {method: 'POST',
            headers: {'X-CSRF-Token': document.querySelector('meta[name="csrf-token"]')?.content ?? ''}})).status"""
    )
    assert status == 403
    resp = await page.goto("/board")
    assert resp is not None and resp.status == 403
    await page.screenshot(path=str(artifacts / "board-04-specialist-refused.png"))


async def test_a_pause_alert_is_acted_on_from_the_board_and_shows_in_the_audit_log(
    browser: Any, site: Site, artifacts: Path
) -> None:
    lina = site.specialists[1]
    page = await open_board(browser, site)
    await site.service.dialer.sign_in(lina)
    await site.service.dialer.pause(lina, "培训")
    button = page.locator('#alerts li[data-code="seat_paused"] button[data-do="unpause"]')

    async def alerted() -> bool:
        return await button.count() == 1

    await drive_until(site.clock, alerted, step=30.0)
    await expect(button).to_have_text("结束暂停")
    await page.screenshot(path=str(artifacts / "board-05-alert-actions.png"))
    await button.click()
    await expect(page.locator("#toast")).to_have_attribute("data-status", "200")
    await wait_for(site, page, f'#seats .tile[data-key="{lina}"][data-state="ready"]')
    await expect(page.locator('#alerts li[data-code="seat_paused"]')).to_have_count(0)
    # The audit log (its filters are tested over HTTP in tests/test_board_alerts.py).
    await page.locator("a.audit-link").click()
    await expect(page.locator("h1")).to_have_text("审计日志")
    rows = page.locator("#audit tbody tr[data-action]")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-status", "done")
    await expect(rows.first.locator("td").nth(2)).to_have_text("结束暂停")
    await expect(rows.first.locator("td").nth(3)).to_have_text("李娜")
    await page.locator('select[name="action"]').select_option("move")
    await page.locator("#audit-filters button[type=submit]").click()
    await expect(page.locator("#audit tbody tr.empty")).to_have_count(1)
    await expect(page.locator('select[name="action"]')).to_have_value("move")
    await page.screenshot(path=str(artifacts / "board-06-audit-log.png"))
