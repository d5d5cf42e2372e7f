"""An Asterisk shutting down burns no leads (issue 11, finding 6), over TCP with the simulator
playing the stop as the real one did (tests/test_simulator_shutdown.py)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.models import Lead, Phone
from dialer.calls import CallResult, Mode, Outcome
from dialer.engine import DialerEngine
from dialer.models import AttemptState, CallAttempt, SeatState
from dialer.shutdown import may_be_cut, reached, refused_for_shutdown
from dialer.simulator import PbxSimulator
from schedules.clock import VirtualClock
from tests.dialing_support import attempts, running, shanghai
from tests.test_dialer_support import seed
from tests.virtual_time import Driver


def _result(**kw: object) -> CallResult:
    base: dict[str, object] = dict(
        attempt_id="att-1", seat="PJSIP/8002", number="13800000012", mode=Mode.SEAT_FIRST,
        outcome=Outcome.NO_ANSWER, cause=16, cause_txt="Normal Clearing", tech_cause=None,
        dial_status="CANCEL", originate_response="Success", originate_reason=4, answered=False,
        bridged=False, ring_seconds=0.03, talk_seconds=None, key_pressed=None, digits="",
        recording=None, linkedid="att-1", uniqueids=(), channels=(), started_at=0.0,
        ended_at=0.05,
    )  # fmt: skip
    base.update(kw)
    return CallResult(**base)  # type: ignore[arg-type]


def test_the_refusal_of_a_stopping_asterisk_is_recognised() -> None:
    assert refused_for_shutdown("Asterisk is shutting down")
    assert not refused_for_shutdown("Originate failed")
    assert not refused_for_shutdown(None)


def test_a_ringing_call_cancelled_with_cause_16_may_have_been_cut_by_the_pbx() -> None:
    assert may_be_cut(_result())
    assert not may_be_cut(_result(dial_status="NOANSWER", cause=0))  # the customer's no answer
    assert not may_be_cut(_result(cause=17, dial_status="BUSY"))
    assert not may_be_cut(_result(outcome=Outcome.HUNG_UP_BY_ACTION))
    answered = _result(outcome=Outcome.ANSWERED, answered=True, bridged=True, dial_status="ANSWER")
    assert not may_be_cut(answered) and reached(answered)
    assert reached(_result(answered=True, key_pressed="1"))
    assert not reached(_result(answered=True))  # a message played to nobody in particular


def _seat_state(engine: DialerEngine, sid: int, state: SeatState):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        seat = engine.seats.get(sid)
        return seat is not None and seat.state is state

    return check


async def test_a_stopping_asterisk_refuses_one_originate_and_the_seat_waits_for_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """As in the live restart: seat A is on a long call when `core stop gracefully` starts;
    seat B, ready with five leads, must not burn through them: one refused Originate, not
    sent, and nothing more until the PBX is back; then that lead is dialled."""
    clock = VirtualClock(shanghai(10, 0))
    drive = Driver(clock, sessions)
    async with sessions() as s:
        specs, leads = await seed(
            s, specialists=2, leads=[("renewal", "7", 0)] + [("renewal", "0", 1)] * 5
        )
    b_leads = leads[1:]
    sim = PbxSimulator(clock=clock, users={"dialer": "secret"}, seed=1)
    async with running(sessions, clock, sim=sim) as (engine, service, sim):
        await service.start_campaign("renewal")
        await service.sign_in(specs[0], ready=True)
        await drive.until(_seat_state(engine, specs[0], SeatState.ON_CALL))
        sim.shutdown("gracefully", restart=True)
        await service.sign_in(specs[1], ready=True)
        await drive.until(lambda: _ended_for(sessions, specs[1]))
        # The PBX stays up for the long call (~56 s): seat B waits through it.
        await drive.until(lambda: _after(clock, shanghai(10, 0, 40)))
        assert sim.action_counts["Originate"] == 2  # A's call, and one refused for B
        [refused] = [a for a in await attempts(sessions) if a.specialist_id == specs[1]]
        assert refused.outcome == "not_sent" and refused.lead_id in b_leads
        assert "shutting down" in (refused.reason or "")
        async with sessions() as s:
            lead = await s.get(Lead, refused.lead_id)
            assert lead is not None and lead.attempt_count == 0
            assert lead.next_attempt_at is not None and lead.next_attempt_at <= clock.now()
        # The call ends, Asterisk shuts down, restarts; the link is back: B dials that lead.
        await drive.until(lambda: _dialled_again(sessions, specs[1]))
    rows = [a for a in await attempts(sessions) if a.specialist_id == specs[1]]
    assert rows[0].lead_id == rows[1].lead_id  # the refused lead is the first dialled again
    assert rows[1].sent_at is not None and rows[1].sent_at >= shanghai(10, 0, 56)
    assert not any(a.outcome == "failed" for a in rows)


async def test_a_call_the_pbx_cuts_while_ringing_does_not_count_toward_the_three_calls(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A customer's callback appointment (three-call rule) unanswered twice before; the
    third call rings 0.03 s when `core restart now` cuts it: not a customer outcome."""
    clock = VirtualClock(shanghai(10, 0))
    drive = Driver(clock, sessions)
    async with sessions() as s:
        specs, leads = await seed(s, specialists=1, leads=[("renewal", "2", 0)])  # never answers
        lead = await s.get(Lead, leads[0])
        assert lead is not None
        await s.execute(
            update(Lead)
            .where(Lead.id == lead.id)
            .values(status="scheduled", callback_at=shanghai(9, 30))
        )
        number = await s.scalar(select(Phone.e164).where(Phone.id == lead.phone_id))
        for day in (1, 2):  # the two earlier unanswered calls (a Thursday and a Friday)
            at = shanghai(10, 0) - timedelta(days=5 - day)
            s.add(
                CallAttempt(
                    attempt_id=f"att-earlier-{day}", lead_id=lead.id, phone_id=lead.phone_id,
                    number=number, specialist_id=specs[0], seat="PJSIP/8100", mode="seat_first",
                    campaign_kind="renewal", ami_server="pbx1", state=AttemptState.ENDED.value,
                    outcome="no_answer", created_at=at, sent_at=at, ended_at=at,
                )
            )  # fmt: skip
        await s.commit()
    sim = PbxSimulator(clock=clock, users={"dialer": "secret"}, seed=1)
    async with running(sessions, clock, sim=sim) as (_engine, service, sim):
        await service.start_campaign("renewal")
        await service.sign_in(specs[0], ready=True)
        await drive.until(lambda: _customer_ringing(sim))
        await clock.advance(0.03)
        sim.shutdown("now", restart=True)
        await drive.until(lambda: _cut_call_recorded(sessions))
        # Checked at once: the PBX is back and may redial the lead (a call that counts).
        third = await _cut_call(sessions)
        async with sessions() as s:
            got = await s.get(Lead, leads[0])
            phone = await s.scalar(select(Phone).where(Phone.e164 == number))
    assert third is not None and third.outcome == "ended_by_pbx"
    assert (third.hangup_cause, third.dial_status) == (16, "CANCEL")
    assert got is not None and got.status != "closed" and got.contact_result is None
    assert phone is not None and phone.accuracy != "inaccurate"


async def _cut_call(sessions: async_sessionmaker[AsyncSession]) -> CallAttempt | None:
    rows = [a for a in await attempts(sessions) if not a.attempt_id.startswith("att-earlier")]
    return rows[0] if rows else None


async def _cut_call_recorded(sessions: async_sessionmaker[AsyncSession]) -> bool:
    cut = await _cut_call(sessions)
    return cut is not None and cut.ended_at is not None


async def _customer_ringing(sim: PbxSimulator) -> bool:
    return any(
        c.name.startswith("PJSIP/carrier-") and c.state == 5 for c in sim.pbx.channels.values()
    )


async def _ended_for(sessions: async_sessionmaker[AsyncSession], sid: int) -> bool:
    return any(a.ended_at for a in await attempts(sessions) if a.specialist_id == sid)


async def _dialled_again(sessions: async_sessionmaker[AsyncSession], sid: int) -> bool:
    rows = [a for a in await attempts(sessions) if a.specialist_id == sid]
    return len(rows) >= 2 and rows[1].sent_at is not None


async def _after(clock: VirtualClock, when: object) -> bool:
    return clock.now() >= when  # type: ignore[operator]
