"""Automatic callback calls over TCP with the simulator: the keypress, the three-call rule
over several calling days, the branch list of inaccurate numbers, and two dialer processes
sharing one PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.models import Lead, Phone
from dialer.models import CallAttempt
from dialer.results import inaccurate_numbers_by_branch
from dialer.services import DialerService
from schedules.clock import VirtualClock
from schedules.windows import CallingHours
from tests.test_dialer_support import (
    MONDAY_0930,
    drive_days,
    make_engine,
    seed,
    spy_originates,
    start_simulator,
)
from tests.virtual_time import Driver

# 8 presses 1, 9 presses 2, 0 answers but presses nothing, 2 never answers,
# 5 switched off (SIP 480), 6 wrong number (SIP 404).
CALLBACK_DIGITS = "8902568902"


async def test_callback_campaign_keypresses_and_the_three_call_rule(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock(MONDAY_0930)
    drive = Driver(clock, sessions)
    async with sessions() as s:
        specs, leads = await seed(
            s, specialists=1, leads=[("callback", d, None) for d in CALLBACK_DIGITS]
        )
    sim = await start_simulator(clock)
    engine = make_engine(sessions, clock, [("pbx1", sim)])
    service = DialerService(engine)
    with spy_originates(monkeypatch, clock) as spy:
        await engine.start()
        try:
            await engine.wait_connected()
            await service.start_campaign("callback")

            async def settled() -> bool:
                async with sessions() as s:
                    rows = (await s.scalars(select(Lead))).all()
                return all(r.status in ("closed", "scheduled") for r in rows)

            jumps = await drive_days(sessions, drive, settled)
        finally:
            await engine.stop()
            await sim.stop()

    hours = CallingHours()
    assert all(hours.is_open(t) for t, _, _ in spy.times), "a call outside a calling window"
    async with sessions() as s:
        rows = {r.id: r for r in (await s.scalars(select(Lead))).all()}
        phones = {p.id: p for p in (await s.scalars(select(Phone))).all()}
        attempts = (await s.scalars(select(CallAttempt))).all()
        report = await inaccurate_numbers_by_branch(s, clock.now().date())
        days = {a.created_at.date() for a in attempts}
        all_days: dict[int, list[date]] = {}
        for a in attempts:
            all_days.setdefault(a.lead_id, []).append(a.created_at.date())
    by_digit = {d: rows[lead] for d, lead in zip(CALLBACK_DIGITS, leads, strict=False)}
    assert by_digit["8"].contact_result == "confirmed" and by_digit["8"].status == "closed"
    assert phones[by_digit["8"].phone_id].accuracy == "accurate"  # type: ignore[index]
    assert by_digit["9"].status == "scheduled" and by_digit["9"].owner_id == specs[0]
    assert by_digit["9"].callback_at is not None
    for d in "025":  # not reached three times, on three calling days
        lead = by_digit[d]
        assert (lead.status, lead.contact_result) == ("closed", "unreachable")
        assert spy.per_lead[lead.id] == 3
        assert len(set(all_days[lead.id])) == 3, "retries are a calling day apart"
        assert phones[lead.phone_id].accuracy == "inaccurate"  # type: ignore[index]
    assert spy.per_lead[by_digit["6"].id] == 1  # unallocated: inaccurate at once
    assert phones[by_digit["6"].phone_id].accuracy == "inaccurate"  # type: ignore[index]
    assert len(days) >= 3 and jumps >= 2
    # The numbers closed on the last day are on the branch's list for that day.
    listed = {n.number for rows_ in report.values() for n in rows_}
    assert {phones[by_digit[d].phone_id].e164 for d in "025"} <= listed  # type: ignore[index]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_two_dialer_processes_share_leads_and_dial_none_twice(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock(MONDAY_0930)
    drive = Driver(clock, sessions)
    async with sessions() as s:
        _, leads = await seed(s, specialists=0, leads=[("callback", "8", None)] * 1000)
    sims = [await start_simulator(clock), await start_simulator(clock)]
    engines = [make_engine(sessions, clock, [(f"pbx{i}", sim)]) for i, sim in enumerate(sims)]
    with spy_originates(monkeypatch, clock) as spy:
        for e in engines:
            await e.start()
        try:
            for e in engines:
                await e.wait_connected()
            await DialerService(engines[0]).update_campaign(
                "callback", concurrency=100, trunk_max_calls=120, trunk_max_cps=100.0
            )
            await DialerService(engines[0]).start_campaign("callback")
            await engines[1]._load_campaigns()

            async def all_confirmed() -> bool:
                async with sessions() as s:
                    rows = (await s.scalars(select(Lead.status))).all()
                return all(r == "closed" for r in rows)

            await drive_days(sessions, drive, all_confirmed, quantum=0.25)
        finally:
            for e in engines:
                await e.stop()
            for sim in sims:
                await sim.stop()
    assert sorted(spy.per_lead) == sorted(leads)
    assert set(spy.per_lead.values()) == {1}, "a lead was dialled twice"
    assert all(e.stats["originates"] > 100 for e in engines), "both processes dialled"
