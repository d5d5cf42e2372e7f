"""A small hand-computed day for the sales and report tests (no tests here).

Monday 2026-01-05 (Asia/Shanghai), branch 一分公司, distribution run at 09:00:
* 王芳 (A): L0 renewal: 10:00 answered 60 s → 成功续保 at 10:02, sale 3000.00 (1 call);
  L1 renewal: 10:05 no answer, 15:40 answered 30 s → 拒绝续保 at 15:41.
* 李娜 (B): L2 renewal: 10:10 busy, 10:20 not sent (not a call); its number found inaccurate
  at 11:00 and a corrected number came back; L3 lapsed: 16:00 abandoned (customer first),
  its number found inaccurate at 16:30, not corrected. L2 and L3 have no result by the
  deadline (Tuesday 17:00).
Points rule for renewals from 2026-01-01: from 0 → 10, from 2000 → 20, from 5000 → 40,
red star +5.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.models import Lead, Phone, PointsRule, Specialist
from dialer.models import CallAttempt, Campaign
from schedules.models import DistributionRun
from tests.test_dialer_support import seed

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 1, 5)


def at(hh: int, mm: int, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=TZ).astimezone(UTC)


@dataclass
class SmallDay:
    a: int  # 王芳
    b: int  # 李娜
    boss: int
    leads: list[int]
    campaign: int


async def make_small_day(sessions: async_sessionmaker[AsyncSession]) -> SmallDay:
    async with sessions() as s:
        specs, leads = await seed(
            s,
            specialists=2,
            leads=[
                ("renewal", "1", 0),
                ("renewal", "2", 0),
                ("renewal", "3", 1),
                ("lapsed", "4", 1),
            ],
            today=DAY,
        )
        for sid, name in zip(specs, ("王芳", "李娜"), strict=True):
            spec = await s.get(Specialist, sid)
            assert spec is not None
            spec.name = name
        boss = Specialist(name="于丽", seat="PJSIP/8999", role="maintainer")
        campaign = Campaign(name="续保外呼", kind="renewal")
        s.add_all([boss, campaign])
        s.add(DistributionRun(day=DAY, started_at=at(9, 0), seed=1))
        s.add(
            PointsRule(
                lead_kind="renewal",
                effective_from=date(2026, 1, 1),
                bands=[
                    {"from": "0", "points": 10},
                    {"from": "2000", "points": 20},
                    {"from": "5000", "points": 40},
                ],
                red_star_bonus=5,
                created_at=at(8, 0),
            )
        )
        await s.flush()
        n = 0

        def attempt(
            lead: int,
            spec: int,
            start: datetime,
            outcome: str,
            talk: float = 0,
            result: str | None = None,
            mode: str = "seat_first",
        ) -> CallAttempt:
            nonlocal n
            n += 1
            return CallAttempt(
                attempt_id=f"att-{n}",
                lead_id=lead,
                number=f"1390000{n:04d}",
                specialist_id=spec,
                mode=mode,
                campaign_id=campaign.id,
                campaign_kind="renewal",
                ami_server="pbx1",
                state="ended",
                outcome=outcome,
                talk_seconds=talk or None,
                contact_result=result,
                created_at=start,
                ended_at=start + timedelta(seconds=20 + talk),
                answered_at=start + timedelta(seconds=10) if talk else None,
            )

        a, b = specs
        s.add_all(
            [
                attempt(leads[0], a, at(10, 0), "answered", 60, "renewed"),
                attempt(leads[1], a, at(10, 5), "no_answer", result="no_answer"),
                attempt(leads[1], a, at(15, 40), "answered", 30, "declined"),
                attempt(leads[2], b, at(10, 10), "busy"),
                attempt(leads[2], b, at(10, 20), "not_sent"),
                attempt(leads[3], b, at(16, 0), "abandoned", mode="customer_first"),
            ]
        )
        l0, l1, l2, l3 = [await s.get(Lead, i) for i in leads]
        assert l0 and l1 and l2 and l3
        l0.contact_result, l0.contact_result_at, l0.attempt_count = "renewed", at(10, 2), 1
        l1.contact_result, l1.contact_result_at, l1.attempt_count = "declined", at(15, 41), 2
        l2.attempt_count, l3.attempt_count = 1, 1
        for lead, when in ((l2, at(11, 0)), (l3, at(16, 30))):
            phone = await s.get(Phone, lead.phone_id)
            assert phone is not None
            phone.accuracy, phone.accuracy_set_at = "inaccurate", when
        l2_phone = await s.get(Phone, l2.phone_id)
        assert l2_phone is not None
        s.add(
            Phone(
                customer_id=l2_phone.customer_id,
                role="corrected",
                raw="13800000000",
                e164="+8613800000000",
                kind="mobile",
            )
        )
        await s.commit()
        return SmallDay(a, b, boss.id, leads, campaign.id)


PREMIUM = Decimal("3000.00")
