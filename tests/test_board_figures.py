"""The wallboard's campaign figures from the database, on SQLite and PostgreSQL: per campaign,
the calls dialled, answered, abandoned and renewed since its calling window's start and
today, the rates, and the leads left to call (callcenter/board/figures.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.board.config import BoardSettings
from callcenter.board.figures import BoardFigures
from crm_sync.models import Lead
from dialer.models import CallAttempt, Campaign
from schedules.windows import CallingPlan
from tests.test_dialer_support import seed

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # Monday 16:00 in Shanghai: the 15:30 window


def _at(hh: int, mm: int, days: int = 0) -> datetime:
    """Shanghai wall time today (or `days` later) in UTC."""
    return datetime(2026, 1, 5, hh - 8, mm, tzinfo=UTC) + timedelta(days=days)


async def test_each_campaign_counts_its_window_and_its_day_and_the_leads_left(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        _specs, leads = await seed(
            s,
            specialists=1,
            leads=[
                ("renewal", "7", 0),
                ("renewal", "7", 0),
                ("renewal", "7", 0),
                ("lapsed", "7", 0),
                ("callback", "7", None),
            ],
        )
        s.add_all(
            [
                Campaign(name="renewal", kind="renewal", mode="seat_first", running=True),
                Campaign(name="lapsed", kind="lapsed", mode="seat_first", running=False),
                Campaign(name="callback", kind="callback", mode="automatic", running=True),
            ]
        )
        later = await s.get(Lead, leads[2])
        assert later is not None
        later.next_attempt_at = NOW + timedelta(hours=1)  # not due yet: not left to call
        calls = [
            # (lead, kind, sent at, outcome, contact result)
            (leads[0], "renewal", _at(10, 0), "answered", None),  # today, morning window
            (leads[0], "renewal", _at(15, 40), "answered", "renewed"),
            (leads[1], "renewal", _at(15, 45), "answered_hung_up_early", None),
            (leads[1], "renewal", _at(15, 50), "abandoned", None),
            (leads[1], "renewal", _at(15, 55), "not_sent", None),  # not a call
            (leads[0], "renewal", _at(15, 40, days=-1), "answered", None),  # yesterday
            (leads[3], "lapsed", _at(15, 35), "no_answer", None),
        ]
        for i, (lead, kind, sent, outcome, result) in enumerate(calls):
            s.add(
                CallAttempt(
                    attempt_id=f"att-{i}",
                    lead_id=lead,
                    number=f"1380000000{i}",
                    mode="seat_first",
                    campaign_kind=kind,
                    ami_server="pbx1",
                    state="ended",
                    outcome=outcome,
                    contact_result=result,
                    sent_at=sent,
                    ended_at=sent + timedelta(minutes=1),
                )
            )
        await s.commit()
    figures = BoardFigures(sessions, CallingPlan().for_kind, BoardSettings(), "Asia/Shanghai")
    by_name = {c["name"]: c for c in (await figures({}, NOW))["campaigns"]}
    renewal = by_name["renewal"]
    assert renewal["window_start"] == _at(15, 30).isoformat()
    window = {k: renewal["window"][k] for k in ("dialled", "answered", "abandoned", "renewed")}
    assert window == {"dialled": 3, "answered": 2, "abandoned": 1, "renewed": 1}
    today = renewal["today"]
    assert (today["dialled"], today["answered"], today["abandoned"]) == (4, 3, 1)
    assert today["answer_rate"] == 1.0 and today["abandon_rate"] == 0.25
    assert renewal["rolling"]["dialled"] == 5, "yesterday's call is in the 30 days"
    assert renewal["window"]["left"] == 2, "the lead whose next try is later is not left"
    lapsed = by_name["lapsed"]
    assert (lapsed["window"]["dialled"], lapsed["today"]["answered"]) == (1, 0)
    assert lapsed["window"]["left"] == 1
    callback = by_name["callback"]
    assert callback["window"]["dialled"] == 0 and callback["window"]["left"] == 1
