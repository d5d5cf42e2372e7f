"""The desk pages in a real browser (headless Chromium from Debian, driven by Playwright) on
the fully wired service: reviewing a recording (player with Range, waveform, keys, the rubric,
a failed review's callback), a specialist's read-only view, an import with bad rows and the
workbook of rejects, the day's deal previewed then run, campaign settings refused in Chinese,
and the people on the desk. Screenshots of each page go to the `artifacts` folder."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from playwright.async_api import expect
from sqlalchemy import select

from callcenter.pages.accounts import Accounts
from callcenter.pages.exceptions import SignInRefused
from crm_sync.models import Lead, Policy, Specialist
from schedules.models import DistributionRun
from tests.desk_page_support import (
    EXPORT_HEADER,
    add_call_recording,
    add_due_leads,
    open_as,
    owners,
    write_export,
)
from tests.seat_page_support import (  # noqa: F401
    Site,
    artifacts_fixture,
    browser_fixture,
    site_fixture,
)
from tests.test_dialer_support import MONDAY_0930

expect.set_options(timeout=30_000)
# The pages are the same on both databases; the services under them are tested on both in
# test_desk_services.py. One database here keeps `make test` inside its time budget.
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
DESK_TZ = ZoneInfo("Asia/Shanghai")


async def _two_recordings(site: Site, tmp_path: Path) -> tuple[int, int]:
    """王芳's call (her lead) and 李娜's call (hers)."""
    mine = await add_call_recording(
        site,
        tmp_path,
        "att-wang",
        lead_id=site.leads[0],
        specialist_id=site.specialists[0],
        ended_at=MONDAY_0930 - timedelta(minutes=20),
    )
    theirs = await add_call_recording(
        site,
        tmp_path,
        "att-li",
        lead_id=site.leads[1],
        specialist_id=site.specialists[1],
        ended_at=MONDAY_0930 - timedelta(minutes=10),
    )
    return mine, theirs


async def test_a_failed_review_books_a_callback_inside_the_calling_windows(
    site: Site, browser: Any, artifacts: Path, tmp_path: Path
) -> None:
    mine, theirs = await _two_recordings(site, tmp_path)
    page = await open_as(browser, site, "boss", "/desk/recordings")
    await expect(page.locator("#rec-list tbody tr")).to_have_count(2)
    await page.screenshot(path=str(artifacts / "desk-01-recordings-list.png"))
    # Filters as the API has them: 王芳's, not reviewed, renewal campaign.
    await page.select_option("#f-specialist", str(site.specialists[0]))
    await page.select_option("#f-reviewed", "no")
    await page.select_option("#f-campaign", "renewal")
    await page.click("#f-apply")
    await expect(page.locator("#rec-list tbody tr")).to_have_count(1)
    ranges: list[tuple[str, int]] = []
    page.on(
        "response",
        lambda r: (
            ranges.append((r.request.headers.get("range", ""), r.status))
            if "/audio" in r.url
            else None
        ),
    )
    await page.locator(f'#rec-list tr[data-id="{mine}"] a').click()
    await expect(page.locator("body")).to_have_attribute("data-ready", "1")
    # The waveform is drawn from the stored peaks.
    drawn = await page.evaluate(
        """() => { const c = document.getElementById('wave');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""
    )
    assert drawn > 1000
    await expect(page.locator("#silence-share")).to_have_text("17%")
    await expect(page.locator("#talk-share")).to_contain_text("83%")
    # Keys shown on the page are the keys that work: play, skip 5 s.
    await expect(page.locator("#btn-play kbd")).to_have_text("Alt+K")
    await page.keyboard.press("Alt+KeyK")
    await expect(page.locator("#play-state")).to_have_attribute("data-state", "playing")
    await page.keyboard.press("Alt+KeyL")
    await page.wait_for_function("document.getElementById('audio').currentTime >= 5")
    await page.keyboard.press("Alt+KeyK")
    await expect(page.locator("#play-state")).to_have_attribute("data-state", "paused")
    # The player streamed with Range requests (206), not one download.
    assert any(rng.startswith("bytes=") and status == 206 for rng, status in ranges), ranges

    for box in await page.locator('#review-form input[name="score"]').all():
        await box.fill("3")
    await page.check("#passed-no")
    await page.fill("#review-note", "没有核实车牌，需要回访")
    # 13:00 is between the morning and afternoon windows: booked at the next window.
    await page.fill("#callback-at", "2026-01-05T13:00")
    await page.screenshot(path=str(artifacts / "desk-02-review-form.png"))
    await page.click("#btn-review")
    await expect(page.locator("#review-msg")).to_contain_text("已预约回拨 2026-01-05 15:30")
    await expect(page.locator("#review-list li.bad")).to_contain_text("不通过")
    await page.screenshot(path=str(artifacts / "desk-03-review-saved.png"))

    hours = site.service.desk.hours("renewal")
    async with site.service.container.sessions() as s:
        lead = await s.get(Lead, site.leads[0])
        assert lead is not None and lead.callback_at is not None
    local = lead.callback_at.astimezone(DESK_TZ)
    assert any(lead.callback_at in slot for slot in hours.slots_on(local.date()))
    assert (local.hour, local.minute) == (15, 30)
    assert lead.status == "scheduled"
    # Alt+N: the next recording of the list, newest first (李娜's call, then 王芳's).
    await page.goto(f"/desk/recordings/{theirs}")
    await expect(page.locator("body")).to_have_attribute("data-ready", "1")
    await page.keyboard.press("Alt+KeyN")
    await page.wait_for_url(f"**/desk/recordings/{mine}")
    await expect(page.locator("#review-list li.bad")).to_have_count(1)


