"""The seat dialer unit: a seat that becomes ready gets its next call.

A seat becomes ready (sign-in, end of wrap-up, a call that ended unanswered: `SeatChanged`)
or a timer fires: the dispatcher claims under one of `claim_parallelism` slots
(`dialer.claims`) and sends outside it (`SendCall`), so a seat waiting for its trunk's pace
does not hold up the claims of other seats. A preview lead is offered to the seat instead of
dialled. A seat in wrap-up has its next lead pre-claimed (`dialer.preclaims`). When a call
of a seat is settled (`AttemptSettled`) the seat goes to wrap-up or back to ready."""

from __future__ import annotations

import asyncio
import logging

from dialer.campaigns import CampaignInfo, CampaignRegistry
from dialer.claims import Claims
from dialer.domain import AttemptSettled, CampaignChanged, PbxLinkBack, SeatChanged
from dialer.models import DialMode
from dialer.outcomes import NOT_SENT
from dialer.preclaims import PreClaims
from dialer.results import Finished
from dialer.runtime import DialerRuntime
from dialer.seats import SeatState
from dialer.state import LiveCall

log = logging.getLogger(__name__)

Todo = tuple[LiveCall, CampaignInfo | None]


class SeatDialer:
    def __init__(self, rt: DialerRuntime, registry: CampaignRegistry) -> None:
        self.rt = rt
        self.registry = registry
        self.claims = Claims(rt)
        self.pre = PreClaims(rt, registry, self.claims, wake=self.wake, wake_later=self.wake_later)
        self._wake_q: asyncio.Queue[int] = asyncio.Queue()
        self._queued: set[int] = set()
        self._claim_slots = asyncio.Semaphore(rt.config.claim_parallelism)
        bus = rt.bus
        bus.subscribe(SeatChanged, self._on_seat)
        bus.subscribe(AttemptSettled, self._on_settled)
        bus.subscribe(CampaignChanged, self._on_campaign_changed)
        bus.subscribe(PbxLinkBack, self._on_link_back)

    # -- what wakes a seat ---------------------------------------------------------------------

    def _on_seat(self, e: SeatChanged) -> None:
        seat = self.rt.seats.get(e.specialist_id)
        if seat is not None and seat.available:
            self.rt.mark_ready(seat.specialist_id)
            self.wake(seat.specialist_id)

    def _on_campaign_changed(self, e: CampaignChanged) -> None:
        c = e.campaign
        if self.rt.running and c.mode != DialMode.AUTOMATIC.value and c.running:
            self.wake_available()

    def _on_link_back(self, e: PbxLinkBack) -> None:
        server = self.rt.servers[e.server]
        for sid, seat in self.rt.seats.items():
            if seat.available and self.rt.server_for_seat(seat.device) is server:
                self.wake(sid)

    def wake_available(self, *, mark: bool = False) -> None:
        for sid, seat in self.rt.seats.items():
            if seat.available:
                if mark:
                    self.rt.mark_ready(sid)
                self.wake(sid)

    def _on_settled(self, e: AttemptSettled) -> None:
        live, eff, now = e.live, e.effects, e.at
        if eff is None:
            return
        seat = self.rt.seats.get(live.specialist_id or -1)
        if seat is None or seat.attempt_id != live.attempt_id:
            return
        if seat.state not in (SeatState.RINGING, SeatState.ON_CALL):
            self.rt.record(seat, seat.withdraw(now, f"attempt ended: {e.finished.outcome}"))
            return
        talked = eff.talked or live.answered
        wrap = self.rt.config.wrap_up_seconds if talked else 0.0
        self.rt.record(seat, seat.call_end(now, wrap, talked=talked))
        if seat.state is SeatState.WRAP_UP:
            self.wrap_up_later(seat.specialist_id, wrap)
            if seat.pending_pause is None:
                self.pre.later(seat.specialist_id)

    def wake(self, specialist_id: int) -> None:
        """Ask the dispatcher to look for a call for this seat."""
        if not self.rt.running:
            return
        if self.pre.has(specialist_id):
            self.pre.dial_soon(specialist_id)
            return
        if specialist_id in self._queued:
            return
        self._queued.add(specialist_id)
        self._wake_q.put_nowait(specialist_id)

    def wake_later(self, specialist_id: int, seconds: float) -> None:
        tasks, clock = self.rt.tasks, self.rt.clock
        if not self.rt.running:
            tasks.timer(specialist_id, None)
            return

        async def fire() -> None:
            await clock.sleep(seconds)
            tasks.timer_fired(specialist_id)
            self.wake(specialist_id)

        tasks.timer(specialist_id, fire())

    def wrap_up_later(self, specialist_id: int, seconds: float) -> None:
        tasks, clock = self.rt.tasks, self.rt.clock

        async def fire() -> None:
            await clock.sleep(seconds)
            tasks.timer_fired(specialist_id)
            seat = self.rt.seats.get(specialist_id)
            if seat is not None:
                self.rt.record(seat, seat.wrap_done(clock.now()))

        tasks.timer(specialist_id, fire())

    # -- dispatching and dialling ----------------------------------------------------------------

    async def run(self) -> None:
        """The dispatcher: one woken seat at a time, each claim under a slot."""
        while True:
            sid = await self._wake_q.get()
            self._queued.discard(sid)
            await self._claim_slots.acquire()
            self.rt.tasks.job(self._dial_guarded(sid))

    async def _dial_guarded(self, sid: int) -> None:
        """Claim under a slot of `claim_parallelism`; send outside it."""
        todo: Todo | None = None
        try:
            todo = await self._dial(sid)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("dialling for specialist %s failed; retrying later", sid)
            self.wake_later(sid, self.rt.config.idle_recheck_seconds)
        finally:
            self._claim_slots.release()
        if todo is not None:
            await self.rt.send(*todo)

    async def _dial(self, sid: int) -> Todo | None:
        rt = self.rt
        seat = rt.seats.get(sid)
        if seat is None or not seat.available or self.pre.has(sid):
            return None  # (a pre-claimed seat is dialled by `PreClaims.dial_soon`)
        if seat.pending_pause is not None:
            return None  # a held pause (pooled campaigns): the seat takes no call of its own
        kinds = self.registry.specialist_kinds()
        if not kinds:
            return None
        server = rt.server_for_seat(seat.device)
        if not server.usable:
            # Link down or Asterisk shutting down: wait for it (woken again on reconnect)
            # rather than claim leads nobody can dial.
            self.wake_later(sid, min(5.0, rt.config.idle_recheck_seconds))
            return None
        now = rt.clock.now()
        got = await self.claims.claim(seat, kinds, server, now, pre=False)
        if got == "empty":
            if seat.available:
                self.wake_later(sid, await self.claims.recheck_delay(sid, now))
            return None
        if got == "taken":
            self.wake(sid)
            return None
        if isinstance(got, str):
            return None
        live, camp = got
        if not seat.available:
            # The specialist paused or signed out while the claim committed: nothing is
            # dialled, and the attempt ends at once so the lead and number are free again.
            rt.stats["not_sent_seat"] += 1
            reason = "seat no longer ready: not dialled"
            await rt.finish(live, Finished(live.attempt_id, NOT_SENT, reason=reason))
            return None
        if camp.mode == DialMode.PREVIEW.value:
            rt.record(seat, seat.offer(rt.clock.now(), live.attempt_id))
            log.info(
                "seat %s: lead %s offered for preview (%s)",
                seat.device,
                live.lead_id,
                live.attempt_id,
            )
            return None
        rt.record(seat, seat.dial(rt.clock.now(), live.attempt_id))
        return live, camp


__all__ = ["SeatDialer"]
