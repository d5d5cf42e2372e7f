"""A seat's claim: one transaction picks the next lead of the specialist's own queue whose
calling window is open (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: the process's write
guard), inserts the attempt row and commits. **Write before you dial.** Used by the seat
dialer (a ready seat) and by the pre-claims (a seat in wrap-up)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from crm_sync.models import Lead
from dialer import locks, queues
from dialer.campaigns import CampaignInfo, campaign_for
from dialer.models import AttemptState, CallAttempt, DialMode
from dialer.runtime import DialerRuntime
from dialer.seats import Seat
from dialer.state import LiveCall, PbxServer

log = logging.getLogger(__name__)

# Why a claim gave nothing: "empty" (nothing to dial now), "taken" (lost a race for the
# lead: look again), "unwanted" (the seat no longer wants a call; or, for a pre-claim, the
# lead would be a preview, which the specialist must see first).
Claimed = tuple[LiveCall, CampaignInfo] | str


def claimed(
    c: queues.Candidate,
    camp: CampaignInfo,
    server: PbxServer,
    now: datetime,
    *,
    kind: str,
    state: AttemptState = AttemptState.DIALING,
    seat: Seat | None = None,
    owner_id: int | None = None,
) -> tuple[CallAttempt, LiveCall]:
    """A claimed lead: its attempt row (to commit before anything is dialled) and the call in
    flight as this process knows it (a seat's, or an automatic campaign's without one)."""
    attempt_id = queues.new_attempt_id()
    row = CallAttempt(
        attempt_id=attempt_id,
        lead_id=c.lead_id,
        phone_id=c.phone_id,
        number=c.number,
        specialist_id=seat.specialist_id if seat is not None else None,
        seat=seat.device if seat is not None else None,
        mode=camp.mode,
        campaign_id=camp.id,
        campaign_kind=kind,
        ami_server=server.spec.name,
        state=state.value,
        created_at=now,
    )
    live = LiveCall(
        attempt_id,
        c.lead_id,
        c.number,
        c.tz,
        kind,
        camp.mode,
        server.spec.name,
        camp.id,
        row.specialist_id,
        row.seat,
        camp.trunk,
        owner_id=owner_id,
    )
    return row, live


class Claims:
    def __init__(self, rt: DialerRuntime) -> None:
        self.rt = rt
        # Rebuilt at start for the database (`reset`).
        self._queue = queues.SeatQueue(lock=False, daily_cap=rt.config.daily_calls_per_number)

    def reset(self) -> None:
        self._queue = queues.SeatQueue(
            lock=self.rt.pg, daily_cap=self.rt.config.daily_calls_per_number
        )

    async def claim(
        self,
        seat: Seat,
        kinds: Mapping[str, CampaignInfo],
        server: PbxServer,
        now: datetime,
        *,
        pre: bool,
    ) -> Claimed:
        """One claim transaction for the seat's own queue: the first lead whose window is
        open, its attempt committed. Returns the attempt, or why not (`Claimed`)."""
        rt = self.rt
        sid = seat.specialist_id
        wanted = rt.will_dial if pre else (lambda st: st.available)
        rank = locks.PRECLAIM if pre else locks.CLAIM
        async with rt.write_guard(rank), rt.sessions() as s:
            cands = queues.choose(
                await self._queue.candidates(
                    s,
                    sid,
                    list(kinds),
                    now=now,
                    limit=rt.config.claim_batch,
                    day_start=rt.windows.day_start(now),
                ),
                now=now,
                window_kind=lambda c: c.kind,
                is_open=rt.windows.is_open,
                want=1,
            )
            camp = campaign_for(cands[0].kind, kinds) if cands else None
            preview = camp is not None and camp.mode == DialMode.PREVIEW.value
            if camp is None or not wanted(seat) or (pre and preview):
                await s.rollback()
                return "empty" if camp is None else "unwanted"
            state = AttemptState.RESERVED if preview else AttemptState.DIALING
            row, live = claimed(
                cands[0], camp, server, now, kind=cands[0].kind, state=state, seat=seat
            )
            s.add(row)
            try:
                await s.commit()
            except IntegrityError:
                await s.rollback()
                log.info("specialist %s: lead %s taken meanwhile", sid, live.lead_id)
                return "taken"
        rt.live[live.attempt_id] = live
        rt.stats["preclaimed" if pre else "claimed"] += 1
        return live, camp

    async def recheck_delay(self, sid: int, now: datetime) -> float:
        """How long a ready seat with nothing to dial waits before it looks again: until its
        next lead is due, at most `idle_recheck_seconds`."""
        delay = self.rt.config.idle_recheck_seconds
        async with self.rt.sessions() as s:
            nxt = await s.scalar(
                select(func.min(Lead.next_attempt_at)).where(
                    queues.owned_by(sid),
                    Lead.status.in_(queues.SPECIALIST_STATUSES),
                    Lead.next_attempt_at > now,
                )
            )
        if nxt is not None:
            delay = min(delay, max(0.5, (nxt - now).total_seconds() + 0.01))
        return delay


__all__ = ["Claimed", "Claims", "claimed"]