async def test_a_specialist_sees_only_her_own_recordings_read_only(
    site: Site, browser: Any, artifacts: Path, tmp_path: Path
) -> None:
    mine, theirs = await _two_recordings(site, tmp_path)
    page = await open_as(browser, site, "wangfang", "/desk/recordings")
    await expect(page.locator("#own-only")).to_be_visible()
    await expect(page.locator("#rec-list tbody tr")).to_have_count(1)
    await expect(page.locator(f'#rec-list tr[data-id="{mine}"]')).to_be_visible()
    await expect(page.locator("#f-specialist")).to_have_count(0)
    await expect(page.locator('nav.pages a[href="/desk/import"]')).to_have_count(0)
    await page.screenshot(path=str(artifacts / "desk-04-specialist-own-recordings.png"))
    await page.locator(f'#rec-list tr[data-id="{mine}"] a').click()
    await expect(page.locator("#audio")).to_be_attached()
    await expect(page.locator("#review-form")).to_have_count(0)
    await page.screenshot(path=str(artifacts / "desk-05-specialist-read-only.png"))
    # Another's recording is "not found", its audio too; a review is refused.
    resp = await page.goto(f"/desk/recordings/{theirs}")
    assert resp is not None and resp.status == 404
    resp = await page.goto(f"/api/recordings/{theirs}/audio")
    assert resp is not None and resp.status == 404
    await page.goto(f"/desk/recordings/{mine}")
    token = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    refused = await page.request.post(
        f"/api/recordings/{mine}/reviews",
        data={"scores": {}, "passed": True},
        headers={"X-CSRF-Token": token},
    )
    assert refused.status in (400, 403)
    resp = await page.goto("/desk/import")
    assert resp is not None and resp.status == 403
    await expect(page.locator("#forbidden")).to_contain_text("仅供主管")
    # English ships too.
    await page.goto("/desk/recordings?lang=en")
    await expect(page.locator("h1")).to_contain_text("Recordings")
    await expect(page.locator("#own-only")).to_contain_text("Your own calls only")


