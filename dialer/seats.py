"""The seat state machine: a specialist signed in to a softphone seat. Pure (no I/O, no clock).

States: offline, ready, ringing, on_call, wrap_up, paused (with a reason).

    offline --sign_in--> paused("signed in")        (or ready with sign_in(ready=True))
    paused  --ready-->   ready
    ready   --pause-->   paused(reason)
    ready   --dial-->    ringing                     the dialer sent an Originate for this seat
    ringing --answer-->  on_call                     the customer is bridged with the seat
    ringing --call_end-> wrap_up | ready             wrap-up only when someone talked
    on_call --call_end-> wrap_up
    wrap_up --wrap_done> ready (or paused, when a pause was asked for during the call)
    wrap_up --pause-->   paused(reason)
    wrap_up --ready-->   ready                       the specialist disposed early
    any but ringing/on_call --sign_out--> offline

A pause asked for while ringing or on a call is remembered and applied when the wrap-up
ends: a specialist can press "pause" mid-call without the dialer taking another lead.
Every transition returns a `Transition` record that the engine logs and stores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dialer.exceptions import IllegalSeatTransition
from dialer.models import SeatState

_BUSY = (SeatState.RINGING, SeatState.ON_CALL)


@dataclass(frozen=True, slots=True)
class Transition:
    specialist_id: int
    seat: str
    from_state: SeatState
    to_state: SeatState
    trigger: str
    at: datetime
    reason: str | None = None
    attempt_id: str | None = None


@dataclass(slots=True)
class Seat:
    """One specialist's seat. `apply`-style methods return the transition they made."""

    specialist_id: int
    device: str  # e.g. PJSIP/8001
    state: SeatState = SeatState.OFFLINE
    since: datetime | None = None
    pause_reason: str | None = None
    attempt_id: str | None = None  # the call (or preview reservation) on this seat
    pending_pause: str | None = None
    answered: bool = False
    wrap_up_until: datetime | None = None
    # The call's contact result was saved while it went on: no wrap-up is needed after it.
    result_saved: bool = False
    history: list[Transition] = field(default_factory=list, repr=False)

    # -- the one place a state changes ---------------------------------------------------
    def _go(
        self,
        to: SeatState,
        trigger: str,
        now: datetime,
        *,
        allowed: tuple[SeatState, ...],
        reason: str | None = None,
        keep_since: bool = False,
    ) -> Transition:
        if self.state not in allowed:
            raise IllegalSeatTransition(
                f"seat {self.device}: cannot {trigger} while {self.state.value} "
                f"(allowed from: {', '.join(s.value for s in allowed)})"
            )
        t = Transition(
            self.specialist_id,
            self.device,
            self.state,
            to,
            trigger,
            now,
            reason,
            self.attempt_id,
        )
        self.state = to
        if not keep_since or self.since is None:
            self.since = now
        self.pause_reason = reason if to is SeatState.PAUSED else None
        if len(self.history) >= 50:  # the database keeps the full log
            del self.history[:25]
        self.history.append(t)
        return t

    # -- specialist actions --------------------------------------------------------------
    def sign_in(self, now: datetime, *, ready: bool = False) -> Transition:
        if ready:
            return self._go(SeatState.READY, "sign_in", now, allowed=(SeatState.OFFLINE,))
        return self._go(
            SeatState.PAUSED, "sign_in", now, allowed=(SeatState.OFFLINE,), reason="signed in"
        )

    def ready(self, now: datetime) -> Transition:
        self.pending_pause = None
        self.wrap_up_until = None
        return self._go(
            SeatState.READY, "ready", now, allowed=(SeatState.PAUSED, SeatState.WRAP_UP)
        )

    def pause(self, now: datetime, reason: str) -> Transition | None:
        """Pause now, or (ringing / on a call) after the call's wrap-up: then returns None."""
        if self.state in _BUSY:
            self.pending_pause = reason
            return None
        self.wrap_up_until = None
        return self._go(
            SeatState.PAUSED,
            "pause",
            now,
            allowed=(SeatState.READY, SeatState.WRAP_UP, SeatState.PAUSED),
            reason=reason,
        )

    def sign_out(self, now: datetime) -> Transition:
        self.pending_pause = None
        self.attempt_id = None
        return self._go(
            SeatState.OFFLINE,
            "sign_out",
            now,
            allowed=(SeatState.READY, SeatState.PAUSED, SeatState.WRAP_UP),
        )

    # -- dialer events -------------------------------------------------------------------
    def dial(self, now: datetime, attempt_id: str) -> Transition:
        if self.state is not SeatState.READY:
            raise IllegalSeatTransition(f"seat {self.device}: not ready ({self.state.value})")
        self.attempt_id = attempt_id
        self.answered = False
        self.result_saved = False
        return self._go(SeatState.RINGING, "dial", now, allowed=(SeatState.READY,))

    def answer(self, now: datetime) -> Transition:
        self.answered = True
        return self._go(SeatState.ON_CALL, "answer", now, allowed=(SeatState.RINGING,))

    def result_saved_during_call(self) -> None:
        """The specialist saved this call's result before the hang-up: the hang-up skips the
        wrap-up (`call_end`). Not a change of state, so no transition."""
        if self.state not in _BUSY:
            raise IllegalSeatTransition(f"seat {self.device}: no call ({self.state.value})")
        self.result_saved = True

    def call_end(
        self, now: datetime, wrap_up_seconds: float, *, talked: bool = False
    ) -> Transition:
        """The call is over: wrap-up if someone talked (and wrap-up is configured), unless
        the call's result is saved already. `talked`: the result says so even if the seat
        never heard the answer (a bridge missed)."""
        talked = talked or self.answered or self.state is SeatState.ON_CALL
        if talked and wrap_up_seconds > 0 and not self.result_saved:
            self.wrap_up_until = now + timedelta(seconds=wrap_up_seconds)
            t = self._go(SeatState.WRAP_UP, "call_end", now, allowed=_BUSY)
        elif self.pending_pause is not None:
            reason, self.pending_pause = self.pending_pause, None
            t = self._go(SeatState.PAUSED, "call_end", now, allowed=_BUSY, reason=reason)
        else:
            t = self._go(SeatState.READY, "call_end", now, allowed=_BUSY)
        self.attempt_id = None
        self.answered = False
        self.result_saved = False
        return t

    def wrap_done(self, now: datetime) -> Transition | None:
        """The wrap-up time is over (None if the seat already left wrap-up)."""
        if self.state is not SeatState.WRAP_UP:
            return None
        self.wrap_up_until = None
        if self.pending_pause is not None:
            reason, self.pending_pause = self.pending_pause, None
            return self._go(
                SeatState.PAUSED, "wrap_done", now, allowed=(SeatState.WRAP_UP,), reason=reason
            )
        return self._go(SeatState.READY, "wrap_done", now, allowed=(SeatState.WRAP_UP,))

    # -- preview reservations and restarts ------------------------------------------------
    def offer(self, now: datetime, attempt_id: str) -> Transition:
        """A lead is reserved for the specialist to preview: still ready, no longer free.
        The seat keeps its place in the "ready longest" order."""
        if self.attempt_id is not None:
            raise IllegalSeatTransition(f"seat {self.device}: already holds {self.attempt_id}")
        self.attempt_id = attempt_id
        return self._go(SeatState.READY, "offer", now, allowed=(SeatState.READY,), keep_since=True)

    def withdraw(self, now: datetime, reason: str) -> Transition:
        """The seat lets go of the attempt it holds without a call on it (a preview skipped,
        an attempt that ended without the seat ringing); the state does not change."""
        t = self._go(
            self.state, "withdraw", now, allowed=tuple(SeatState), reason=reason, keep_since=True
        )
        self.attempt_id = None
        return t

    def restore(self, now: datetime, attempt_id: str | None = None) -> Transition | None:
        """After a restart: a wrap-up whose timer died with the process is ready; a seat that
        holds a call still in flight (`attempt_id`) is ringing until reconciliation says
        otherwise. None: nothing to change."""
        if attempt_id is not None and attempt_id != self.attempt_id:
            self.attempt_id = attempt_id
            if self.state not in _BUSY:
                return self._go(SeatState.RINGING, "restore", now, allowed=tuple(SeatState))
            return self._go(self.state, "restore", now, allowed=_BUSY, keep_since=True)
        if attempt_id is None and self.state is SeatState.WRAP_UP:
            return self._go(SeatState.READY, "restore", now, allowed=(SeatState.WRAP_UP,))
        return None

    @property
    def available(self) -> bool:
        """Ready and not holding a preview reservation."""
        return self.state is SeatState.READY and self.attempt_id is None


__all__ = ["Seat", "Transition"]


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def seat_view(seat: Seat) -> dict[str, Any]:
    """A seat as plain JSON data: the dialer's API, the seat page and the board show it."""
    return {
        "specialist_id": seat.specialist_id,
        "seat": seat.device,
        "state": seat.state.value,
        "since": iso(seat.since),
        "pause_reason": seat.pause_reason,
        "attempt_id": seat.attempt_id,
        "preview": seat.state is SeatState.READY and seat.attempt_id is not None,
        "wrap_up_until": iso(seat.wrap_up_until),
    }
