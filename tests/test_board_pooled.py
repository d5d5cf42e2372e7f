"""The wallboard's pooled-campaign figures: each pooled campaign's abandon rate today and
over the rolling 30 days, from the pacer's own record (`pool_abandon_days`), with its caps.
On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.board.config import BoardSettings
from callcenter.board.services import BoardFigures
from dialer.models import Campaign, PoolAbandonDay
from schedules.windows import CallingPlan

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