async def test_an_upload_with_bad_rows_shows_them_and_offers_the_file_of_rejects(
    site: Site, browser: Any, artifacts: Path, tmp_path: Path
) -> None:
    export = write_export(
        tmp_path / "续保清单.xlsx",
        [
            ["PDZA2026000001", "沪A10001", "陈一", "13900000001", "2025-02-01", "2026-02-01", "B1"],
            ["PDZA2026000002", "沪A10002", "", "13900000002", "2025-02-02", "2026-02-02", "B1"],
            ["PDZA2026000003", "沪A10003", "陈三", "13900000003", "2025-02-03", "2026-02-03", "B1"],
            ["PDZA2026000004", "沪A10004", "陈四", "13900000004", "2025-02-04", "明年", "B1"],
        ],
    )
    page = await open_as(browser, site, "boss", "/desk/import")
    await page.screenshot(path=str(artifacts / "desk-06-import-page.png"))
    await page.select_option("#import-kind", "renewal")
    await page.set_input_files("#import-file", str(export))
    await page.click("#btn-import")
    await expect(page.locator("#import-report")).to_be_visible()
    await expect(page.locator("#n-read")).to_have_text("4")
    await expect(page.locator("#n-imported")).to_have_text("2")
    await expect(page.locator("#n-rejected")).to_have_text("2")
    await expect(page.locator("#reject-rows tr")).to_have_count(2)
    await expect(page.locator("#reject-rows")).to_contain_text("缺少投保人")
    await expect(page.locator("#reject-rows")).to_contain_text("不是日期")
    await expect(page.locator("#import-bar")).to_have_attribute("value", re.compile(r"^\d+"))
    await page.screenshot(path=str(artifacts / "desk-07-import-report.png"))

    async with page.expect_download() as info:
        await page.click("#rejects-link")
    download = await info.value
    saved = tmp_path / "rejected.xlsx"
    await download.save_as(saved)
    wb = load_workbook(saved)
    ws = wb.active
    assert ws is not None
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    assert rows[0] == [*EXPORT_HEADER, "错误原因"]
    assert [r[0] for r in rows[1:]] == ["PDZA2026000002", "PDZA2026000004"]
    assert "投保人：缺少投保人" in str(rows[1][-1])
    assert "终保日期：不是日期" in str(rows[2][-1])
    assert rows[2][5] == "明年"  # the original cell, to fix

    # Fixed in the workbook and imported again: nothing rejected.
    rows[1][2] = "陈二"
    rows[2][5] = "2026-02-04"
    fixed = write_export(tmp_path / "fixed.xlsx", [r[:-1] for r in rows[1:]])
    await page.set_input_files("#import-file", str(fixed))
    await page.click("#btn-import")
    await expect(page.locator("#n-imported")).to_have_text("2")
    await expect(page.locator("#n-rejected")).to_have_text("0")
    await expect(page.locator("#rejects-box")).to_be_hidden()
    async with site.service.container.sessions() as s:
        numbers = set(
            (
                await s.scalars(
                    select(Policy.policy_number).where(Policy.policy_number.like("PDZA%"))
                )
            ).all()
        )
    assert len(numbers) == 4


async def test_a_file_that_cannot_be_imported_is_refused_with_the_reason(
    site: Site, browser: Any, tmp_path: Path
) -> None:
    bad = tmp_path / "notes.csv"
    bad.write_text("姓名,备注\n张三,你好\n", encoding="utf-8")
    page = await open_as(browser, site, "boss", "/desk/import")
    await page.set_input_files("#import-file", str(bad))
    await page.click("#btn-import")
    await expect(page.locator("#import-error")).to_contain_text("missing required column")
    await expect(page.locator("#import-report")).to_be_hidden()


