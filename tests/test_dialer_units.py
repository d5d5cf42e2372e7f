"""The dialer's small units on their own: the message bus, and the seat store fed through it
(a fake consumer on the bus; the store on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.clock import VirtualClock
from crm_sync.models import Branch, Specialist
from dialer.domain import CustomerPressedKey, SeatChanged
from dialer.messagebus import MessageBus
from dialer.models import SeatSession, SeatTransition
from dialer.seat_store import SeatStore
from dialer.seats import Seat, SeatState
from dialer.tasks import TaskOwner
from tests.virtual_time import Driver

NOW = datetime(2026, 1, 5, 1, 30, tzinfo=UTC)


def test_an_event_reaches_every_subscriber_even_when_one_of_them_fails() -> None:
    bus = MessageBus()
    heard: list[CustomerPressedKey] = []

    def broken(_: CustomerPressedKey) -> None:
        raise RuntimeError("a unit's bug")

    bus.subscribe(CustomerPressedKey, broken)
    bus.subscribe(CustomerPressedKey, heard.append)
    event = CustomerPressedKey("pbx1", "a1", "PJSIP/trunk-1", "2")
    bus.publish(event)
    assert heard == [event]


def test_a_command_has_one_handler_and_returns_its_answer() -> None:
    bus = MessageBus()
    bus.register(int, lambda n: n * 2)
    assert bus.handle(21) == 42
    with pytest.raises(ValueError, match="already has a handler"):
        bus.register(int, lambda n: n)
    with pytest.raises(LookupError, match="no handler for str"):
        bus.handle("nobody")


@contextlib.asynccontextmanager
async def _no_guard(_rank: int) -> AsyncIterator[None]:
    yield


async def _specialist(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as s:
        spec = Specialist(name="专员", seat="PJSIP/8100", branch=Branch(code="B", name="b"))
        s.add(spec)
        await s.commit()
        return spec.id


async def _stored(
    sessions: async_sessionmaker[AsyncSession], sid: int
) -> tuple[str | None, list[str]]:
    """The seat's stored state and the states its stored transitions went to."""
    async with sessions() as s:
        row = await s.get(SeatSession, sid)
        moves = await s.scalars(select(SeatTransition.to_state).order_by(SeatTransition.id))
        return (row.state if row is not None else None), list(moves)


async def test_seat_changes_published_on_the_bus_are_stored_with_their_attempt(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    sid = await _specialist(sessions)
    bus = MessageBus()
    seat = Seat(sid, "PJSIP/8100")
    store = SeatStore(sessions, VirtualClock(NOW), bus, {sid: seat}.get, _no_guard)
    for t in (seat.sign_in(NOW, ready=True), seat.dial(NOW, "att-1")):
        bus.publish(SeatChanged(sid, t))
    await store.flush()
    async with sessions() as s:
        row = await s.get(SeatSession, sid)
        moves = [
            (t.from_state, t.to_state, t.attempt_id)
            for t in (await s.scalars(select(SeatTransition).order_by(SeatTransition.id)))
        ]
    assert row is not None and (row.state, row.attempt_id) == (SeatState.RINGING.value, "att-1")
    assert moves == [("offline", "ready", None), ("ready", "ringing", "att-1")]


async def test_seat_changes_close_together_are_written_together_once_an_interval_and_at_close(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    sid = await _specialist(sessions)
    commits: list[object] = []
    bind = sessions.kw["bind"]
    event.listen(bind.sync_engine, "commit", commits.append)
    bus, clock = MessageBus(), VirtualClock(NOW)
    drive = Driver(clock, sessions)
    seat = Seat(sid, "PJSIP/8100")
    store = SeatStore(sessions, clock, bus, {sid: seat}.get, _no_guard, interval=1.0)
    writer = asyncio.ensure_future(store.run())
    bus.publish(SeatChanged(sid, seat.sign_in(clock.now(), ready=True)))
    await drive.idle()
    assert await _stored(sessions, sid) == ("ready", ["ready"])  # a quiet store: at once
    for t in (seat.dial(clock.now(), "att-1"), seat.answer(clock.now())):
        bus.publish(SeatChanged(sid, t))
    await drive.idle()
    assert await _stored(sessions, sid) == ("ready", ["ready"])  # within the interval: waits
    await clock.advance(1.0)
    await drive.idle()
    assert await _stored(sessions, sid) == ("on_call", ["ready", "ringing", "on_call"])
    assert len(commits) == 2  # the two changes of the interval in one transaction
    bus.publish(SeatChanged(sid, seat.call_end(clock.now(), 5.0)))
    store.close()  # the change pending at the stop is written without waiting the interval
    await drive.idle()
    assert writer.done() and clock.monotonic() == 1.0
    assert await _stored(sessions, sid) == ("wrap_up", ["ready", "ringing", "on_call", "wrap_up"])


async def test_the_task_owner_cancels_every_kind_of_task_and_a_failed_job_harms_no_other() -> None:
    clock = VirtualClock(NOW)
    owner = TaskOwner(clock)

    async def forever() -> None:
        await asyncio.Event().wait()

    async def broken() -> None:
        raise RuntimeError("a job's bug")

    owner.worker(forever(), "dialer-dispatch")
    owner.campaign(1, forever())
    owner.timer(7, forever())
    owner.timer(7, forever())  # replaces (and cancels) the seat's earlier timer
    failed = owner.job(broken())
    survivor = owner.job(forever())
    with contextlib.suppress(RuntimeError):
        await failed
    await asyncio.sleep(0)  # the done-callback runs on the next turn of the loop
    assert failed not in owner.jobs and not survivor.done()
    tasks = owner.all()
    assert len(tasks) == 4
    await owner.cancel_all()
    assert all(t.done() for t in tasks) and owner.all() == []
