"""The seat page in a real browser, continued: a whole shift's actions with the keyboard
alone, the result saved during the call (no wrap-up then) and after it (ready at once, or
the pause she asked for), playing her own recordings but never a colleague's, and a preview
skipped. Same set-up as tests/test_seat_page.py: headless Debian Chromium via Playwright,
the wired service on a VirtualClock, the PBX simulator over TCP."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select

from crm_sync.models import Lead
from dialer.models import CallAttempt
from recordings.store import LocalStore
from tests.seat_page_support import (  # noqa: F401
    Site,
    artifacts_fixture,
    browser_fixture,
    drive_until,
    site_fixture,
)
from tests.test_recordings_helpers import add_recording
from tests.test_seat_page import open_seat_page, sign_in_to_the_seat, state_is

expect.set_options(timeout=30_000)
# What these tests check lives in the page and the seat, not in the database (the data side
# runs on both backends in test_seat_page_data.py): one backend keeps `make test` short.
pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


async def _lead(site: Site, lead_id: int) -> Lead:
    async with site.service.container.sessions() as s:
        return (await s.scalars(select(Lead).where(Lead.id == lead_id))).one()


async def _on_call(site: Site, page: Page) -> None:
    await sign_in_to_the_seat(page)
    await page.keyboard.press("Alt+KeyR")
    await drive_until(site.clock, lambda: state_is(page, "on_call"))
    await expect(page.locator("#pop-name")).to_have_text("张伟明")


async def _handed_out_yesterday(site: Site, page: Page) -> None:
    """Her lead was handed out on the last working day: node 3's 17:00 deadline applies."""
    day = await (await page.request.get("/api/seat/day")).json()
    handed = day["deadline"]["handed_out_on"]
    async with site.service.container.sessions.begin() as s:
        lead = await s.get(Lead, site.leads[0])
        assert lead is not None
        lead.distributed_on = type(lead.distributed_on).fromisoformat(handed)  # type: ignore[union-attr]


async def test_a_shift_with_the_keyboard_alone_result_saved_during_the_call_skips_wrap_up(
    site: Site, browser: Any, artifacts: Path
) -> None:
    page = await open_seat_page(browser, site)
    await _handed_out_yesterday(site, page)
    await page.keyboard.press("Alt+KeyM")  # my day: the lead is on node 3's missing list
    await expect(page.locator("#day-missing li")).to_have_count(1)
    await expect(page.locator("#day-missing")).to_contain_text("张伟明")
    await page.screenshot(path=str(artifacts / "10-my-day-deadline-missing.png"))

    await _on_call(site, page)
    # The customer renews on the phone: she records it while still talking.
    await page.keyboard.press("Alt+Digit1")
    await expect(page.locator('input[name="result"]').first).to_be_checked()
    result = await page.locator('input[name="result"]').first.get_attribute("value")
    await page.keyboard.press("Alt+KeyN")
    await page.keyboard.type("客户同意续保")
    await page.keyboard.press("Control+Enter")
    await expect(page.locator("#toast")).to_have_text("已保存")
    assert await state_is(page, "on_call")
    assert (await _lead(site, site.leads[0])).contact_result == result
    await expect(page.locator("#day-missing li")).to_have_count(0)  # the deadline is met

    # Her own hang-up: the result is in, so no wrap-up; ready at once, no clock moved.
    await page.keyboard.press("Alt+KeyH")
    await expect(page.locator("#seat-state")).to_have_attribute("data-state", "ready")
    await expect(page.locator("#wrapup")).to_be_hidden()
    await page.screenshot(path=str(artifacts / "11-saved-during-call-ready.png"))

    # Pause with a reason, back to ready, sign out: each by its key.
    await page.keyboard.press("Alt+KeyP")
    await expect(page.locator("#seat-state")).to_have_attribute("data-state", "paused")
    await page.keyboard.press("Alt+KeyR")
    await expect(page.locator("#seat-state")).to_have_attribute("data-state", "ready")
    await page.keyboard.press("Alt+KeyO")
    await expect(page.locator("#seat-state")).to_have_attribute("data-state", "offline")


