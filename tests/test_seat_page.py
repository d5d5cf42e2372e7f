"""The seat page in a real browser (headless Chromium from Debian, driven by Playwright) on
the fully wired service and the PBX simulator over TCP. Time on the server side (ringing,
talk, wrap-up) is a VirtualClock the test moves; the browser's side is polled, never slept.
Screenshots of the main states go to the `artifacts` folder."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect
from sqlalchemy import select

from crm_sync.models import Lead
from dialer.models import CallAttempt
from tests.seat_page_support import (  # noqa: F401
    PASSWORDS,
    WRAP_UP_SECONDS,
    Site,
    artifacts_fixture,
    browser_fixture,
    drive_until,
    site_fixture,
)

# The page's assertions wait on the DOM, bounded in real time only to stop a hung test; the
# server side is slower on a loaded machine (its database work runs in threads), so the bound
# is generous rather than Playwright's 5 s default.
expect.set_options(timeout=30_000)

VIEWPORT = {"width": 1366, "height": 768}


async def open_page(browser: Any, site: Site) -> Page:
    context = await browser.new_context(viewport=VIEWPORT, locale="zh-CN", base_url=site.url)
    page: Page = await context.new_page()
    return page


async def sign_in_with_keys(page: Page, username: str, password: str) -> None:
    """The sign-in form with the keyboard alone: the name field has the focus."""
    await page.goto("/seat")
    await expect(page.locator("#username")).to_be_focused()
    await page.keyboard.type(username)
    await page.keyboard.press("Tab")
    await page.keyboard.type(password)
    await page.keyboard.press("Enter")


async def open_seat_page(browser: Any, site: Site) -> Page:
    """王芳's seat page, signed in with the keyboard and its state loaded."""
    page = await open_page(browser, site)
    await sign_in_with_keys(page, "wangfang", PASSWORDS["wangfang"])
    await expect(page.locator("body")).to_have_attribute("data-ready", "1")
    return page


async def sign_in_to_the_seat(page: Page) -> None:
    """Alt+S: signed in to the seat, paused until she presses ready."""
    await page.keyboard.press("Alt+KeyS")
    await expect(page.locator("#seat-state")).to_have_attribute("data-state", "paused")


async def state_is(page: Page, state: str) -> bool:
    return await page.locator("#seat-state").get_attribute("data-state") == state


async def test_a_wrong_password_is_refused_and_the_right_one_opens_the_seat_page(
    site: Site, browser: Any, artifacts: Path
) -> None:
    page = await open_page(browser, site)
    await sign_in_with_keys(page, "wangfang", "not-my-password")
    await expect(page.locator("#login-error")).to_contain_text("用户名或密码错误")
    await page.screenshot(path=str(artifacts / "01-sign-in-refused.png"))
    await page.fill("#password", PASSWORDS["wangfang"])
    await page.keyboard.press("Enter")
    await expect(page.locator("#seat-state")).to_have_text("未签入坐席")
    await expect(page.locator("body")).to_have_attribute("data-ready", "1")
    await page.screenshot(path=str(artifacts / "02-seat-page-signed-in.png"))


async def test_five_wrong_passwords_lock_the_login(site: Site, browser: Any) -> None:
    page = await open_page(browser, site)
    await page.goto("/login")
    for _ in range(5):
        await page.fill("#username", "lina")
        await page.fill("#password", "wrong-password")
        await page.keyboard.press("Enter")
        await expect(page.locator("#login-error")).to_be_visible()
    await page.fill("#username", "lina")
    await page.fill("#password", PASSWORDS["lina"])
    await page.keyboard.press("Enter")
    await expect(page.locator("#login-error")).to_contain_text("账号已锁定")


