"""What a specialist does with their seat: sign in and out, ready, pause, confirm or skip a
preview, end a wrap-up early by logging a result. Every change goes through the seat state
machine (`DialerRuntime.record`); the seat dialer hears a ready seat on the bus."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import update

from crm_sync.models import Specialist
from dialer.exceptions import NoPreview, NotSignedIn, NotYourSeat, SeatTaken
from dialer.models import AttemptState, CallAttempt
from dialer.outcomes import SKIPPED
from dialer.results import Finished
from dialer.runtime import DialerRuntime
from dialer.seat_dialer import SeatDialer
from dialer.seat_store import SeatStore
from dialer.seats import Seat, SeatState
from dialer.state import LiveCall

log = logging.getLogger(__name__)


class SeatCommands:
    def __init__(self, rt: DialerRuntime, dialer: SeatDialer, store: SeatStore) -> None:
        self.rt = rt
        self.dialer = dialer
        self.store = store
        # Whether a free seat's pause must wait (the pooled campaigns' rule); set by the engine.
        self.hold_pause: Callable[[Seat], bool] | None = None

    def signed_in_seats(self) -> list[Seat]:
        """The seats signed in (not offline), for the services' views."""
        return [s for s in self.rt.seats.values() if s.state is not SeatState.OFFLINE]

    def seat_of(self, specialist_id: int) -> Seat:
        seat = self.rt.seats.get(specialist_id)
        if seat is None or seat.state is SeatState.OFFLINE:
            raise NotSignedIn(f"specialist {specialist_id} is not signed in")
        return seat

    async def _device_of(self, specialist_id: int, seat: str | None) -> str:
        async with self.rt.sessions() as s:
            spec = await s.get(Specialist, specialist_id)
            if spec is None or not spec.active:
                raise NotSignedIn(f"no active specialist {specialist_id}")
            device = spec.seat
        if seat is not None and seat != device:
            # Any other device could be a colleague's phone or a trunk (toll fraud).
            log.warning(
                "specialist %s tried to sign in at %s instead of their seat", specialist_id, seat
            )
            raise NotYourSeat(f"specialist {specialist_id} may sign in only at their own seat")
        return device

    async def sign_in(
        self, specialist_id: int, seat: str | None = None, *, ready: bool = False
    ) -> Seat:
        device = await self._device_of(specialist_id, seat)
        for other in self.rt.seats.values():
            if (
                other.device == device
                and other.specialist_id != specialist_id
                and other.state is not SeatState.OFFLINE
            ):
                raise SeatTaken(f"seat {device} is signed in by specialist {other.specialist_id}")
        current = self.rt.seats.get(specialist_id)
        if current is not None and current.state is not SeatState.OFFLINE:
            if current.device != device:
                raise SeatTaken(f"specialist {specialist_id} is signed in at {current.device}")
            return current
        new = Seat(specialist_id, device)
        self.rt.seats[specialist_id] = new
        self.rt.record(new, new.sign_in(self.rt.clock.now(), ready=ready))
        await self.store.flush()
        return new

    async def sign_out(self, specialist_id: int) -> Seat:
        seat = self.seat_of(specialist_id)
        if seat.attempt_id is not None and seat.state is SeatState.READY:
            await self.skip_preview(specialist_id)
        self.rt.record(seat, seat.sign_out(self.rt.clock.now()))
        await self.dialer.pre.drop(specialist_id, "seat signed out before dialling")
        await self.store.flush()
        return seat

    async def set_ready(self, specialist_id: int) -> Seat:
        seat = self.seat_of(specialist_id)
        if seat.state is not SeatState.READY:
            self.rt.record(seat, seat.ready(self.rt.clock.now()))
            await self.store.flush()
        return seat

    async def pause(self, specialist_id: int, reason: str) -> Seat:
        seat = self.seat_of(specialist_id)
        if seat.available and self.hold_pause is not None and self.hold_pause(seat):
            # A free member of a pool whose ringing calls count on them: the pause waits
            # until those calls settle (dialer.pool_dialer.PoolDialer.may_pause).
            seat.pending_pause = reason or "paused"
            log.info("seat %s: pause held until the pool's calls settle", seat.device)
            return seat
        if seat.attempt_id is not None and seat.state is SeatState.READY:
            await self.skip_preview(specialist_id)
        self.rt.record(seat, seat.pause(self.rt.clock.now(), reason or "paused"))
        await self.dialer.pre.drop(specialist_id, "seat paused before dialling")
        await self.store.flush()
        return seat

    def after_dispose(self, specialist_id: int, lead_id: int | None = None) -> None:
        """A specialist saved a result. In wrap-up: the wrap-up ends at once (ready, or the
        pause asked for during the call). During the call, for the call's own lead: the
        hang-up skips the wrap-up, since what it is for is done."""
        seat = self.rt.seats.get(specialist_id)
        if seat is None:
            return
        if seat.state is SeatState.WRAP_UP:
            self.rt.tasks.timer(specialist_id, None)
            self.rt.record(seat, seat.wrap_done(self.rt.clock.now()))
        elif seat.state in (SeatState.RINGING, SeatState.ON_CALL) and lead_id is not None:
            live = self.rt.live.get(seat.attempt_id or "")
            if live is not None and live.lead_id == lead_id:
                seat.result_saved_during_call()

    # -- preview ------------------------------------------------------------------------------

    def _offered(self, specialist_id: int) -> tuple[Seat, LiveCall]:
        seat = self.seat_of(specialist_id)
        live = self.rt.live.get(seat.attempt_id or "")
        if live is None or seat.state is not SeatState.READY:
            raise NoPreview(f"no lead is offered to specialist {specialist_id}")
        return seat, live

    async def confirm_preview(self, specialist_id: int) -> str:
        seat, live = self._offered(specialist_id)
        async with self.rt.sessions() as s:
            n = (
                await s.execute(
                    update(CallAttempt)
                    .where(
                        CallAttempt.attempt_id == live.attempt_id,
                        CallAttempt.state == AttemptState.RESERVED.value,
                    )
                    .values(state=AttemptState.DIALING.value)
                )
            ).rowcount  # type: ignore[attr-defined]
            await s.commit()
        if n != 1:
            raise NoPreview(f"the preview {live.attempt_id} is no longer reserved")
        camp = self.dialer.registry.get(live.campaign_id or -1)
        self.rt.record(seat, seat.dial(self.rt.clock.now(), live.attempt_id))
        await self.rt.send(live, camp)
        return live.attempt_id

    async def skip_preview(self, specialist_id: int, reason: str = "skipped in preview") -> None:
        _, live = self._offered(specialist_id)
        # Settling the attempt lets the seat go of it (a `withdraw`, a seat change: the seat
        # page hears it through `seat_listeners`).
        await self.rt.finish(live, Finished(live.attempt_id, SKIPPED, reason=reason))


__all__ = ["SeatCommands"]