async def test_saving_in_wrap_up_ends_it_at_once_into_the_pause_asked_for_during_the_call(
    site: Site, browser: Any
) -> None:
    page = await open_seat_page(browser, site)
    await _on_call(site, page)
    await page.select_option("#pause-reason", "meal")
    await page.keyboard.press("Alt+KeyP")  # during the call: the pause waits for its end
    # ... and the state says so as long as it waits (not only a passing toast).
    await expect(page.locator("#seat-state")).to_have_attribute("data-asked", "pause")
    await expect(page.locator("#seat-state")).to_contain_text("本通电话结束后开始暂停")
    await page.keyboard.press("Alt+KeyH")
    await expect(page.locator("#seat-state")).to_have_attribute("data-state", "wrap_up")
    await expect(page.locator("#seat-state")).to_contain_text("话后整理结束后开始暂停")
    await page.keyboard.press("Alt+Digit2")
    await page.keyboard.press("Control+Enter")
    await expect(page.locator("#toast")).to_have_text("已保存")
    # No clock moved: the save ended the wrap-up, into the meal break she asked for.
    await expect(page.locator("#seat-state")).to_have_attribute("data-state", "paused")
    await expect(page.locator("#seat-state")).to_contain_text("用餐")
    await expect(page.locator("#seat-state")).to_have_attribute("data-asked", "")


async def test_she_plays_her_own_recording_from_the_pop_and_never_a_colleagues(
    site: Site, browser: Any, artifacts: Path
) -> None:
    wang, li = site.specialists
    ended = site.clock.now() - timedelta(days=1)
    async with site.service.container.sessions.begin() as s:
        # The lead was 李娜's once: both of them called it before.
        for attempt, who in (("att-li", li), ("att-wang", wang)):
            s.add(
                CallAttempt(
                    attempt_id=attempt,
                    lead_id=site.leads[0],
                    number="+8613900000007",
                    specialist_id=who,
                    mode="seat_first",
                    campaign_kind="renewal",
                    ami_server="pbx1",
                    state="ended",
                    outcome="answered",
                    talk_seconds=40.0,
                    created_at=ended + timedelta(minutes=1 if who == wang else 0),
                    ended_at=ended + timedelta(minutes=2),
                )
            )
    store = site.service.recordings.service.store
    assert isinstance(store, LocalStore)
    sessions = site.service.container.sessions
    theirs = await add_recording(
        sessions,
        store,
        "att-li",
        ended_at=ended,
        data=b"ID3li",
        lead_id=site.leads[0],
        specialist_id=li,
    )
    mine = await add_recording(
        sessions,
        store,
        "att-wang",
        ended_at=ended,
        data=b"ID3wang",
        lead_id=site.leads[0],
        specialist_id=wang,
    )

    page = await open_seat_page(browser, site)
    await _on_call(site, page)
    await expect(page.locator("#pop-history tr")).to_have_count(3)  # this call and two before
    await expect(page.locator("#pop-history button.play")).to_have_count(1)
    await expect(page.locator("#pop-history button.play kbd")).to_have_text("Alt+L")
    async with page.expect_response(lambda r: f"/api/recordings/{mine}/audio" in r.url) as got:
        await page.keyboard.press("Alt+KeyL")
    assert (await got.value).status in (200, 206)
    await expect(page.locator("#player")).to_be_visible()
    await page.screenshot(path=str(artifacts / "12-playing-own-recording.png"))
    # Her colleague's recording is not offered, and asking for it by URL finds nothing.
    refused = await page.request.get(f"/api/recordings/{theirs}/audio")
    assert refused.status == 404


async def test_a_preview_skipped_is_not_dialled_and_leaves_the_seat_ready(
    site: Site, browser: Any, artifacts: Path
) -> None:
    await site.service.dialer.update_campaign("renewal", mode="preview")
    page = await open_seat_page(browser, site)
    await sign_in_to_the_seat(page)
    await page.keyboard.press("Alt+KeyR")
    await drive_until(site.clock, lambda: page.locator("#preview").is_visible())
    await expect(page.locator("#pop-name")).to_have_text("张伟明")
    await page.keyboard.press("Alt+KeyK")
    await expect(page.locator("#preview")).to_be_hidden()
    await expect(page.locator("#pop-body")).to_be_hidden()
    await expect(page.locator("#seat-state")).to_have_attribute("data-state", "ready")
    await page.screenshot(path=str(artifacts / "13-preview-skipped.png"))
    async with site.service.container.sessions() as s:
        (attempt,) = (
            await s.scalars(select(CallAttempt).where(CallAttempt.lead_id == site.leads[0]))
        ).all()
    assert attempt.sent_at is None and attempt.outcome == "skipped"
