"""Node 7 in a real browser (headless Chromium from Debian, Playwright) on the wired service:
王芳 records a sale from the seat page, the supervisor confirms it on the sales page, and the
premium is in the day's report, its chart and its XLSX (opened with openpyxl)."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from playwright.async_api import Page, expect
from sqlalchemy import select

from crm_sync.models import PointsRule, SalesAudit, SalesRecord
from tests.seat_page_support import (  # noqa: F401
    PASSWORDS,
    Site,
    artifacts_fixture,
    browser_fixture,
    drive_until,
    site_fixture,
)

expect.set_options(timeout=30_000)

# The sale services and reports are tested on both databases (test_sales.py,
# test_reports_services.py); the browser walk runs on one.
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
VIEWPORT = {"width": 1366, "height": 768}


async def _signed_in(browser: Any, site: Site, username: str) -> Page:
    context = await browser.new_context(
        viewport=VIEWPORT, locale="zh-CN", base_url=site.url, accept_downloads=True
    )
    page: Page = await context.new_page()
    await page.goto("/seat")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORDS[username])
    await page.press("#password", "Enter")
    await expect(page.locator("body")).to_have_attribute("data-ready", "1")
    return page


async def _state_is(page: Page, state: str) -> bool:
    return await page.locator("#seat-state").get_attribute("data-state") == state


async def test_a_sale_from_the_seat_page_confirmed_by_the_maintainer_is_in_the_days_report(
    site: Site, browser: Any, artifacts: Path
) -> None:
    async with site.service.container.sessions() as s:
        s.add(
            PointsRule(
                lead_kind="renewal",
                effective_from=date(2026, 1, 1),
                bands=[{"from": "0", "points": 10}, {"from": "3000", "points": 30}],
                red_star_bonus=5,
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
        await s.commit()

    # 王芳: the call connects and ends; she records 成功续保 with the premium and new policy.
    seat = await _signed_in(browser, site, "wangfang")
    await seat.keyboard.press("Alt+KeyS")
    await expect(seat.locator("#seat-state")).to_have_attribute("data-state", "paused")
    await seat.keyboard.press("Alt+KeyR")
    await drive_until(site.clock, lambda: _state_is(seat, "on_call"))
    await expect(seat.locator("#pop-name")).to_have_text("张伟明")
    await drive_until(site.clock, lambda: _state_is(seat, "wrap_up"))
    await seat.check('input[value="renewed"]')
    await expect(seat.locator("#premium-row")).to_be_visible()
    await seat.fill("#premium", "3560.00")
    await seat.fill("#new-policy", "PDAA2026000999")
    await seat.screenshot(path=str(artifacts / "20-sale-on-the-seat-page.png"))
    await seat.keyboard.press("Control+Enter")
    await expect(seat.locator("#toast")).to_have_text("已保存")
    async with site.service.container.sessions() as s:
        sale = (await s.scalars(select(SalesRecord))).one()
    assert (sale.premium, sale.new_policy_number, sale.status, sale.points) == (
        3560,
        "PDAA2026000999",
        "recorded",
        30,
    )

    # The supervisor confirms it against the paperwork, with the card and licence dates.
    boss = await _signed_in(browser, site, "boss")
    await boss.goto("/reports/sales?start=2026-01-05")
    form = boss.locator(f"#sale-{sale.id}")
    await expect(form).to_have_attribute("data-status", "recorded")
    await form.locator('input[name="membership_card"]').fill("VIP-2026-0001")
    await form.locator('input[name="vehicle_licence_expiry"]').fill("2027-03-01")
    await form.locator('input[name="driving_licence_expiry"]').fill("2030-06-01")
    await form.locator("button[type=submit]").click()
    await expect(boss.locator(".saved")).to_contain_text(str(sale.id))
    await expect(boss.locator(f"#sale-{sale.id}")).to_have_attribute("data-status", "confirmed")
    await expect(boss.locator(f"#sale-{sale.id} .points")).to_have_text("35")  # red star +5
    await boss.screenshot(path=str(artifacts / "21-sale-confirmed.png"))
    async with site.service.container.sessions() as s:
        audit = (await s.scalars(select(SalesAudit).order_by(SalesAudit.id))).all()
    assert [a.action for a in audit] == ["recorded", "confirmed"]

    # A new points rule, from tomorrow on: listed, and today's points stay as they are.
    rules = boss.locator("#rules")
    await rules.locator('input[name="bands"]').fill("0:15, 5000:50")
    await rules.locator('input[name="red_star_bonus"]').fill("10")
    await rules.locator("button[type=submit]").click()
    await expect(boss.locator("#rules .saved")).to_contain_text("2026-01-06")
    await expect(boss.locator("#rules tbody tr")).to_have_count(2)
    await expect(boss.locator(f"#sale-{sale.id} .points")).to_have_text("35")

    # The day's report: the premium in the table, the chart drawn, the same in the XLSX.
    await boss.goto("/reports?start=2026-01-05&end=2026-01-05&group=day")
    row = boss.locator("#performance tbody tr").first
    await expect(row.locator('td[data-key="premium"]')).to_have_text("3560.00")
    await expect(row.locator('td[data-key="renewals"]')).to_have_text("1")
    await expect(row.locator('td[data-key="points"]')).to_have_text("35")
    await expect(boss.locator("#chart-premium")).to_have_attribute("data-points", "1")
    await expect(boss.locator("#answer_rate_by_hour tbody tr")).to_have_count(1)
    await boss.screenshot(path=str(artifacts / "22-day-report.png"), full_page=True)
    async with boss.expect_download() as download:
        await boss.click("#xlsx-performance")
    got = await download.value
    assert got.suggested_filename.endswith(".xlsx")
    data = await asyncio.to_thread(Path(await got.path()).read_bytes)
    sheet = load_workbook(io.BytesIO(data)).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    header = list(rows[0])
    assert header[:3] == ["分组", "发放线索", "已拨打"] and "保费(元)" in header
    assert rows[1][header.index("保费(元)")] == 3560
    assert rows[1][header.index("成功续保")] == 1
    assert re.fullmatch(r"2026-01-05", str(rows[1][0]))
