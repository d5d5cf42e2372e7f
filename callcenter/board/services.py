"""The board's services: the figures and alerts (database queries over the rules of
`callcenter.board.rules`), and a supervisor's actions on a live call.

A supervisor's action is written first (`supervisor_actions`: who, whom, when, what) and
carried out by the process that owns the call (its AMI link): at once when that is this
process; else the row is addressed to the owner, NOTIFY `callcenter_board_action` wakes it,
and this process waits for the row's status. Every action, done or failed, stays in the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, case, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from callcenter.board import rules
from callcenter.board.config import BoardSettings
from callcenter.board.models import SupervisorAction
from callcenter.board.rules import Key
from callcenter.pages.services import previous_working_day
from common.clock import Clock
from common.errors import DomainError, NotFound
from common.principal import Principal
from crm_sync.models import Lead, LeadStatus, OutboxMessage, OutboxState, Specialist
from dialer import supervise
from dialer.engine import DialerEngine
from dialer.exceptions import SupervisorActionFailed
from dialer.models import CallAttempt, Campaign, CampaignKind
from dialer.outcomes import ABANDONED, ANSWERED_OUTCOMES, counts_as_call_sql
from dialer.pool import abandon_rates
from dialer.queues import AUTOMATIC_STATUSES, SPECIALIST_STATUSES
from schedules.windows import CallingHours

log = logging.getLogger(__name__)

ACTIONS_CHANNEL = "callcenter_board_action"
ACTIONS = (*supervise.SPY_MODES, "hangup", "move")
ROLLING = timedelta(days=30)
ROLLING_REFRESH = timedelta(minutes=1)  # the 30-day figures are a heavier query
RENEWED = "renewed"  # the contact result 成功续保


class NotASupervisor(DomainError):
    status = 403


class BadAction(DomainError):
    status = 400


class NoSuchCall(NotFound):
    pass


class NoSeat(DomainError):
    status = 409


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

    async def __call__(
        self, entries: Mapping[Key, dict[str, Any]], now: datetime
    ) -> dict[str, Any]:
        async with self.sessions() as s:
            campaigns = await self._campaigns(s, now)
            pooled = await self._pooled(s, now)
            missing, deadline = await self._deadline(s, now)
            pending, oldest = await self._outbox(s)
            names = {
                str(i): n
                for i, n in (await s.execute(select(Specialist.id, Specialist.name))).all()
            }
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
        return {"campaigns": campaigns, "pooled": pooled, "alerts": alerts, "names": names}

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
        out = []
        for name, kind, mode, running in camps:
            start = window_start(self.hours_for(kind), now, self.tz)
            row = (
                await s.execute(
                    select(*_sums(start), *_sums(day_start)).where(
                        CallAttempt.campaign_kind == kind, CallAttempt.sent_at >= day_start
                    )
                )
            ).one_or_none()
            out.append(
                {
                    "name": name,
                    "kind": kind,
                    "mode": mode,
                    "running": running,
                    "window_start": start.isoformat(),
                    "window": {**_counts(row, 0), "left": await self._left(s, kind, now)},
                    "today": _with_rates(_counts(row, 4)),
                    "rolling": _with_rates(self._rolling.get(kind) or _counts(None, 0)),
                }
            )
        return out

    @staticmethod
    async def _left(s: AsyncSession, kind: str, now: datetime) -> int | None:
        """Leads of the kind that may be called now (open, with a phone, next try passed)."""
        if kind == CampaignKind.REMINDER.value:
            return None  # the reminder's list is the renewal leads' T−30 day (schedules.timeline)
        statuses = (
            AUTOMATIC_STATUSES if kind == CampaignKind.CALLBACK.value else SPECIALIST_STATUSES
        )
        n = await s.scalar(
            select(func.count())
            .select_from(Lead)
            .where(
                Lead.kind == kind,
                Lead.status.in_(statuses),
                Lead.phone_id.is_not(None),
                (Lead.next_attempt_at.is_(None)) | (Lead.next_attempt_at <= now),
            )
        )
        return int(n or 0)

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


class Supervising:
    """Listen, whisper, barge, hang up, move: checked, logged, carried out by the call's owner."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        engine: DialerEngine,
        owner: str,
        calls: Callable[[str], tuple[str, dict[str, Any]] | None],
        wait_seconds: float = 15.0,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.engine = engine
        self.owner = owner
        self.calls = calls  # attempt id -> (owner process, call entry) from the board
        self.wait_seconds = wait_seconds
        self._pg: bool | None = None

    async def act(
        self, who: Principal, attempt_id: str, action: str, to: str | None = None
    ) -> dict[str, Any]:
        if not who.is_supervisor:
            raise NotASupervisor("listening in and taking over calls are for supervisors")
        if action not in ACTIONS:
            raise BadAction(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
        found = self.calls(attempt_id)
        if found is None:
            raise NoSuchCall(f"no live call {attempt_id}: it may have just ended")
        owner, call = found
        async with self.sessions() as s:
            self._pg = s.get_bind().dialect.name == "postgresql"
            own_seat = await s.scalar(select(Specialist.seat).where(Specialist.id == who.user_id))
            target = await self._target_seat(s, action, to, own_seat)
            row = SupervisorAction(
                supervisor_id=who.user_id,
                action=action,
                attempt_id=attempt_id,
                specialist_id=call.get("specialist_id"),
                target_seat=target,
                owner=owner,
                status="pending",
                requested_at=self.clock.now(),
            )
            s.add(row)
            await s.flush()
            action_id = row.id
            if owner != self.owner and self._pg:
                await s.execute(
                    text("SELECT pg_notify(:c, :p)"),
                    {"c": ACTIONS_CHANNEL, "p": f"{owner} {action_id}"},
                )
            await s.commit()
        log.info(
            "supervisor %s: %s on %s (specialist %s), action %s",
            who.user_id,
            action,
            attempt_id,
            call.get("specialist_id"),
            action_id,
        )
        if owner == self.owner:
            await self.carry_out(action_id)
        return await self._outcome(action_id)

    async def _target_seat(
        self, s: AsyncSession, action: str, to: str | None, own_seat: str | None
    ) -> str | None:
        if action in supervise.SPY_MODES:
            if not own_seat:
                raise NoSeat("you have no seat to listen on: a supervisor needs a seat (PJSIP/…)")
            return own_seat
        if action != "move":
            return None
        if not to:
            raise BadAction("move needs `to`: the specialist id or seat to move the call to")
        seat = await s.scalar(
            select(Specialist.seat).where(
                (Specialist.seat == to)
                | (Specialist.id == (int(to) if to.isdigit() and len(to) < 10 else -1))
            )
        )
        if not seat:
            raise NoSuchCall(f"no seat {to!r}")
        return seat

    async def carry_out(self, action_id: int) -> None:
        """On the call's owner: claim the pending row, do it over AMI, write how it went."""
        async with self.sessions() as s:
            claimed = await s.execute(
                update(SupervisorAction)
                .where(
                    SupervisorAction.id == action_id,
                    SupervisorAction.owner == self.owner,
                    SupervisorAction.status == "pending",
                )
                .values(status="running")
            )
            await s.commit()
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return
            row = await s.get(SupervisorAction, action_id)
            assert row is not None
            status, channel, message = "done", None, None
            try:
                channel = await self._do(row)
            except SupervisorActionFailed as exc:
                status, message = "failed", exc.reason
            except Exception as exc:
                log.exception("supervisor action %s failed", action_id)
                status, message = "failed", f"internal error: {exc.__class__.__name__}"
            row.status, row.channel, row.message = status, channel, message
            row.done_at = self.clock.now()
            await s.commit()

    async def _do(self, row: SupervisorAction) -> str | None:
        engine = self.engine
        live = engine.live_attempt(row.attempt_id)
        pbx = engine.pbx(live.server) if live is not None else None
        if live is None or pbx is None:
            raise SupervisorActionFailed("the call has ended")
        timeout = engine.config.action_timeout
        channels = pbx.tracker.live_channels(row.attempt_id)
        if row.action == "hangup":
            if not await engine.hang_up(row.attempt_id):
                raise SupervisorActionFailed(
                    "Asterisk did not hang the call up (it may have ended)"
                )
            return channels[0] if channels else None
        if row.action == "move":
            channel = supervise.customer_channel(channels, live.seat)
            if channel is None or row.target_seat is None:
                raise SupervisorActionFailed("the customer is not on the line")
            await supervise.move(
                pbx.link, channel, row.target_seat, pbx.spec.plan, timeout, row.attempt_id
            )
            return channel
        channel = supervise.spied_channel(channels, live.seat)
        if channel is None or row.target_seat is None:
            raise SupervisorActionFailed("the call has no channel to listen to yet: try again")
        req = supervise.SpyRequest(row.action, row.target_seat, channel, f"spy-{row.id}")
        await supervise.listen_in(pbx.link, req, pbx.spec.plan, timeout)
        return channel

    async def _outcome(self, action_id: int) -> dict[str, Any]:
        """The row once carried out (another process's: waited for, in real time)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_seconds
        while True:
            async with self.sessions() as s:
                row = await s.get(SupervisorAction, action_id)
            assert row is not None
            if row.status in ("done", "failed") or loop.time() > deadline:
                break
            await asyncio.sleep(0.05)
        view = action_view(row)
        if row.status == "failed":
            raise SupervisorActionFailed(f"{row.action} failed: {row.message}")
        if row.status != "done":
            raise SupervisorActionFailed(
                f"{row.action} was not confirmed by the process owning the call ({row.owner}) "
                "in time: see the audit log"
            )
        return view

    async def pending_for_me(self) -> list[int]:
        async with self.sessions() as s:
            return list(
                (
                    await s.scalars(
                        select(SupervisorAction.id).where(
                            SupervisorAction.owner == self.owner,
                            SupervisorAction.status == "pending",
                        )
                    )
                ).all()
            )

    async def log(self, limit: int = 100) -> list[dict[str, Any]]:
        async with self.sessions() as s:
            rows = (
                await s.scalars(
                    select(SupervisorAction).order_by(SupervisorAction.id.desc()).limit(limit)
                )
            ).all()
        return [action_view(r) for r in rows]


def action_view(row: SupervisorAction) -> dict[str, Any]:
    return {
        "id": row.id,
        "supervisor_id": row.supervisor_id,
        "action": row.action,
        "attempt_id": row.attempt_id,
        "specialist_id": row.specialist_id,
        "target_seat": row.target_seat,
        "channel": row.channel,
        "status": row.status,
        "message": row.message,
        "requested_at": row.requested_at.isoformat(),
        "done_at": row.done_at.isoformat() if row.done_at else None,
    }
