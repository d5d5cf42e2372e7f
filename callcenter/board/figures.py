"""The board's figures and alerts: each campaign's progress in the current calling window,
its answer and abandon rates (today and rolling 30 days), the pooled campaigns' abandon
rates, node 3's deadline and the CRM outbox, as database queries over the rules of
`callcenter.board.rules`; the hub asks for them every few seconds (callcenter.board.live)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from callcenter.board import rules
from callcenter.board.config import BoardSettings
from callcenter.board.remedies import with_actions
from callcenter.board.rules import Key
from callcenter.pages.services import previous_working_day
from crm_sync.models import Lead, LeadStatus, OutboxMessage, OutboxState, Specialist
from dialer.models import CallAttempt, Campaign, CampaignKind
from dialer.outcomes import ABANDONED, ANSWERED_OUTCOMES, counts_as_call_sql
from dialer.pool import abandon_rates
from dialer.queues import AUTOMATIC_STATUSES, SPECIALIST_STATUSES
from schedules.windows import CallingHours

ROLLING = timedelta(days=30)
ROLLING_REFRESH = timedelta(minutes=1)  # the 30-day figures are a heavier query
RENEWED = "renewed"  # the contact result 成功续保


def _sums(since: datetime) -> list[ColumnElement[Any]]:
    a = CallAttempt
    recent = a.sent_at >= since

    def count(cond: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.sum(case((recent & cond, 1), else_=0)).cast(Integer)

    return [
        count(counts_as_call_sql(a.outcome)),
        count(a.outcome.in_(sorted(ANSWERED_OUTCOMES))),
        count(a.outcome == ABANDONED.value),
        count(a.contact_result == RENEWED),
    ]


def _counts(row: Any, offset: int) -> dict[str, int]:
    names = ("dialled", "answered", "abandoned", "renewed")
    return {n: int(row[offset + i] or 0) if row is not None else 0 for i, n in enumerate(names)}


def _with_rates(counts: dict[str, int]) -> dict[str, Any]:
    picked_up = counts["answered"] + counts["abandoned"]
    return {
        **counts,
        "answer_rate": rules.rate(picked_up, counts["dialled"]),
        "abandon_rate": rules.abandon_rate(counts["abandoned"], counts["answered"]),
    }


def window_start(hours: CallingHours, now: datetime, tz: str) -> datetime:
    """The current calling window's start; between windows, the last one's today; before
    the first, the day's start."""
    current = hours.current_slot(now, tz)
    if current is not None:
        return current.start
    today = [s for s in hours.slots_on(hours.local_date(now, tz), tz) if s.start <= now]
    return today[-1].start if today else hours.day_start(now, tz)