async def test_the_preview_of_the_distribution_matches_the_run(
    site: Site, browser: Any, artifacts: Path
) -> None:
    today = date(2026, 1, 5)
    due = await add_due_leads(site, 9, today)
    async with site.service.container.sessions() as s:
        s.add(Specialist(name="赵休假", seat="PJSIP/8201", on_leave=True))
        s.add(Specialist(name="钱停用", seat="PJSIP/8202", active=False))
        late = Specialist(name="周未填", seat="PJSIP/8203")
        s.add(late)
        await s.commit()
    # Handed out last Wednesday and still without a result: its deadline is long past.
    await add_due_leads(site, 2, date(2025, 12, 31), owner_id=late.id, tag="late")
    page = await open_as(browser, site, "boss", "/desk/distribution")
    await page.click("#btn-preview")
    await expect(page.locator("#dist-result")).to_have_attribute("data-kind", "preview")
    await expect(page.locator("#dist-skipped")).to_contain_text("赵休假: 休假")
    await expect(page.locator("#dist-skipped")).to_contain_text("钱停用: 暂停（已停用）")
    await expect(page.locator("#dist-skipped")).to_contain_text(
        "周未填: 昨日结果未填：2 条名单没有联系结果"
    )
    preview = {
        int(await tr.get_attribute("data-id") or 0): int(await tr.locator("td").nth(1).inner_text())
        for tr in await page.locator("#dist-rows tr").all()
    }
    assert sum(preview.values()) == 9
    summary = await page.locator("#dist-summary").inner_text()
    seed = int(re.search(r"(\d+)。?$", summary.strip()).group(1))  # type: ignore[union-attr]
    assert await owners(site, due) == {}  # a preview writes nothing
    await page.screenshot(path=str(artifacts / "desk-08-distribution-preview.png"))

    await page.click("#btn-run")
    await expect(page.locator("#dist-result")).to_have_attribute("data-kind", "run")
    await expect(page.locator("#dist-rows .match")).to_have_count(len(preview))
    await expect(page.locator("#dist-rows .differs")).to_have_count(0)
    dealt = await owners(site, due)
    assert dealt == {k: v for k, v in preview.items() if v}
    async with site.service.container.sessions() as s:
        run = (await s.scalars(select(DistributionRun))).one()
    assert run.seed == seed  # the run used exactly the preview's seed
    await page.screenshot(path=str(artifacts / "desk-09-distribution-run.png"))
    await page.reload()
    await expect(page.locator("#audit tbody tr[data-run]")).to_have_count(1)
    await page.screenshot(path=str(artifacts / "desk-10-distribution-audit.png"))


async def test_campaign_settings_are_refused_with_reasons_in_chinese(
    site: Site, browser: Any, artifacts: Path
) -> None:
    page = await open_as(browser, site, "boss", "/desk/campaigns")
    form = page.locator("#campaign-renewal")
    await form.locator('input[name="concurrency"]').fill("5000")
    await form.locator('input[name="caller_id"]').fill("客服<95500>")
    await form.locator('input[name="message"]').fill("../etc/passwd")
    await form.locator(".save").click()
    errors = form.locator(".field-errors")
    await expect(errors).to_contain_text("并发数须为 0 到 1000 的整数")
    await expect(errors).to_contain_text("主叫号码须为号码")
    await expect(errors).to_contain_text("语音须为声音文件名")
    await expect(form.locator('input[name="concurrency"]')).to_have_attribute(
        "aria-invalid", "true"
    )
    await page.screenshot(path=str(artifacts / "desk-11-campaign-refused.png"))

    await form.locator('input[name="concurrency"]').fill("12")
    await form.locator('input[name="caller_id"]').fill('"续保专员" <95500>')
    await form.locator('input[name="message"]').fill("custom/renewal-reminder")
    await form.locator('select[name="mode"]').select_option("preview")
    await form.locator(".save").click()
    await expect(form.locator(".saved")).to_have_text("已保存。")
    await expect(errors).to_be_empty()
    campaigns = {c["name"]: c for c in await site.service.dialer.campaign_status()}
    assert campaigns["renewal"]["concurrency"] == 12
    assert campaigns["renewal"]["mode"] == "preview"
    assert campaigns["renewal"]["caller_id"] == '"续保专员" <95500>'
    await form.locator(".stop").click()
    await expect(form.locator(".run-state")).to_have_attribute("data-running", "0")
    await form.locator(".start").click()
    await expect(form.locator(".run-state")).to_have_attribute("data-running", "1")
    await page.screenshot(path=str(artifacts / "desk-12-campaign-saved.png"))

    # Pooled predictive, with its caps: a cap above the legal maximum is refused in Chinese.
    await form.locator('select[name="pooled"]').select_option("true")
    await form.locator('select[name="pacing"]').select_option("predictive")
    await form.locator('input[name="pacing_ratio_cap"]').fill("2.5")
    await form.locator('input[name="abandon_cap"]').fill("5")
    await form.locator(".save").click()
    await expect(errors).to_contain_text("放弃率上限须为 0 到法定上限")
    await form.locator('input[name="abandon_cap"]').fill("2.5")
    await form.locator(".save").click()
    await expect(form.locator(".saved")).to_have_text("已保存。")
    renewal = {c["name"]: c for c in await site.service.dialer.campaign_status()}["renewal"]
    assert (renewal["pooled"], renewal["pacing"]) == (True, "predictive")
    assert (renewal["pacing_ratio_cap"], renewal["abandon_cap"]) == (2.5, 0.025)


