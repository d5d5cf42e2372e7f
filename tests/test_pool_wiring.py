"""The pooled campaigns' wiring, pure parts with fakes: the pool as the pacer sees it, the
runner's hard guard over whatever the pacer says, the pooled call's Originate, and what an
answered or abandoned pool call does to its lead (dialer.decisions)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from dialer import originate
from dialer.decisions import AttemptFacts, Finished, Route, decide
from dialer.models import SeatState
from dialer.originate import DialPlan
from dialer.pool import ABANDON_REASON, ANSWER_REASON
from dialer.pool_state import allowed_calls, pool_state
from dialer.predictive import AbandonLedger, PacingLimits
from dialer.seats import Seat
from schedules.retry import RetryConfig
from schedules.windows import CallingHours

NOW = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
TODAY = NOW.date()
HOURS = CallingHours()


def _seat(sid: int, state: SeatState, **kw: object) -> Seat:
    seat = Seat(sid, f"PJSIP/{8100 + sid}", state=state, since=NOW - timedelta(seconds=40))
    for k, v in kw.items():
        setattr(seat, k, v)
    return seat


def test_the_pool_counts_only_members_free_busy_and_leaving() -> None:
    seats = [
        _seat(1, SeatState.READY),
        _seat(2, SeatState.ON_CALL, attempt_id="a"),
        _seat(3, SeatState.WRAP_UP, wrap_up_until=NOW + timedelta(seconds=5)),
        _seat(4, SeatState.ON_CALL, attempt_id="b", pending_pause="lunch"),  # leaving
        _seat(5, SeatState.READY, attempt_id="preview"),  # holds a preview: not free
        _seat(6, SeatState.READY),  # not a member
        _seat(7, SeatState.PAUSED),
    ]
    members = dict.fromkeys([1, 2, 3, 4, 5, 7], "always")
    view = pool_state(TODAY, NOW, seats, members, ringing=[3.0, 8.0], waiting=1)
    assert view.state.free == 1
    # the preview seat (5) is neither free nor on a call; 4 leaves after its call; 7 paused
    assert [(b.talked, b.wrap_left) for b in view.state.busy] == [(40.0, 0.0), (None, 5.0)]
    assert view.staffed == 3
    assert view.state.uncovered == 2  # two ringing + one waiting, one free


def test_the_guard_holds_the_ratio_cap_whatever_the_pacer_wants() -> None:
    limits = PacingLimits(ratio_cap=2.0)
    seats = [_seat(i, SeatState.READY) for i in range(1, 4)]
    view = pool_state(TODAY, NOW, seats, dict.fromkeys(range(1, 4), "always"), [], 0)
    ledger = AbandonLedger()
    for _ in range(1000):  # a day with room for many abandons
        ledger.record(TODAY, abandoned=False)
    assert allowed_calls(100, view, limits, ledger) == 6  # 2 x 3 staffed
    busy = pool_state(TODAY, NOW, seats, dict.fromkeys(range(1, 4), "always"), [1.0] * 5, 0)
    assert allowed_calls(100, busy, limits, ledger) == 1


def test_the_guard_holds_the_abandon_budget_and_always_allows_progressive() -> None:
    limits = PacingLimits(ratio_cap=3.0, abandon_cap=0.03)
    seats = [_seat(i, SeatState.READY) for i in range(1, 5)]
    members = dict.fromkeys(range(1, 5), "always")
    view = pool_state(TODAY, NOW, seats, members, [], 0)
    empty = AbandonLedger()  # no answers yet today: no call may go uncovered
    assert allowed_calls(50, view, limits, empty) == 4
    spent = AbandonLedger()
    for i in range(100):
        spent.record(TODAY, abandoned=i < 3)  # 3 % already
    assert allowed_calls(50, view, limits, spent) == 4
    room = AbandonLedger()
    for _ in range(100):
        room.record(TODAY, abandoned=False)
    # 100 answers, none abandoned: 3 uncovered calls keep the day at or under 3 %.
    assert allowed_calls(50, view, limits, room) == 4 + 3
    assert allowed_calls(50, view, replace(limits, predictive=False), room) == 4


def test_a_pooled_predictive_call_waits_in_the_pool_extension_with_no_seat() -> None:
    h = originate.pooled(DialPlan(), attempt_id="att-1", number="13800000010", lead_id=7)
    v = originate.variables_of(h)
    assert h["Exten"] == originate.POOL_EXTEN and h["Channel"] == "PJSIP/13800000010@carrier"
    assert v["POOL"] == "1" and v["POOL_WAIT"] == "2" and "SEAT" not in v


POOLED = AttemptFacts(
    attempt_id="a1",
    mode="customer_first",
    campaign_kind="lapsed",
    number="+8613800000001",
    specialist_id=None,
    seat=None,
    lead_id=7,
    lead_kind="lapsed",
    lead_status="due",
    owner_id=None,
    callback_at=None,
    next_attempt_at=None,
    phone_id=3,
    tz="Asia/Shanghai",
    pooled=True,
)


def test_an_answered_pool_call_makes_the_lead_the_specialists_audited() -> None:
    fin = Finished(
        "a1", "answered", answered=True, bridged=True, specialist_id=4, seat="PJSIP/8104"
    )
    d = decide(POOLED, fin, now=NOW, hours=HOURS, retry=RetryConfig())
    assert d.route is Route.TALKED and d.talked
    assert (d.owner_id, d.specialist_id, d.status) == (4, 4, "assigned")
    assert [r.counts["4"]["reason"] for r in d.audit] == [ANSWER_REASON]
    # Not pooled: nobody's lead changes hands.
    plain = decide(replace(POOLED, pooled=False), fin, now=NOW, hours=HOURS, retry=RetryConfig())
    assert plain.audit == [] and plain.distributed_on is None


def test_an_abandoned_pool_call_is_booked_to_a_member_on_a_later_day() -> None:
    fin = Finished("a1", "abandoned", answered=True)
    facts = replace(POOLED, free_specialist=5)
    d = decide(facts, fin, now=NOW, hours=HOURS, retry=RetryConfig())
    assert d.route is Route.ABANDONED
    assert d.owner_id == 5 and d.status == "scheduled"
    assert d.callback_at is not None and d.callback_at.date() > NOW.date()
    assert d.next_at == d.callback_at and HOURS.is_open(d.callback_at)
    assert [r.counts["5"]["reason"] for r in d.audit] == [ABANDON_REASON]