class BoardFigures:
    """Campaign progress, rates and the alerts, for the hub (one query round per interval
    for every open board)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hours_for: Callable[[str], CallingHours],
        cfg: BoardSettings,
        tz: str,
        result_deadline: time = time(17, 0),
    ) -> None:
        self.sessions = sessions
        self.hours_for = hours_for
        self.cfg = cfg
        self.tz = tz
        self.result_deadline = result_deadline
        self._rolling: dict[str, dict[str, int]] = {}
        self._rolling_at: datetime | None = None
        self._known_names: dict[str, str] = {}
        self._names_at: datetime | None = None

    async def __call__(
        self, entries: Mapping[Key, dict[str, Any]], now: datetime
    ) -> dict[str, Any]:
        async with self.sessions() as s:
            campaigns = await self._campaigns(s, now)
            pooled = await self._pooled(s, now)
            missing, deadline = await self._deadline(s, now)
            pending, oldest = await self._outbox(s)
            names = await self._names(s, entries, now)
        seats = [v for k, v in entries.items() if k[0] == "seat"]
        links = [v for k, v in entries.items() if k[0] == "link"]
        processes = [v for k, v in entries.items() if k[0] == "process"]
        alerts = [
            *rules.link_alerts(links, rules.stale_owners(processes, now, self.cfg)),
            *rules.campaign_alerts(campaigns, self.cfg),
            *rules.deadline_alert(missing, deadline, now, self.cfg),
            *rules.outbox_alert(pending, oldest, now, self.cfg),
            *rules.seat_alerts(seats, now, self.cfg),
        ]
        alerts = with_actions(alerts, campaigns)  # what a supervisor can do about each
        return {"campaigns": campaigns, "pooled": pooled, "alerts": alerts, "names": names}

    async def _names(
        self, s: AsyncSession, entries: Mapping[Key, dict[str, Any]], now: datetime
    ) -> dict[str, str]:
        """The specialists' names: read again once a minute (a rename), or at once when the
        board shows someone it has no name for (a new specialist), not on every round."""
        shown = {
            str(v["specialist_id"])
            for k, v in entries.items()
            if k[0] in ("seat", "call") and v.get("specialist_id") is not None
        }
        stale = self._names_at is None or now - self._names_at >= ROLLING_REFRESH
        if stale or not shown <= self._known_names.keys():
            rows = (await s.execute(select(Specialist.id, Specialist.name))).all()
            self._known_names = {str(i): n for i, n in rows}
            self._names_at = now
        return self._known_names

    async def _pooled(self, s: AsyncSession, now: datetime) -> list[dict[str, Any]]:
        """Each pooled campaign's abandon rates as its pacer counts them (live answers and
        abandons, `pool_abandon_days`): today's and the rolling 30 days', with its caps."""
        camps = (
            await s.scalars(select(Campaign).where(Campaign.pooled.is_(True)).order_by(Campaign.id))
        ).all()
        out = []
        for c in camps:
            today = self.hours_for(c.kind).local_date(now, self.tz)
            out.append(
                {
                    "name": c.name,
                    "kind": c.kind,
                    "running": c.running,
                    "pacing": c.pacing,
                    "pacing_ratio_cap": c.pacing_ratio_cap,
                    "target_abandon": c.target_abandon,
                    "abandon_cap": c.abandon_cap,
                    **await abandon_rates(s, c.id, today),
                }
            )
        return out

    async def _campaigns(self, s: AsyncSession, now: datetime) -> list[dict[str, Any]]:
        """Every campaign's counts in two grouped queries (not two per campaign: the figures
        run every second or so on a busy desk, on the event loop the dialer shares)."""
        camps = (
            await s.execute(
                select(Campaign.name, Campaign.kind, Campaign.mode, Campaign.running).order_by(
                    Campaign.id
                )
            )
        ).all()
        day_start = self.hours_for(CampaignKind.RENEWAL.value).day_start(now, self.tz)
        if self._rolling_at is None or now - self._rolling_at >= ROLLING_REFRESH:
            rows = await s.execute(
                select(CallAttempt.campaign_kind, *_sums(now - ROLLING))
                .where(CallAttempt.sent_at >= now - ROLLING)
                .group_by(CallAttempt.campaign_kind)
            )
            self._rolling = {r[0]: _counts(r, 1) for r in rows.all()}
            self._rolling_at = now
        starts = {kind: window_start(self.hours_for(kind), now, self.tz) for _, kind, _, _ in camps}
        today = await self._today(s, starts, day_start)
        left = await self._left(s, now)
        return [
            {
                "name": name,
                "kind": kind,
                "mode": mode,
                "running": running,
                "window_start": starts[kind].isoformat(),
                "window": {**_counts(today.get(kind), 1), "left": left.get(kind)},
                "today": _with_rates(_counts(today.get(kind), 5)),
                "rolling": _with_rates(self._rolling.get(kind) or _counts(None, 0)),
            }
            for name, kind, mode, running in camps
        ]

    @staticmethod
    async def _today(
        s: AsyncSession, starts: Mapping[str, datetime], day_start: datetime
    ) -> dict[str, Any]:
        """Per campaign kind: the counts since its calling window's start, then today's."""
        a = CallAttempt
        window: Any = day_start
        if starts:
            window = case(
                {k: literal(v, a.sent_at.type) for k, v in starts.items()},
                value=a.campaign_kind,
                else_=literal(day_start, a.sent_at.type),
            )
        rows = await s.execute(
            select(a.campaign_kind, *_sums(window), *_sums(day_start))
            .where(a.sent_at >= day_start)
            .group_by(a.campaign_kind)
        )
        return {r[0]: r for r in rows.all()}

    @staticmethod
    async def _left(s: AsyncSession, now: datetime) -> dict[str, int | None]:
        """Per kind, the leads that may be called now (open, with a phone, next try passed);
        none for the reminder, whose list is the renewal leads' T−30 day (schedules.timeline)."""
        callback = Lead.kind == CampaignKind.CALLBACK.value
        rows = await s.execute(
            select(Lead.kind, func.count())
            .where(
                Lead.kind != CampaignKind.REMINDER.value,
                (callback & Lead.status.in_(AUTOMATIC_STATUSES))
                | (~callback & Lead.status.in_(SPECIALIST_STATUSES)),
                Lead.phone_id.is_not(None),
                (Lead.next_attempt_at.is_(None)) | (Lead.next_attempt_at <= now),
            )
            .group_by(Lead.kind)
        )
        counts: dict[str, int | None] = {
            k.value: 0 for k in CampaignKind if k is not CampaignKind.REMINDER
        }
        counts.update({str(kind): int(n) for kind, n in rows.all()})
        counts[CampaignKind.REMINDER.value] = None
        return counts

    async def _deadline(self, s: AsyncSession, now: datetime) -> tuple[int, datetime]:
        hours = self.hours_for(CampaignKind.RENEWAL.value)
        today: date = hours.local_date(now, self.tz)
        deadline = datetime.combine(today, self.result_deadline, tzinfo=ZoneInfo(self.tz))
        if not hours.is_calling_day(today):
            return 0, deadline
        handed_on = previous_working_day(hours, today)
        n = await s.scalar(
            select(func.count())
            .select_from(Lead)
            .where(
                Lead.distributed_on == handed_on,
                Lead.contact_result.is_(None),
                Lead.status != LeadStatus.CLOSED.value,
            )
        )
        return int(n or 0), deadline

    @staticmethod
    async def _outbox(s: AsyncSession) -> tuple[int, datetime | None]:
        row = (
            await s.execute(
                select(func.count(), func.min(OutboxMessage.created_at)).where(
                    OutboxMessage.state == OutboxState.PENDING.value,
                    OutboxMessage.delivered_at.is_(None),
                )
            )
        ).one()
        return int(row[0] or 0), row[1]
