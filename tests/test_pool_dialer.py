"""Pooled predictive campaigns end to end: the dialer engine against the PBX simulator over
TCP, on the VirtualClock. The pool's loop asks the pacer, answered calls go to a free member
(UserEvent PoolAnswered, Setvar + Redirect to connect-seat), the owner change is audited, an
abandoned customer hears the pool's message, the abandon is counted in pool_abandon_days and
the lead is booked to a member on a later day, never redialled the same day."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.models import Lead
from dialer import prompts
from dialer.engine import DialerEngine
from dialer.models import CallAttempt, PoolAbandonDay
from dialer.pool import ABANDON_REASON, ANSWER_REASON
from dialer.services import DialerService
from dialer.simulator import PbxSimulator
from dialer.simulator import dialplan as sim_dialplan
from dialer.simulator import server as sim_server
from dialer.simulator.behaviour import Scenario
from schedules.clock import VirtualClock
from schedules.models import DistributionRun
from tests.test_dialer_support import MONDAY_0930, make_engine, seed
from tests.virtual_time import Driver


@pytest.fixture
def played(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """What the simulated dialplan played (Playback's file), counted."""
    seen: Counter[str] = Counter()
    real = sim_dialplan.enter

    def spy(pbx: Any, chan: Any, ctx: str, exten: str, app: str, data: str) -> Any:
        if app == "Playback":
            seen[data] += 1
        return real(pbx, chan, ctx, exten, app, data)

    monkeypatch.setattr(sim_dialplan, "enter", spy)
    yield seen


async def _simulator(clock: VirtualClock, scenario: Scenario | None = None) -> PbxSimulator:
    sim = PbxSimulator(clock=clock, users={"dialer": "secret"}, seed=1, scenario=scenario)
    await sim.start("127.0.0.1", 0)
    return sim


async def _pooled(service: DialerService, members: list[int]) -> None:
    await service.update_campaign("lapsed", pooled=True, pacing="predictive", mode="customer_first")
    await service.set_pool("lapsed", dict.fromkeys(members, "always"))


@asynccontextmanager
async def _one_member(
    sessions: async_sessionmaker[AsyncSession], clock: VirtualClock
) -> AsyncIterator[tuple[PbxSimulator, DialerEngine, DialerService, int, int]]:
    """One pool member, ready; one unowned lapsed lead whose customer answers after 6 s of
    ringing; the pooled predictive campaign started."""
    async with sessions() as s:
        specs, leads = await seed(s, specialists=1, leads=[("lapsed", "0", None)])
    sim = await _simulator(clock, Scenario({"ring_seconds": {"fixed": 6}, "seed": 1}))
    engine = make_engine(sessions, clock, [("pbx1", sim)])
    service = DialerService(engine)
    await engine.start()
    try:
        await engine.wait_connected()
        await _pooled(service, specs)
        await service.sign_in(specs[0], ready=True)
        yield sim, engine, service, specs[0], leads[0]
    finally:
        await engine.stop()
        await sim.stop()


async def test_an_answered_pool_call_nobody_takes_is_abandoned_counted_and_booked(
    sessions: async_sessionmaker[AsyncSession], played: Counter[str]
) -> None:
    """The only member's phone does not pick up within the 2 s: abandoned."""
    clock = VirtualClock(MONDAY_0930)
    drive = Driver(clock, sessions)
    async with _one_member(sessions, clock) as (sim, _engine, service, member, lead_id):
        sim.pbx.unanswered_seats.add("8100")
        await service.start_campaign("lapsed")

        async def ended() -> bool:
            async with sessions() as s:
                a = (await s.scalars(select(CallAttempt))).first()
                return a is not None and a.ended_at is not None

        await drive.until(ended)
        sim.pbx.unanswered_seats.clear()
        # The member is free again: the pacer does not call the abandoned lead again today.
        await drive.run_for(20 * 60)
    assert played[prompts.POOL_SORRY] == 1
    async with sessions() as s:
        attempts = (await s.scalars(select(CallAttempt))).all()
        lead = await s.get(Lead, lead_id)
        day = (await s.scalars(select(PoolAbandonDay))).one()
        runs = (await s.scalars(select(DistributionRun))).all()
    assert [a.outcome for a in attempts] == ["abandoned"]  # one call, never redialled
    assert (day.answered, day.abandoned) == (1, 1)
    assert lead is not None and lead.owner_id == member and lead.status == "scheduled"
    assert lead.callback_at is not None and lead.callback_at.date() > MONDAY_0930.date()
    assert [r.counts[str(member)]["reason"] for r in runs] == [ABANDON_REASON]


async def test_a_member_covering_a_ringing_pool_call_pauses_after_taking_it(
    sessions: async_sessionmaker[AsyncSession], played: Counter[str]
) -> None:
    """The pacer placed the call for the only free member: their pause waits, the answer
    is theirs (the lead now theirs, audited), and the pause follows the call."""
    clock = VirtualClock(MONDAY_0930)
    drive = Driver(clock, sessions)
    async with _one_member(sessions, clock) as (sim, engine, service, member, lead_id):
        await service.start_campaign("lapsed")
        await drive.until(lambda: sim.pbx.originates >= 1)
        await service.pause(member, "break")
        assert engine.seats[member].state.value == "ready"  # held: a call counts on them

        async def paused() -> bool:
            return engine.seats[member].state.value == "paused"

        await drive.until(paused)
    assert played[prompts.POOL_SORRY] == 0
    async with sessions() as s:
        attempt = (await s.scalars(select(CallAttempt))).one()
        lead = await s.get(Lead, lead_id)
        day = (await s.scalars(select(PoolAbandonDay))).one()
        runs = (await s.scalars(select(DistributionRun))).all()
    assert (attempt.outcome, attempt.specialist_id) == ("answered", member)
    assert lead is not None and lead.owner_id == member
    assert (day.answered, day.abandoned) == (1, 0)
    assert [r.counts[str(member)]["reason"] for r in runs] == [ANSWER_REASON]


# The hour on SQLite only (on PostgreSQL it takes about a minute): the short test above and
# the pool's rules (tests/test_pool.py) run on both.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_pooled_predictive_hour_connects_answers_audits_owners_and_counts_abandons(
    sessions: async_sessionmaker[AsyncSession],
    played: Counter[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A simulated hour, three members, 35 % of calls answered after 3-20 s of ringing,
    talks of about two minutes: the pacer leaves progressive once its estimates are
    certain; every answer is either connected (the lead now the specialist's, audited) or
    abandoned (the pool's message, counted, booked); the day stays under the cap."""
    clock = VirtualClock(MONDAY_0930)
    drive = Driver(clock, sessions)
    async with sessions() as s:
        specs, _ = await seed(s, specialists=3, leads=[("lapsed", "0", None)] * 260)
    scenario = Scenario(
        {
            "seed": 3,
            "outcomes": {"answer": 0.35, "noanswer": 0.45, "busy": 0.2},
            "ring_seconds": {"uniform": [3, 20]},
            "talk_seconds": {"lognormal": [4.8, 0.3]},
        }
    )
    rings: list[tuple[str, float]] = []  # (Exten, Timeout s) of every Originate received
    real = sim_server.start_originate

    def counting(pbx: Any, o: Any, respond: Any) -> None:
        rings.append((o.exten, o.timeout))
        real(pbx, o, respond)

    monkeypatch.setattr(sim_server, "start_originate", counting)
    sim = await _simulator(clock, scenario)
    engine = make_engine(sessions, clock, [("pbx1", sim)])
    service = DialerService(engine)
    await engine.start()
    modes: Counter[str] = Counter()
    try:
        await engine.wait_connected()
        await _pooled(service, specs)
        for sid in specs:
            await service.sign_in(sid, ready=True)
        await service.start_campaign("lapsed")
        pool = engine.campaign_runner.pool
        end = clock.now() + timedelta(hours=1)
        while clock.now() < end:
            await drive.run_for(30)
            for d in pool.decisions.values():
                modes[d.mode.value] += 1
        await service.stop_campaign("lapsed")
        await drive.until(lambda: not engine.rt.live)
    finally:
        await engine.stop()
        await sim.stop()
    async with sessions() as s:
        attempts = (await s.scalars(select(CallAttempt))).all()
        owners = {lead.id: lead for lead in (await s.scalars(select(Lead))).all()}
        day = (await s.scalars(select(PoolAbandonDay))).one()
        runs = (await s.scalars(select(DistributionRun))).all()
    connected = [a for a in attempts if a.outcome == "answered"]
    abandoned = [a for a in attempts if a.outcome == "abandoned"]
    assert modes["predictive"] > 0, modes
    # Every pool call waits in pool-wait on answer and rings at least 15 s.
    assert rings and all(exten == "pool-wait" and t >= 15.0 for exten, t in rings), rings
    assert len(connected) >= 20
    # Every connected answer: the specialist who took it owns the lead, audited once.
    for a in connected:
        assert a.specialist_id is not None and owners[a.lead_id].owner_id == a.specialist_id
    answered_runs = [r for r in runs if ANSWER_REASON in str(r.counts)]
    assert len(answered_runs) == len({a.lead_id for a in connected})
    # Counted once per live answer; the message played once per abandon.
    assert (day.answered, day.abandoned) == (len(connected) + len(abandoned), len(abandoned))
    assert played[prompts.POOL_SORRY] == len(abandoned)
    assert day.abandoned <= 0.03 * day.answered
    # An abandoned lead is never called again the same day, and waits as an appointment.
    for a in abandoned:
        later = [b for b in attempts if b.lead_id == a.lead_id and b.created_at > a.created_at]
        assert later == []
        assert owners[a.lead_id].status == "scheduled"