async def test_a_specialist_cannot_open_another_specialists_lead_by_url(
    site: Site, browser: Any, artifacts: Path
) -> None:
    page = await open_page(browser, site)
    await sign_in_with_keys(page, "wangfang", PASSWORDS["wangfang"])
    await expect(page.locator("#seat-state")).to_be_visible()
    resp = await page.goto(f"/seat/leads/{site.leads[1]}")
    assert resp is not None and resp.status == 404
    await expect(page.locator("#not-found")).to_be_visible()
    await page.screenshot(path=str(artifacts / "03-another-specialists-lead-refused.png"))
    resp = await page.goto(f"/seat/leads/{site.leads[0]}")
    assert resp is not None and resp.status == 200
    await expect(page.locator("#lead-customer")).to_have_text("张伟明")


async def test_a_post_from_the_page_without_its_csrf_token_is_refused(
    site: Site, browser: Any
) -> None:
    page = await open_seat_page(browser, site)
    # The browser's cookie goes with it, but not the page's token: refused.
    resp = await page.request.post("/api/seat/sign-in", data={})
    assert resp.status == 403
    token = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    resp = await page.request.post("/api/seat/sign-in", data={}, headers={"X-CSRF-Token": token})
    assert resp.status == 200


async def test_a_call_pops_the_customer_and_is_disposed_with_the_keyboard_alone(
    site: Site, browser: Any, artifacts: Path
) -> None:
    page = await open_seat_page(browser, site)
    # Keys shown on the page are the keys that work: sign in to the seat, then ready.
    await expect(page.locator("#btn-sign-in kbd")).to_have_text("Alt+S")
    await sign_in_to_the_seat(page)
    await page.keyboard.press("Alt+KeyR")
    # Ready; the dialer takes her lead at once and her seat rings (no clock time needed).
    await expect(page.locator("#seat-state")).to_have_attribute(
        "data-state", re.compile("^(ready|ringing)$")
    )
    await page.screenshot(path=str(artifacts / "04-ready-then-ringing.png"))

    # The simulator answers the seat and the customer: the screen pop is pushed the moment
    # the call connects.
    await drive_until(site.clock, lambda: state_is(page, "on_call"))
    await expect(page.locator("#pop-name")).to_have_text("张伟明")
    await expect(page.locator("#pop-plate")).to_have_text("沪A·12345")
    await expect(page.locator("#pop-model")).to_have_text("大众帕萨特 1.8T")
    await expect(page.locator("#pop-use")).to_have_text("家庭自用")
    await expect(page.locator("#pop-previous")).to_have_text("PDAA2025310000123")
    await expect(page.locator("#pop-phones tr")).to_have_count(2)
    await expect(page.locator("#pop-phones")).to_contain_text("不准确")
    await expect(page.locator("#pop-why")).to_contain_text("天后到期")
    await page.screenshot(path=str(artifacts / "05-screen-pop-on-call.png"))

    # The customer hangs up: wrap-up, with its countdown on screen.
    await drive_until(site.clock, lambda: state_is(page, "wrap_up"))
    await expect(page.locator("#wrapup")).to_contain_text("话后整理：剩余")
    await expect(page.locator("#pop-history tr")).to_have_count(1)

    # A callback at 12:30 (between the windows) is refused with the reason ...
    await page.keyboard.press("Alt+Digit3")  # 预约回拨
    await expect(page.locator('input[value="callback"]')).to_be_checked()
    await page.keyboard.press("Alt+KeyN")
    await page.keyboard.type("客户中午开会，改约时间")
    await page.keyboard.press("Alt+KeyA")
    await expect(page.locator("#appt-day")).to_be_focused()
    await page.keyboard.press("ArrowDown")  # the first working day offered: today
    await expect(page.locator("#appt-day")).to_have_value("2026-01-05")
    await page.keyboard.press("Tab")
    await page.keyboard.type("12:30")
    await expect(page.locator("#appt-msg")).to_contain_text("12:30 不在呼叫时段内")
    await page.keyboard.press("Control+Enter")
    await expect(page.locator("#dispose-error")).to_contain_text("不在呼叫时段内")
    await page.screenshot(path=str(artifacts / "06-appointment-refused.png"))
    async with site.service.container.sessions() as s:
        lead = (await s.scalars(select(Lead).where(Lead.id == site.leads[0]))).one()
        assert lead.contact_result is None

    # ... and 10:00 tomorrow is accepted; the seat goes back to ready by itself.
    await page.keyboard.press("Alt+KeyA")
    await page.keyboard.press("ArrowDown")  # the next working day
    await expect(page.locator("#appt-day")).to_have_value("2026-01-06")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Control+A")
    await page.keyboard.type("10:00")
    await expect(page.locator("#appt-msg")).to_contain_text("该时间可以预约")
    await page.keyboard.press("Control+Enter")
    await expect(page.locator("#toast")).to_have_text("已保存")
    await expect(page.locator("#dispose-error")).to_be_empty()
    await expect(page.locator("#seat-state")).to_have_attribute("data-state", "ready")
    await expect(page.locator("#day-appointments li")).to_have_count(1)
    await page.screenshot(path=str(artifacts / "07-saved-back-to-ready.png"))
    async with site.service.container.sessions() as s:
        lead = (await s.scalars(select(Lead).where(Lead.id == site.leads[0]))).one()
    assert lead.contact_result == "callback"
    assert lead.callback_at == datetime(2026, 1, 6, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


async def test_the_seat_page_fits_a_1366_by_768_screen_and_speaks_english_on_request(
    site: Site, browser: Any, artifacts: Path
) -> None:
    page = await open_seat_page(browser, site)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= VIEWPORT["width"]
    for button in ("#btn-sign-in", "#btn-ready", "#btn-pause", "#btn-hangup", "#btn-sign-out"):
        await expect(page.locator(button)).to_be_in_viewport()
        await expect(page.locator(f"{button} kbd")).to_have_text(re.compile(r"^Alt\+[A-Z]$"))
    await page.goto("/seat?lang=en")
    await expect(page.locator("#seat-state")).to_have_text("Not signed in to the seat")
    await page.screenshot(path=str(artifacts / "08-seat-page-english.png"))


async def test_preview_mode_shows_the_next_customer_and_dials_only_on_confirm(
    site: Site, browser: Any, artifacts: Path
) -> None:
    await site.service.dialer.update_campaign("renewal", mode="preview")
    page = await open_seat_page(browser, site)
    await sign_in_to_the_seat(page)
    await page.keyboard.press("Alt+KeyR")
    # The offer comes from the seat's claim loop, which runs on the server's clock.
    await drive_until(site.clock, lambda: page.locator("#preview").is_visible())
    await expect(page.locator("#pop-name")).to_have_text("张伟明")
    await expect(page.locator("#seat-state")).to_have_attribute("data-state", "ready")
    await page.screenshot(path=str(artifacts / "09-preview.png"))
    # Nothing is dialled before she confirms.
    async with site.service.container.sessions() as s:
        attempt = (
            await s.scalars(select(CallAttempt).where(CallAttempt.lead_id == site.leads[0]))
        ).one()
    assert attempt.state == "reserved" and attempt.sent_at is None
    await page.keyboard.press("Alt+KeyC")
    await drive_until(site.clock, lambda: state_is(page, "on_call"))
    await expect(page.locator("#preview")).to_be_hidden()
    await expect(page.locator("#pop-name")).to_have_text("张伟明")


async def test_after_hanging_up_the_seat_is_ready_again_when_the_wrap_up_ends(
    site: Site, browser: Any
) -> None:
    page = await open_seat_page(browser, site)
    await sign_in_to_the_seat(page)
    await page.keyboard.press("Alt+KeyR")
    await drive_until(site.clock, lambda: state_is(page, "on_call"))
    await page.keyboard.press("Alt+KeyH")  # she ends the call herself
    await expect(page.locator("#seat-state")).to_have_attribute("data-state", "wrap_up")
    await expect(page.locator("#wrapup")).to_have_text(re.compile(r"剩余 (30|29|28) 秒"))
    # No result saved: the wrap-up runs out on the server's clock and the seat is ready.
    await site.clock.advance(WRAP_UP_SECONDS)
    await expect(page.locator("#seat-state")).to_have_attribute("data-state", "ready")
    await expect(page.locator("#wrapup")).to_be_hidden()