async def test_a_supervisor_adds_a_specialist_and_sees_who_is_signed_in_where(
    site: Site, browser: Any, artifacts: Path
) -> None:
    await site.service.dialer.sign_in(site.specialists[1], None, ready=False)
    page = await open_as(browser, site, "boss", "/desk/people")
    row = page.locator(f'#people tr[data-id="{site.specialists[1]}"]')
    await expect(row.locator(".where")).to_contain_text("PJSIP/")
    boss_row = page.locator('#people tr[data-username="boss"]')
    await expect(boss_row).to_contain_text("从 127.0.0.1 登录")
    form = page.locator("#add-person")
    await form.locator('input[name="name"]').fill("孙新人")
    await form.locator('input[name="seat"]').fill("PJSIP/8301")
    await form.locator('input[name="username"]').fill("lina")
    await form.locator('input[name="password"]').fill("sun-xin-2026")
    await form.locator("button").click()
    # A sign-in name taken: refused, and no person without a login is left behind.
    await expect(page.locator("#people-msg")).to_contain_text("未完成")
    async with site.service.container.sessions() as s:
        assert await s.scalar(select(Specialist).where(Specialist.seat == "PJSIP/8301")) is None
    await form.locator('input[name="username"]').fill("sunxin")
    await form.locator("button").click()
    added = page.locator('#people tr[data-username="sunxin"]')
    await expect(added).to_contain_text("PJSIP/8301")
    # A password reset: a prompt for the new one, then the old one no longer opens.
    page.once("dialog", lambda d: d.accept("li-na-new-2027"))
    await page.locator('#people tr[data-username="lina"] .reset').click()
    await expect(page.locator("#people-msg")).to_contain_text("已重置 李娜 的密码")
    page.once("dialog", lambda d: d.accept())
    await added.locator(".disable").click()
    await expect(page.locator('#people tr[data-username="sunxin"] .p-state')).to_contain_text(
        "已停用"
    )
    await page.screenshot(path=str(artifacts / "desk-13-people.png"))
    async with site.service.container.sessions() as s:
        person = await s.scalar(select(Specialist).where(Specialist.seat == "PJSIP/8301"))
    assert person is not None and not person.active
    accounts = Accounts(site.service.container.sessions, site.clock)
    assert (await accounts.sign_in("lina", "li-na-new-2027", "10.0.0.9")).session_id
    with pytest.raises(SignInRefused):
        await accounts.sign_in("lina", "li-na-2026!", "10.0.0.9")
