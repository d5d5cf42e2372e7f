"""Restore after a restart: the seats signed in when the last process ended, and the
attempts it left in flight on this engine's servers.

A seat comes back in its state (its wrap-up timer died with the process: `Seat.restore`); an
attempt in flight is registered with its server's tracker and waits for the reconciliation
after the link's first resync (`dialer.call_events`); a preview reservation is dropped
(skipped) at once."""

from __future__ import annotations

import logging

from sqlalchemy import select

from crm_sync.models import Customer, Lead, Policy
from dialer.domain import AttemptRestored
from dialer.models import AttemptState, CallAttempt, SeatSession, SeatState
from dialer.outcomes import SKIPPED
from dialer.results import Finished
from dialer.runtime import DialerRuntime
from dialer.seats import Seat
from dialer.state import TRACKER_MODE, LiveCall
from schedules.windows import DEFAULT_TZ

log = logging.getLogger(__name__)


class Restore:
    def __init__(self, rt: DialerRuntime) -> None:
        self.rt = rt

    async def run(self) -> None:
        rt = self.rt
        async with rt.sessions() as s:
            for row in (await s.scalars(select(SeatSession))).all():
                state = SeatState(row.state)
                if state is SeatState.OFFLINE:
                    continue
                seat = Seat(
                    row.specialist_id,
                    row.seat,
                    state=state,
                    since=row.since,
                    pause_reason=row.pause_reason,
                    attempt_id=row.attempt_id,
                )
                rt.seats[row.specialist_id] = seat
                # The wrap-up timer died with the process.
                rt.record(seat, seat.restore(rt.clock.now()))
            rows = (
                await s.execute(
                    select(CallAttempt, Customer.time_zone)
                    .join(Lead, Lead.id == CallAttempt.lead_id)
                    .join(Policy, Policy.id == Lead.policy_id)
                    .join(Customer, Customer.id == Policy.policyholder_id)
                    .where(
                        CallAttempt.ended_at.is_(None),
                        CallAttempt.ami_server.in_(list(rt.servers)),
                    )
                )
            ).all()
        mono = rt.clock.monotonic()
        for attempt, tz in rows:
            await self._attempt(attempt, tz or DEFAULT_TZ, mono)

    async def _attempt(self, attempt: CallAttempt, tz: str, mono: float) -> None:
        rt = self.rt
        live = LiveCall(
            attempt.attempt_id,
            attempt.lead_id,
            attempt.number,
            tz,
            attempt.campaign_kind,
            attempt.mode,
            attempt.ami_server,
            attempt.campaign_id,
            attempt.specialist_id,
            attempt.seat,
            recording=attempt.recording_file,
        )
        rt.live[live.attempt_id] = live
        if attempt.state == AttemptState.RESERVED.value:
            reason = "preview reservation dropped by a restart"
            await rt.finish(live, Finished(live.attempt_id, SKIPPED, reason=reason))
            return
        rt.bus.publish(AttemptRestored(live))
        rt.servers[live.server].tracker.register(
            live.attempt_id,
            TRACKER_MODE.get(live.mode),
            seat=live.seat,
            number=live.number,
            started_at=mono,
            channel_id=live.attempt_id,
        )
        held = rt.seats.get(live.specialist_id or -1)
        if held is not None:
            rt.record(held, held.restore(rt.clock.now(), live.attempt_id))
        log.info("attempt %s: in flight at start, waiting for reconciliation", live.attempt_id)


__all__ = ["Restore"]
