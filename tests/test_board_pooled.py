"""The wallboard's pooled-campaign figures: each pooled campaign's abandon rate today and
over the rolling 30 days, from the pacer's own record (`pool_abandon_days`), with its caps.
On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.board.config import BoardSettings
from callcenter.board.figures import BoardFigures
from dialer.models import Campaign, PoolAbandonDay
from schedules.windows import CallingPlan
from tests.seat_page_support import (  # noqa: F401
    Site,
    artifacts_fixture,
    browser_fixture,
    drive_until,
    sign_in_browser,
    site_fixture,
)

NOW = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
TODAY = date(2026, 1, 5)


async def test_the_board_shows_each_pooled_campaigns_abandon_rate_today_and_over_30_days(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        pooled = Campaign(
            name="lapsed-pool",
            kind="lapsed",
            mode="customer_first",
            running=True,
            pooled=True,
            pacing="predictive",
            pacing_ratio_cap=2.5,
            target_abandon=0.02,
            abandon_cap=0.03,
        )
        plain = Campaign(name="renewal", kind="renewal", mode="seat_first", running=True)
        s.add_all([pooled, plain])
        await s.flush()
        s.add_all(
            [
                PoolAbandonDay(campaign_id=pooled.id, day=TODAY, answered=40, abandoned=1),
                PoolAbandonDay(
                    campaign_id=pooled.id,
                    day=TODAY - timedelta(days=12),
                    answered=60,
                    abandoned=2,
                ),
                # Outside the 30 days: not counted.
                PoolAbandonDay(
                    campaign_id=pooled.id,
                    day=TODAY - timedelta(days=31),
                    answered=10,
                    abandoned=9,
                ),
            ]
        )
        await s.commit()
    figures = BoardFigures(sessions, CallingPlan().for_kind, BoardSettings(), "Asia/Shanghai")
    out = await figures({}, NOW)
    (row,) = out["pooled"]
    assert (row["name"], row["pacing"], row["pacing_ratio_cap"]) == (
        "lapsed-pool",
        "predictive",
        2.5,
    )
    assert (row["answered_today"], row["abandoned_today"]) == (40, 1)
    assert row["abandon_rate_today"] == 1 / 40
    assert (row["answered_30d"], row["abandoned_30d"]) == (100, 3)
    assert row["abandon_rate_30d"] == 0.03
    assert (row["target_abandon"], row["abandon_cap"]) == (0.02, 0.03)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_wallboard_page_shows_the_pooled_campaigns_rates_against_the_cap(
    browser: Any, site: Site, sessions: async_sessionmaker[AsyncSession], artifacts: Path
) -> None:
    await site.service.dialer.update_campaign("lapsed", pooled=True, pacing="predictive")
    today = CallingPlan().for_kind("lapsed").local_date(site.clock.now())
    async with sessions() as s:
        cid = (await s.scalars(select(Campaign.id).where(Campaign.name == "lapsed"))).one()
        s.add_all(
            [
                PoolAbandonDay(campaign_id=cid, day=today, answered=20, abandoned=1),
                PoolAbandonDay(
                    campaign_id=cid, day=today - timedelta(days=3), answered=80, abandoned=1
                ),
            ]
        )
        await s.commit()
    context = await browser.new_context(
        viewport={"width": 1600, "height": 900}, locale="zh-CN", base_url=site.url
    )
    page = await context.new_page()
    await sign_in_browser(page, "boss", "/board")
    row = page.locator('#pooled tr[data-name="lapsed"]')

    async def shown() -> bool:  # the figures are refreshed on the service's clock
        cell = row.locator('td[data-rate="today"]')
        return await row.count() == 1 and await cell.text_content() == "5.0%"

    await drive_until(site.clock, shown)
    await expect(page.locator("#pooled-title")).to_contain_text("坐席池活动放弃率")
    await expect(row).to_contain_text("预测式")
    await expect(row.locator('td[data-rate="today"]')).to_have_text("5.0%")
    await expect(row.locator('td[data-rate="today"]')).to_have_class("bad")  # above 3 %
    await expect(row.locator('td[data-rate="30d"]')).to_have_text("2.0%")
    await expect(row.locator('td[data-rate="30d"]')).to_have_class("ok")
    await page.locator("section.pooled").screenshot(path=str(artifacts / "board-pooled.png"))
