"""The dialer's rules without a PBX: queue order, do-not-call, the window checked at send
time, preview, customer first, dispositions. A fake AMI link records what would be sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.models import Lead, OutboxMessage, Phone
from dialer import queues
from dialer.ami.connection import Reply
from dialer.ami.protocol import HeaderValue, Message
from dialer.ami.supervisor import AmiConfig
from dialer.engine import AmiServerSpec, DialerConfig, DialerEngine
from dialer.exceptions import DialerError, NotYourLead, NotYourSeat, UnknownResult
from dialer.models import CallAttempt, Campaign
from dialer.results import Finished, record_result
from dialer.services import DialerService
from schedules.clock import VirtualClock
from schedules.retry import RetryConfig
from schedules.timeline import TimelineRules
from tests.test_dialer_support import seed

MONDAY_1000 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # 10:00 Shanghai


class FakeLink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    @property
    def connected(self) -> bool:
        return True

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(
        self,
        action: str,
        headers: Mapping[str, HeaderValue] | None = None,
        *,
        action_id: str | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> Reply:
        self.sent.append((action, dict(headers or {})))
        return Reply(Message((("Response", "Success"), ("ActionID", action_id or ""))))


def _engine(
    sessions: async_sessionmaker[AsyncSession], clock: VirtualClock, link: FakeLink
) -> DialerEngine:
    def factory(spec: AmiServerSpec, clock_: Any, on_event: Any, on_resync: Any) -> FakeLink:
        return link

    return DialerEngine(
        sessions,
        clock,
        [AmiServerSpec("pbx1", AmiConfig())],
        config=DialerConfig(wrap_up_seconds=5, idle_recheck_seconds=30),
        link_factory=factory,
    )


async def until(cond: Callable[[], Awaitable[bool]], timeout_real: float = 30.0) -> None:
    """Poll `cond` on every turn of the loop. The bound is real seconds, not a number of
    turns: the engine's database work runs in threads, and on a loaded machine thousands
    of turns can pass before one query returns."""
    deadline = time.monotonic() + timeout_real
    while not await cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition never became true")
        await asyncio.sleep(0)


async def _attempts(sessions: async_sessionmaker[AsyncSession]) -> Sequence[CallAttempt]:
    async with sessions() as s:
        return (await s.scalars(select(CallAttempt).order_by(CallAttempt.id))).all()


async def test_queue_takes_due_appointments_first_then_by_policy_expiry(
    session: AsyncSession,
) -> None:
    specs, leads = await seed(session, specialists=1, leads=[("renewal", "0", 0) for _ in range(4)])
    rows = {r.id: r for r in (await session.scalars(select(Lead))).all()}
    rows[leads[3]].callback_at = MONDAY_1000 - timedelta(minutes=5)  # a due appointment
    rows[leads[2]].callback_at = MONDAY_1000 + timedelta(hours=1)  # not yet due
    rows[leads[2]].next_attempt_at = MONDAY_1000 + timedelta(hours=1)
    await session.commit()
    got = await queues.fetch_candidates(
        session,
        queues.specialist_queue(specs[0], ["renewal"], MONDAY_1000),
        limit=10,
        now=MONDAY_1000,
        lock=False,
    )
    # seed() gives expiries +25, +26, +27 days by index: lead 0 expires first.
    assert [c.lead_id for c in got] == [leads[3], leads[0], leads[1]]
    assert got[0].appointment


async def test_a_number_on_the_do_not_call_list_is_never_claimed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        specs, leads = await seed(s, specialists=1, leads=[("renewal", "0", 0)] * 2)
    clock = VirtualClock(MONDAY_1000)
    link = FakeLink()
    engine = _engine(sessions, clock, link)
    service = DialerService(engine)
    async with sessions() as s:
        first = await s.get(Lead, leads[0])
        assert first is not None
        blocked = await s.scalar(select(Phone.e164).where(Phone.id == first.phone_id))
    await service.add_do_not_call(str(blocked), "customer asked")
    await engine.start()
    try:
        await service.start_campaign("renewal")
        await service.sign_in(specs[0], ready=True)
        await until(lambda: _count(link, 1))
        for _ in range(200):
            await asyncio.sleep(0)
    finally:
        await engine.stop()
    assert [h["Exten"] for _, h in link.sent] != [blocked]
    assert [a.lead_id for a in await _attempts(sessions)] == [leads[1]]


async def _count(link: FakeLink, n: int) -> bool:
    return len(link.sent) >= n


async def test_the_window_is_checked_when_sending_not_when_queued(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        specs, _ = await seed(s, specialists=2, leads=[("renewal", "0", 0), ("renewal", "0", 1)])
    # 10:59:40: the first call may ring 19 s; the second waits 10 s for the trunk, when
    # less than the minimum ring time (15 s) is left of the window.
    clock = VirtualClock(datetime(2026, 1, 5, 2, 59, 40, tzinfo=UTC))
    link = FakeLink()
    engine = _engine(sessions, clock, link)
    service = DialerService(engine)
    await engine.start()
    try:
        # One new call every 10 s on the trunk: the second one waits past 11:00.
        await service.update_campaign("renewal", trunk_max_cps=0.1)
        await service.start_campaign("renewal")
        await service.sign_in(specs[0], ready=True)
        await service.sign_in(specs[1], ready=True)

        async def both_claimed() -> bool:
            return len(await _attempts(sessions)) == 2

        await until(both_claimed)
        await until(lambda: _count(link, 1))
        await clock.advance(11)

        async def second_settled() -> bool:
            return all(
                a.ended_at is not None for a in await _attempts(sessions) if a.sent_at is None
            )

        await until(second_settled)
    finally:
        await engine.stop()
    assert len(link.sent) == 1
    unsent = [a for a in await _attempts(sessions) if a.outcome == "not_sent"]
    assert len(unsent) == 1 and "window" in (unsent[0].reason or "")
    async with sessions() as s:
        lead = await s.get(Lead, unsent[0].lead_id)
        assert lead is not None and lead.attempt_count == 0
        assert lead.next_attempt_at == datetime(2026, 1, 5, 7, 30, tzinfo=UTC)  # 15:30


async def test_no_call_starts_in_the_last_seconds_of_a_window(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        specs, _ = await seed(s, specialists=1, leads=[("renewal", "0", 0)])
    clock = VirtualClock(datetime(2026, 1, 5, 2, 59, 57, tzinfo=UTC))  # 10:59:57
    link = FakeLink()
    engine = _engine(sessions, clock, link)
    service = DialerService(engine)
    await engine.start()
    try:
        await service.start_campaign("renewal")
        await service.sign_in(specs[0], ready=True)
        for _ in range(10):
            await clock.advance(1)
    finally:
        await engine.stop()
    assert link.sent == []  # 3 s left at 10:59:57: an Originate now would ring after 11:00


async def test_preview_dials_only_after_the_specialist_confirms(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        specs, leads = await seed(s, specialists=1, leads=[("renewal", "0", 0)])
    clock = VirtualClock(MONDAY_1000)
    link = FakeLink()
    engine = _engine(sessions, clock, link)
    service = DialerService(engine)
    await engine.start()
    try:
        await service.update_campaign("renewal", mode="preview")
        await service.start_campaign("renewal")
        await service.sign_in(specs[0], ready=True)

        async def offered() -> bool:
            return (await service.seat(specs[0]))["preview"]

        await until(offered)
        pop = await service.current_call(specs[0])
        assert pop is not None and pop["lead"]["id"] == leads[0]
        assert pop["customer"]["name"] and pop["policy"]["policy_number"]
        assert link.sent == []
        await service.confirm_preview(specs[0])
    finally:
        await engine.stop()
    ((action, headers),) = link.sent
    assert action == "Originate" and headers["Channel"] == "PJSIP/8100"


async def test_customer_first_dials_the_customer_and_names_the_reserved_seat(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        specs, _ = await seed(s, specialists=1, leads=[("renewal", "0", 0)])
    clock = VirtualClock(MONDAY_1000)
    link = FakeLink()
    engine = _engine(sessions, clock, link)
    service = DialerService(engine)
    await engine.start()
    try:
        await service.update_campaign("renewal", mode="customer_first")
        await service.start_campaign("renewal")
        await service.sign_in(specs[0], ready=True)
        await until(lambda: _count(link, 1))
    finally:
        await engine.stop()
    ((_, headers),) = link.sent
    attempt = (await _attempts(sessions))[0]
    assert headers["Channel"] == "PJSIP/13900000000@carrier"
    assert headers["Exten"] == "connect-seat"
    assert headers["ActionID" if "ActionID" in headers else "ChannelId"] == attempt.attempt_id
    assert headers["Variable"]["SEAT"] == "8100"  # type: ignore[index]
    assert headers["Variable"]["ATTEMPT_ID"] == attempt.attempt_id  # type: ignore[index]


async def test_dispose_is_for_own_leads_and_an_appointment_moves_into_the_window(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        specs, leads = await seed(s, specialists=2, leads=[("renewal", "0", 0)])
    clock = VirtualClock(MONDAY_1000)
    service = DialerService(_engine(sessions, clock, FakeLink()))
    with pytest.raises(NotYourLead):
        await service.dispose(leads[0], specs[1], "renewed")
    with pytest.raises(UnknownResult):
        await service.dispose(leads[0], specs[0], "busy")  # the dialer's own result
    noon = datetime(2026, 1, 5, 4, 0, tzinfo=UTC)  # 12:00 Shanghai, between the windows
    view = await service.dispose(leads[0], specs[0], "callback", callback_at=noon, note="客户午休")
    assert view["status"] == "scheduled"
    assert view["callback_at"] == datetime(2026, 1, 5, 7, 30, tzinfo=UTC).isoformat()
    async with sessions() as s:
        msgs = (await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    assert [m.topic for m in msgs] == ["lead.contact_result", "lead.status"]
    assert msgs[0].payload["note"] == "客户午休"


async def test_a_reminder_that_was_never_dialled_is_still_due(session: AsyncSession) -> None:
    _, leads = await seed(session, specialists=0, leads=[("renewal", "0", None)] * 3)
    phones = {lead.id: lead.phone_id for lead in (await session.scalars(select(Lead))).all()}
    for lead_id, outcome in ((leads[0], "not_sent"), (leads[1], "no_answer")):
        session.add(
            CallAttempt(
                attempt_id=queues.new_attempt_id(),
                lead_id=lead_id,
                phone_id=phones[lead_id],
                number=f"+8613900000{lead_id:03d}",
                mode="automatic",
                campaign_kind="reminder",
                ami_server="pbx1",
                state="ended",
                outcome=outcome,
                created_at=MONDAY_1000,
                ended_at=MONDAY_1000,
            )
        )
    await session.commit()
    got = await queues.fetch_candidates(
        session,
        queues.reminder_queue(MONDAY_1000, MONDAY_1000.date(), TimelineRules()),
        limit=10,
        now=MONDAY_1000,
        lock=False,
    )
    # Window closed or link down at send time: nobody was called, the reminder is still owed.
    assert sorted(c.lead_id for c in got) == sorted([leads[0], leads[2]])


async def test_campaign_settings_are_checked_before_they_are_stored(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = VirtualClock(MONDAY_1000)
    engine = _engine(sessions, clock, FakeLink())
    await engine.ensure_default_campaigns()
    service = DialerService(engine)
    bad: list[tuple[str, dict[str, Any], str]] = [
        ("renewal", {"mode": "robocall"}, "mode"),
        ("renewal", {"mode": "automatic"}, "mode"),  # a specialist campaign stays one
        ("reminder", {"mode": "seat_first"}, "mode"),
        ("callback", {"concurrency": "50"}, "concurrency"),
        ("callback", {"concurrency": True}, "concurrency"),
        ("callback", {"concurrency": -1}, "concurrency"),
        ("renewal", {"trunk_max_cps": 0}, "trunk_max_cps"),
        ("renewal", {"trunk_max_calls": 2.5}, "trunk_max_calls"),
        ("renewal", {"caller_id": '"x" <95500>\r\nChannel: PJSIP/1@carrier'}, "caller_id"),
        ("renewal", {"trunk": "carrier\r\nX: y"}, "trunk"),
        ("reminder", {"message": "hello,world\n"}, "message"),
        ("renewal", {"running": True}, "running"),
    ]
    for name, changes, field_ in bad:
        with pytest.raises(DialerError) as err:
            await service.update_campaign(name, **changes)
        assert err.value.status == 400 and field_ in err.value.reason, (changes, err.value)
    ok = await service.update_campaign(
        "renewal", mode="preview", trunk_max_cps=2, caller_id='"续保专员" <95500>'
    )
    assert (ok["mode"], ok["trunk_max_cps"], ok["caller_id"]) == (
        "preview",
        2.0,
        '"续保专员" <95500>',
    )
    async with sessions() as s:
        stored = {c.name: c for c in (await s.scalars(select(Campaign))).all()}
    assert stored["callback"].concurrency == 10 and stored["reminder"].mode == "automatic"


async def test_a_callback_booked_to_a_specialist_rings_that_specialists_seat(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        specs, leads = await seed(s, specialists=1, leads=[("callback", "0", None)])
    link = FakeLink()
    engine = _engine(sessions, VirtualClock(MONDAY_1000), link)
    # The automatic callback call: the customer pressed 2 (talk to a person).
    async with sessions() as s:
        lead = await s.get(Lead, leads[0])
        assert lead is not None
        auto = CallAttempt(
            attempt_id=queues.new_attempt_id(),
            lead_id=lead.id,
            phone_id=lead.phone_id,
            number="+8613900000000",
            mode="automatic",
            campaign_kind="callback",
            ami_server="pbx1",
            created_at=MONDAY_1000,
        )
        s.add(auto)
        await s.flush()
        fin = Finished(auto.attempt_id, "answered", answered=True, key_pressed="2", talk_seconds=9)
        eff = await record_result(
            s, auto, fin, now=MONDAY_1000, hours_for=engine.hours_for, retry=RetryConfig()
        )
        await s.commit()
        assert eff.book_specialist and lead.owner_id == specs[0] and lead.status == "scheduled"
        booked_at = lead.callback_at
    assert booked_at is not None
    # The appointment's time: only the specialist campaigns run; callback stays automatic.
    clock = VirtualClock(booked_at + timedelta(seconds=1))
    engine = _engine(sessions, clock, link)
    service = DialerService(engine)
    await engine.start()
    try:
        await service.start_campaign("renewal")
        await service.sign_in(specs[0], ready=True)
        await until(lambda: _count(link, 1))
    finally:
        await engine.stop(grace=0)
    ((action, headers),) = link.sent
    assert action == "Originate" and headers["Channel"] == "PJSIP/8100"
    assert headers["Variable"]["LEAD_ID"] == str(leads[0])  # type: ignore[index]
    call = [a for a in await _attempts(sessions) if a.attempt_id != auto.attempt_id]
    assert [(a.specialist_id, a.campaign_kind, a.mode) for a in call] == [
        (specs[0], "callback", "seat_first")
    ]


async def test_a_seat_paused_while_its_claim_commits_dials_nothing_and_frees_the_lead(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        specs, leads = await seed(s, specialists=1, leads=[("renewal", "0", 0)])
    clock = VirtualClock(MONDAY_1000)
    link = FakeLink()
    paused: list[str] = []

    def pausing_sessions() -> AsyncSession:
        """Sessions whose commit of a new attempt lets the specialist pause meanwhile."""
        s = sessions()
        commit = s.commit

        async def commit_then_pause() -> None:
            claiming = any(isinstance(o, CallAttempt) for o in s.new)
            await commit()
            if claiming and not paused:
                seat = engine.seats[specs[0]]
                engine._record(seat, seat.pause(clock.now(), "break"))
                paused.append(seat.state.value)

        s.commit = commit_then_pause  # type: ignore[method-assign]
        return s

    engine = _engine(pausing_sessions, clock, link)  # type: ignore[arg-type]
    service = DialerService(engine)
    await engine.start()
    try:
        await service.start_campaign("renewal")
        await service.sign_in(specs[0], ready=True)

        async def settled() -> bool:
            rows = await _attempts(sessions)
            return bool(rows) and all(a.ended_at is not None for a in rows)

        await until(settled)
    finally:
        await engine.stop(grace=0)
    assert paused == ["paused"] and link.sent == []
    (attempt,) = await _attempts(sessions)
    assert attempt.outcome == "not_sent" and "seat" in (attempt.reason or "")
    async with sessions() as s:
        lead = await s.get(Lead, leads[0])
        assert lead is not None and lead.attempt_count == 0
        assert lead.next_attempt_at is not None and lead.next_attempt_at <= MONDAY_1000


async def test_a_specialist_signs_in_only_at_their_own_seat(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        specs, _ = await seed(s, specialists=2, leads=[])
    service = DialerService(_engine(sessions, VirtualClock(MONDAY_1000), FakeLink()))
    for device in ("PJSIP/8101", "PJSIP/13800000000@carrier"):  # a colleague; a trunk
        with pytest.raises(NotYourSeat) as err:
            await service.sign_in(specs[0], device)
        assert err.value.status == 403
    assert specs[0] not in service.engine.seats
    assert (await service.sign_in(specs[0], "PJSIP/8100"))["seat"] == "PJSIP/8100"
