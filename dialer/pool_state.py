"""A pooled campaign as its pacer sees it, and the runner's last word on how many calls to
start. Pure: the seats, the calls in flight and `now` in; a `PoolState` and a number out.

`pool_state` turns the dialer's seats (`dialer.seats.Seat`) of the pool's members into the
pacer's `PoolState`: free (ready, nothing offered), busy (ringing or talking: how long so
far; wrapping up: how long left) and the pool's calls ringing or answered and waiting.

`allowed_calls` is applied to whatever the pacer decided (`dialer.predictive.Pacer.decide`),
so that a wrong estimate or a bug in the model can never break the two hard rules: calls in
flight never exceed the pacing-ratio cap per staffed specialist, and calls that no free
specialist covers never exceed the abandon budget (`dialer.predictive.abandon_budget`, the
pacer's own: if every one of them were answered and abandoned, the rolling 30 days would
still be at or under the cap and the day at or under its ceiling). One call per free specialist (progressive) is always allowed:
it cannot be abandoned unless the specialist leaves."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from dialer.models import SeatState
from dialer.predictive import (
    AbandonLedger,
    Busy,
    PacingLimits,
    PoolState,
    abandon_budget,
    progressive_calls,
)
from dialer.seats import Seat


@dataclass(frozen=True, slots=True)
class PoolView:
    """The pacer's state, and how many members are staffed (signed in and not paused or
    about to pause): the base of the pacing-ratio cap."""

    state: PoolState
    staffed: int


def pool_state(
    today: date,
    now: datetime,
    seats: Iterable[Seat],
    members: Mapping[int, str],
    ringing: Sequence[float],
    waiting: int,
) -> PoolView:
    """The pool at `now`: `seats` (any; only members count), `ringing` the seconds each of
    the pool's calls has rung, `waiting` its answered calls not yet given a specialist."""
    free = 0
    busy: list[Busy] = []
    for seat in seats:
        if seat.specialist_id not in members:
            continue
        if seat.pending_pause is not None:
            # Leaves after this call, or a held pause (`PoolDialer.may_pause`): may still
            # take an answer already on its way, but no new call is placed for it.
            continue
        if seat.available:
            free += 1
        elif seat.state in (SeatState.RINGING, SeatState.ON_CALL):
            talked = 0.0
            if seat.state is SeatState.ON_CALL and seat.since is not None:
                talked = max(0.0, (now - seat.since).total_seconds())
            busy.append(Busy(talked))
        elif seat.state is SeatState.WRAP_UP:
            left = 0.0
            if seat.wrap_up_until is not None:
                left = max(0.0, (seat.wrap_up_until - now).total_seconds())
            busy.append(Busy(None, left))
    state = PoolState(
        today=today, free=free, ringing=tuple(ringing), busy=tuple(busy), waiting=waiting
    )
    return PoolView(state, free + len(busy))


def allowed_calls(wanted: int, view: PoolView, limits: PacingLimits, ledger: AbandonLedger) -> int:
    """At most `wanted` new calls, within the pacing-ratio cap and the abandon budget."""
    state = view.state
    in_flight = len(state.ringing) + state.waiting
    progressive = progressive_calls(state.free, in_flight)
    if not limits.predictive:
        return max(0, min(wanted, progressive))
    ratio_room = math.floor(limits.ratio_cap * view.staffed + 1e-9) - in_flight
    budget = abandon_budget(ledger, state.today, limits)
    abandon_room = state.free + budget - in_flight
    return max(0, min(wanted, max(progressive, min(ratio_room, abandon_room))))


__all__ = ["PoolView", "allowed_calls", "pool_state"]
