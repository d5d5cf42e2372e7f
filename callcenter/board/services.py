"""The board's services: a supervisor's actions on a live call (the figures and alerts are
`callcenter.board.figures`).

A supervisor's action is written first (`supervisor_actions`: who, whom, when, what) and
carried out by the process that owns the call (its AMI link): at once when that is this
process; else the row is addressed to the owner, NOTIFY `callcenter_board_action` wakes it,
and this process waits for the row's status. Every action, done or failed, stays in the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from callcenter.board.models import SupervisorAction
from common.clock import Clock
from common.errors import DomainError, NotFound
from common.principal import Principal
from crm_sync.models import Specialist
from dialer import supervise
from dialer.engine import DialerEngine
from dialer.exceptions import SupervisorActionFailed

log = logging.getLogger(__name__)

ACTIONS_CHANNEL = "callcenter_board_action"
ACTIONS = (*supervise.SPY_MODES, "hangup", "move")  # on a live call
SEAT_ACTIONS = ("unpause",)  # on a seat (the board's alerts)


class NotASupervisor(DomainError):
    status = 403


class BadAction(DomainError):
    status = 400


class NoSuchCall(NotFound):
    pass


class NoSeat(DomainError):
    status = 409


class NotPaused(DomainError):
    status = 409


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
        seats: Callable[[str], tuple[str, dict[str, Any]] | None] = lambda _k: None,
        tz: str = "Asia/Shanghai",
    ) -> None:
        self.tz = tz
        self.sessions = sessions
        self.clock = clock
        self.engine = engine
        self.owner = owner
        self.calls = calls  # attempt id -> (owner process, call entry) from the board
        self.seats = seats  # specialist id -> (owner process, seat entry) from the board
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
            own_seat = await s.scalar(select(Specialist.seat).where(Specialist.id == who.user_id))
            target = await self._target_seat(s, action, to, own_seat)
        return await self._request(
            who, action, owner, attempt_id, call.get("specialist_id"), target
        )

    async def end_pause(self, who: Principal, specialist_id: int) -> dict[str, Any]:
        """A supervisor ends a seat's pause (the board's "paused too long" alert): the seat
        becomes ready, on the process it is signed in on; audited as `unpause`."""
        if not who.is_supervisor:
            raise NotASupervisor("ending a specialist's pause is for supervisors")
        found = self.seats(str(specialist_id))
        if found is None or found[1].get("state") != "paused":
            raise NotPaused(f"specialist {specialist_id} is not paused (any more)")
        owner, seat = found
        return await self._request(who, "unpause", owner, "", specialist_id, seat.get("seat"))

    async def _request(
        self,
        who: Principal,
        action: str,
        owner: str,
        attempt_id: str,
        specialist_id: int | None,
        target: str | None,
    ) -> dict[str, Any]:
        """Write the audit row addressed to the owner process, have it carried out (here, or
        by the owner woken by NOTIFY), and wait for how it went."""
        async with self.sessions() as s:
            self._pg = s.get_bind().dialect.name == "postgresql"
            row = SupervisorAction(
                supervisor_id=who.user_id,
                action=action,
                attempt_id=attempt_id,
                specialist_id=specialist_id,
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
            specialist_id,
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
        if row.action == "unpause":
            seat = engine.seats.get(row.specialist_id or -1)
            if seat is None or seat.state.value != "paused":
                raise SupervisorActionFailed("the seat is not paused any more")
            await engine.set_ready(seat.specialist_id)
            return None
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
            if row.target_seat is None:
                raise SupervisorActionFailed("no seat to move the call to")
            return await engine.move_call(row.attempt_id, row.target_seat)
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

    async def log(self, limit: int = 100, **filters: Any) -> list[dict[str, Any]]:
        """The audit log, newest first, with the names of who and whom (see `audit_filter`)."""
        a = SupervisorAction
        boss, whom = aliased(Specialist), aliased(Specialist)
        async with self.sessions() as s:
            rows = (
                await s.execute(
                    select(a, boss.name, whom.name)
                    .join(boss, boss.id == a.supervisor_id)
                    .outerjoin(whom, whom.id == a.specialist_id)
                    .where(*audit_filter(self.tz, **filters))
                    .order_by(a.id.desc())
                    .limit(limit)
                    .offset(filters.get("offset") or 0)
                )
            ).all()
        return [{**action_view(r), "supervisor_name": b, "specialist_name": w} for r, b, w in rows]


def audit_filter(
    tz: str,
    *,
    action: str | None = None,
    status: str | None = None,
    supervisor: int | None = None,
    specialist: int | None = None,
    since: date | None = None,
    until: date | None = None,
    offset: int | None = None,
) -> list[ColumnElement[bool]]:
    """The audit log's filters: what, how it went, who, whom, and the days (desk time,
    `until` included)."""
    del offset
    a = SupervisorAction
    z = ZoneInfo(tz)
    out: list[ColumnElement[bool]] = []
    if action:
        out.append(a.action == action)
    if status:
        out.append(a.status == status)
    if supervisor:
        out.append(a.supervisor_id == supervisor)
    if specialist:
        out.append(a.specialist_id == specialist)
    if since:
        out.append(a.requested_at >= datetime.combine(since, time(0), tzinfo=z))
    if until:
        out.append(a.requested_at < datetime.combine(until + timedelta(days=1), time(0), tzinfo=z))
    return out


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
