from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dialer.exceptions import IllegalSeatTransition
from dialer.models import SeatState
from dialer.seats import Seat

T0 = datetime(2026, 1, 5, 1, 30, tzinfo=UTC)


def _ready_seat() -> Seat:
    seat = Seat(1, "PJSIP/8001")
    seat.sign_in(T0)
    seat.ready(T0)
    return seat


def test_sign_in_starts_paused_until_the_specialist_says_ready() -> None:
    seat = Seat(1, "PJSIP/8001")
    t = seat.sign_in(T0)
    assert (t.from_state, t.to_state, seat.pause_reason) == (
        SeatState.OFFLINE,
        SeatState.PAUSED,
        "signed in",
    )
    seat.ready(T0)
    assert seat.available


def test_answered_call_goes_through_wrap_up_back_to_ready() -> None:
    seat = _ready_seat()
    seat.dial(T0, "att-1")
    seat.answer(T0)
    t = seat.call_end(T0, wrap_up_seconds=30)
    assert t.to_state is SeatState.WRAP_UP
    assert seat.wrap_up_until == T0 + timedelta(seconds=30)
    assert seat.wrap_done(T0).to_state is SeatState.READY  # type: ignore[union-attr]
    assert seat.attempt_id is None


def test_a_result_saved_during_the_call_skips_the_wrap_up_of_that_call_only() -> None:
    seat = _ready_seat()
    with pytest.raises(IllegalSeatTransition):
        seat.result_saved_during_call()  # no call to save for
    seat.dial(T0, "att-1")
    seat.answer(T0)
    seat.result_saved_during_call()
    assert seat.call_end(T0, wrap_up_seconds=30).to_state is SeatState.READY
    seat.dial(T0, "att-2")
    seat.answer(T0)
    assert seat.call_end(T0, wrap_up_seconds=30).to_state is SeatState.WRAP_UP


def test_unanswered_call_returns_the_seat_to_ready_without_wrap_up() -> None:
    seat = _ready_seat()
    seat.dial(T0, "att-1")
    assert seat.call_end(T0, wrap_up_seconds=30).to_state is SeatState.READY


def test_pause_during_a_call_is_applied_after_wrap_up() -> None:
    seat = _ready_seat()
    seat.dial(T0, "att-1")
    seat.answer(T0)
    assert seat.pause(T0, "lunch") is None
    assert seat.state is SeatState.ON_CALL
    seat.call_end(T0, wrap_up_seconds=10)
    t = seat.wrap_done(T0)
    assert t is not None and t.to_state is SeatState.PAUSED and seat.pause_reason == "lunch"


def test_cannot_dial_a_paused_seat_or_sign_out_during_a_call() -> None:
    seat = Seat(1, "PJSIP/8001")
    seat.sign_in(T0)
    with pytest.raises(IllegalSeatTransition):
        seat.dial(T0, "att-1")
    seat.ready(T0)
    seat.dial(T0, "att-1")
    with pytest.raises(IllegalSeatTransition, match="sign_out"):
        seat.sign_out(T0)


def test_every_transition_is_recorded_with_its_trigger() -> None:
    seat = _ready_seat()
    seat.dial(T0, "att-9")
    seat.answer(T0)
    seat.call_end(T0, 0)
    assert [(t.trigger, t.to_state.value) for t in seat.history] == [
        ("sign_in", "paused"),
        ("ready", "ready"),
        ("dial", "ringing"),
        ("answer", "on_call"),
        ("call_end", "ready"),
    ]
    assert seat.history[1].attempt_id is None
    assert seat.history[2].attempt_id == seat.history[3].attempt_id == "att-9"


def test_a_preview_offer_and_its_withdrawal_are_transitions_with_the_attempt() -> None:
    t0 = datetime(2026, 1, 5, 1, 30, tzinfo=UTC)
    seat = Seat(1, "PJSIP/8001")
    seat.sign_in(t0, ready=True)
    offered = seat.offer(t0 + timedelta(seconds=5), "att-1")
    assert (offered.trigger, offered.to_state, offered.attempt_id) == (
        "offer",
        SeatState.READY,
        "att-1",
    )
    assert not seat.available and seat.since == t0  # keeps its place among the ready seats
    with pytest.raises(IllegalSeatTransition, match="already holds"):
        seat.offer(t0, "att-2")
    gone = seat.withdraw(t0 + timedelta(seconds=9), "skipped in preview")
    assert (gone.trigger, gone.attempt_id, gone.reason) == (
        "withdraw",
        "att-1",
        "skipped in preview",
    )
    assert seat.available


def test_after_a_restart_a_seat_holding_a_call_rings_and_a_dead_wrap_up_is_ready() -> None:
    t0 = datetime(2026, 1, 5, 1, 30, tzinfo=UTC)
    held = Seat(1, "PJSIP/8001", state=SeatState.READY, since=t0)
    t = held.restore(t0, "att-7")
    assert t is not None and (t.trigger, t.to_state, held.attempt_id) == (
        "restore",
        SeatState.RINGING,
        "att-7",
    )
    wrapping = Seat(2, "PJSIP/8002", state=SeatState.WRAP_UP, since=t0)
    t = wrapping.restore(t0)
    assert t is not None and t.to_state is SeatState.READY
    assert Seat(3, "PJSIP/8003", state=SeatState.PAUSED, since=t0).restore(t0) is None
