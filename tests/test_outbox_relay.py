"""The outbox relay against a real webhook receiver on loopback, on SQLite and PostgreSQL.

Time that the relay waits (backoff, Retry-After, leases) is the VirtualClock's, moved by the
test; the only real time is the HTTP round trip (and the sink's timeout in the hang test)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.database import create_engine
from crm_sync.models import OutboxMessage, OutboxState
from crm_sync.relay import OutboxRelay, RelayOptions
from crm_sync.sinks import NoneSink, WebhookSink
from schedules.clock import VirtualClock
from tests.outbox_support import SECRET, Answer, Receiver, write_messages

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
OPTIONS = RelayOptions(batch=100, key_batch=5, concurrency=8, lease=60, retry_base=2, retry_max=60)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
async def receiver(clock: VirtualClock) -> AsyncIterator[Receiver]:
    r = Receiver([SECRET], clock.now)
    await r.start()
    yield r
    await r.stop()


def relay_for(
    engine: AsyncEngine,
    clock: VirtualClock,
    receiver: Receiver,
    *,
    name: str = "relay-a",
    timeout: float = 5.0,
    options: RelayOptions = OPTIONS,
) -> OutboxRelay:
    sink = WebhookSink(receiver.url, [SecretStr(SECRET)], clock, timeout=timeout)
    return OutboxRelay(engine, clock, sink, options, name=name, rand=lambda: 0.0)


async def drain(relay: OutboxRelay, rounds: int = 50) -> int:
    """Rounds until one claims nothing (time does not move here); returns how many it
    delivered."""
    delivered = 0
    for _ in range(rounds):
        report = await relay.run_once()
        delivered += report.delivered
        if report.claimed == 0:
            return delivered
    raise AssertionError("the relay still had work after 50 rounds")


async def states(sessions: async_sessionmaker[AsyncSession]) -> dict[int, OutboxMessage]:
    async with sessions() as s:
        return {m.id: m for m in (await s.scalars(select(OutboxMessage))).all()}


async def test_every_message_arrives_signed_once_and_in_order_per_lead(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    clock: VirtualClock,
    receiver: Receiver,
) -> None:
    keys = [f"lead:{n}" for n in range(1, 7)]
    ids = await write_messages(sessions, clock.now(), keys, per_key=8)
    relay = relay_for(engine, clock, receiver)
    try:
        await drain(relay)
    finally:
        await relay.sink.close()
    assert sorted(int(k) for k in receiver.accepted) == sorted(ids)
    assert receiver.forged == 0 and receiver.duplicates == []
    for key in keys:
        got = receiver.ids_for(key)
        assert got == sorted(got) and len(got) == 8
    rows = await states(sessions)
    assert {m.state for m in rows.values()} == {OutboxState.DELIVERED.value}
    assert {m.sink for m in rows.values()} == {"webhook"}
    assert all(m.delivered_at == START and m.lease_owner is None for m in rows.values())
    doc = receiver.accepted[str(ids[0])]
    assert doc["schema"] == "callcenter.lead.status/v1" and doc["data"]["reason"] == "step 0"


async def test_a_failing_lead_waits_for_its_backoff_and_blocks_only_itself(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    clock: VirtualClock,
    receiver: Receiver,
) -> None:
    ids = await write_messages(sessions, clock.now(), ["lead:1", "lead:2"], per_key=3)
    failures = {"lead:1": 2}

    def script(doc: dict[str, object]) -> Answer | None:
        key = str(doc["key"])
        if failures.get(key, 0) > 0:
            failures[key] -= 1
            return Answer(500, "database is down")
        return None

    receiver.script = script
    relay = relay_for(engine, clock, receiver)
    try:
        await drain(relay)
        # lead:2 went through; lead:1's head failed and nothing behind it overtook it.
        assert len(receiver.ids_for("lead:2")) == 3
        assert receiver.ids_for("lead:1") == []
        head = (await states(sessions))[ids[0]]
        assert head.state == "pending" and head.attempts == 1
        assert head.next_try_at == START + timedelta(seconds=1)  # base 2 s, jitter 0: 1 s
        assert head.history and head.history[0]["status"] == 500
        assert "database is down" in (head.last_error or "")
        await clock.advance(0.5)
        assert (await relay.run_once()).claimed == 0  # not due yet
        await clock.advance(0.5)
        await drain(relay)  # second failure: 2 s backoff now
        assert receiver.ids_for("lead:1") == []
        await clock.advance(2)
        await drain(relay)
    finally:
        await relay.sink.close()
    assert receiver.ids_for("lead:1") == sorted(ids[0::2])
    head = (await states(sessions))[ids[0]]
    assert head.state == "delivered" and head.attempts == 3
    assert [h["result"] for h in head.history or []] == ["retry", "retry", "delivered"]


async def test_429_with_retry_after_is_honoured_over_the_shorter_backoff(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    clock: VirtualClock,
    receiver: Receiver,
) -> None:
    [mid] = await write_messages(sessions, clock.now(), ["lead:9"], per_key=1)
    answers = [Answer(429, "slow down", {"Retry-After": "120"})]
    receiver.script = lambda _doc: answers.pop() if answers else None
    relay = relay_for(engine, clock, receiver)
    try:
        await drain(relay)
        assert (await states(sessions))[mid].next_try_at == START + timedelta(seconds=120)
        await clock.advance(119)
        assert (await relay.run_once()).claimed == 0
        await clock.advance(1)
        await drain(relay)
    finally:
        await relay.sink.close()
    assert list(receiver.accepted) == [str(mid)]


async def test_a_refusal_is_parked_with_the_receivers_answer_and_the_lead_moves_on(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    clock: VirtualClock,
    receiver: Receiver,
) -> None:
    ids = await write_messages(sessions, clock.now(), ["lead:3"], per_key=3)
    receiver.script = lambda doc: (
        Answer(422, '{"error": "unknown policy"}') if doc["id"] == ids[0] else None
    )
    relay = relay_for(engine, clock, receiver)
    try:
        await drain(relay)
    finally:
        await relay.sink.close()
    rows = await states(sessions)
    assert rows[ids[0]].state == "parked"
    assert rows[ids[0]].parked_reason == 'HTTP 422: {"error": "unknown policy"}'
    assert receiver.ids_for("lead:3") == ids[1:]
    assert receiver.requests.count(ids[0]) == 1  # never retried blindly


async def test_a_receiver_that_does_not_answer_times_out_and_is_tried_again(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    clock: VirtualClock,
    receiver: Receiver,
) -> None:
    [mid] = await write_messages(sessions, clock.now(), ["lead:4"], per_key=1)
    hangs = [Answer(hang=True)]
    receiver.script = lambda _doc: hangs.pop() if hangs else None
    relay = relay_for(engine, clock, receiver, timeout=0.3)
    try:
        await drain(relay)
        row = (await states(sessions))[mid]
        assert row.state == "pending" and "no answer within 0.3 s" in (row.last_error or "")
        await clock.advance(1)
        await drain(relay)
    finally:
        receiver.release.set()
        await relay.sink.close()
    assert list(receiver.accepted) == [str(mid)]


async def test_a_receiver_gone_for_a_while_gets_everything_when_it_comes_back(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    clock: VirtualClock,
    receiver: Receiver,
) -> None:
    await receiver.stop()
    keys = [f"lead:{n}" for n in range(1, 5)]
    ids = await write_messages(sessions, clock.now(), keys, per_key=4)
    relay = relay_for(engine, clock, receiver)
    try:
        for _ in range(4):  # down for 1 + 2 + 4 + 8 s of backoff
            await drain(relay)
            await clock.advance(60)
        rows = await states(sessions)
        assert all(m.state == "pending" for m in rows.values())
        assert "network" in (rows[ids[0]].last_error or "")
        await receiver.start()  # back on the same port
        await clock.advance(60)
        await drain(relay)
    finally:
        await relay.sink.close()
    assert sorted(int(k) for k in receiver.accepted) == sorted(ids)
    for key in keys:
        assert receiver.ids_for(key) == sorted(receiver.ids_for(key))


async def test_an_answer_lost_after_acceptance_is_sent_again_and_dropped_as_a_duplicate(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    clock: VirtualClock,
    receiver: Receiver,
) -> None:
    [mid] = await write_messages(sessions, clock.now(), ["lead:5"], per_key=1)
    lost = [Answer(503, "proxy lost the answer", accept_first=True)]
    receiver.script = lambda _doc: lost.pop() if lost else None
    relay = relay_for(engine, clock, receiver)
    try:
        await drain(relay)
        await clock.advance(5)
        await drain(relay)
    finally:
        await relay.sink.close()
    assert receiver.requests == [mid, mid]
    assert receiver.duplicates == [mid] and list(receiver.accepted) == [str(mid)]
    assert (await states(sessions))[mid].state == "delivered"


async def test_a_relay_killed_mid_batch_loses_nothing(
    db_url: str,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    clock: VirtualClock,
    receiver: Receiver,
) -> None:
    keys = [f"lead:{n}" for n in range(1, 4)]
    ids = await write_messages(sessions, clock.now(), keys, per_key=4)
    seen: list[int] = []
    hung = asyncio.Event()

    def script(doc: dict[str, object]) -> Answer | None:
        seen.append(int(str(doc["id"])))
        if len(seen) >= 5:  # the "crash" comes mid-batch, with requests in flight
            hung.set()
            return Answer(hang=True)
        return None

    receiver.script = script
    doomed = relay_for(engine, clock, receiver, name="doomed")
    task = asyncio.create_task(doomed.run_once())
    await asyncio.wait_for(hung.wait(), 10)
    task.cancel()  # killed: no verdict recorded, its leases stay behind
    with pytest.raises(asyncio.CancelledError):
        await task
    await doomed.sink.close()
    receiver.release.set()
    receiver.script = lambda _doc: None

    other_engine = create_engine(db_url)
    survivor = relay_for(other_engine, clock, receiver, name="survivor")
    try:
        assert (await survivor.run_once()).claimed == 0  # the dead relay's leases still hold
        await clock.advance(61)
        await drain(survivor)
    finally:
        await survivor.sink.close()
        await other_engine.dispose()
    assert sorted(int(k) for k in receiver.accepted) == sorted(ids)
    for key in keys:
        assert receiver.ids_for(key) == sorted(receiver.ids_for(key))
    assert all(m.state == "delivered" for m in (await states(sessions)).values())


async def test_two_relays_on_postgresql_deliver_each_message_once(
    db_url: str,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    clock: VirtualClock,
    receiver: Receiver,
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several relay processes share one PostgreSQL; SQLite runs one service")
    keys = [f"lead:{n}" for n in range(1, 41)]
    ids = await write_messages(sessions, clock.now(), keys, per_key=10)
    small = RelayOptions(batch=25, key_batch=3, concurrency=8, lease=60)
    engines = [create_engine(db_url), create_engine(db_url)]
    relays = [
        relay_for(e, clock, receiver, name=f"relay-{n}", options=small)
        for n, e in enumerate(engines)
    ]
    try:
        first = await asyncio.gather(*(drain(r, rounds=200) for r in relays))
        second = await asyncio.gather(*(drain(r, rounds=200) for r in relays))
        assert all(n > 0 for n in first)  # both took part
        assert sum(first) + sum(second) == len(ids)
    finally:
        for r, e in zip(relays, engines, strict=True):
            await r.sink.close()
            await e.dispose()
    assert sorted(receiver.requests) == sorted(ids)  # each sent exactly once, between them
    assert receiver.duplicates == []
    for key in keys:
        assert receiver.ids_for(key) == sorted(receiver.ids_for(key))
    async with sessions() as s:
        by = {m.lease_owner for m in (await s.scalars(select(OutboxMessage))).all()}
    assert by == {None}


async def test_without_a_sink_the_outbox_is_marked_delivered_to_none(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], clock: VirtualClock
) -> None:
    await write_messages(sessions, clock.now(), ["lead:1", "lead:2"], per_key=3)
    relay = OutboxRelay(engine, clock, NoneSink(), OPTIONS, name="none")
    await drain(relay)
    rows = await states(sessions)
    assert {(m.state, m.sink) for m in rows.values()} == {("delivered", "none")}


async def test_the_running_relay_delivers_a_committed_message_without_the_clock_moving_on_postgresql(
    db_url: str,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    clock: VirtualClock,
    receiver: Receiver,
) -> None:
    """PostgreSQL: the NOTIFY at commit wakes the relay; virtual time stands still."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has no notifications (see the polling test)")
    relay = relay_for(engine, clock, receiver)
    await relay.start()
    try:
        await asyncio.wait_for(clock.sleeper_added(), 10)  # idle, waiting on the clock
        [mid] = await write_messages(sessions, clock.now(), ["lead:7"], per_key=1)
        while str(mid) not in receiver.accepted:
            receiver.arrived.clear()
            await asyncio.wait_for(receiver.arrived.wait(), 10)
    finally:
        await relay.stop()
    assert clock.now() == START


async def test_the_running_relay_on_sqlite_finds_a_message_at_its_next_poll(
    db_url: str,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    clock: VirtualClock,
    receiver: Receiver,
) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL is woken by NOTIFY")
    relay = relay_for(engine, clock, receiver)
    waiting = clock.sleeper_added()
    await relay.start()
    try:
        await asyncio.wait_for(waiting, 10)
        [mid] = await write_messages(sessions, clock.now(), ["lead:7"], per_key=1)
        assert str(mid) not in receiver.accepted
        waiting = clock.sleeper_added()
        await clock.advance(OPTIONS.poll)
        await asyncio.wait_for(waiting, 10)  # back to sleep after its round
    finally:
        await relay.stop()
    assert list(receiver.accepted) == [str(mid)]


async def test_a_day_of_results_with_the_receiver_down_for_hours_arrives_whole_and_in_order(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    clock: VirtualClock,
    receiver: Receiver,
) -> None:
    """Ten hours of calls, 30 leads, three messages per call; the receiver is away from the
    third hour to the fifth and loses every seventh answer after accepting (a duplicate
    comes back). Relay rounds run every simulated minute."""
    keys = [f"lead:{n}" for n in range(1, 31)]
    written: list[int] = []
    seen = 0

    def flaky(_doc: dict[str, object]) -> Answer | None:
        nonlocal seen
        seen += 1
        return Answer(502, "bad gateway", accept_first=True) if seen % 7 == 0 else None

    receiver.script = flaky
    relay = relay_for(engine, clock, receiver)
    try:
        for minute in range(10 * 60):
            if minute == 3 * 60:
                await receiver.stop()
            if minute == 5 * 60:
                await receiver.start()
            if minute % 10 == 0:  # a call ends for three leads every ten minutes
                batch = keys[(minute // 10) % 10 * 3 :][:3]
                written += await write_messages(sessions, clock.now(), batch, per_key=3)
            await relay.run_once()
            await clock.advance(60)
        for _ in range(30):  # the backlog's last retries (backoff at most 60 s here)
            await clock.advance(60)
            await drain(relay)
    finally:
        await relay.sink.close()
    assert sorted(int(k) for k in receiver.accepted) == sorted(written)
    assert receiver.duplicates  # answers were lost, and the idempotency key caught them
    for key in keys:
        got = receiver.ids_for(key)
        assert got == sorted(got) and got
    assert {m.state for m in (await states(sessions)).values()} == {"delivered"}


async def test_stopping_returns_at_once_even_for_a_worker_caught_in_its_idle_query(
    db_url: str,
    engine: AsyncEngine,
    clock: VirtualClock,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two workers share one wake-up event and clear it: a worker whose idle query was still
    running when stop() came must not then go to sleep for its poll (30 s) and be cancelled
    at the end of the grace, which held every PostgreSQL test's teardown for 5 s."""
    if not db_url.startswith("postgresql"):
        pytest.skip("one worker on SQLite: nobody else clears the wake-up")
    relay = relay_for(engine, clock, receiver)
    assert relay.options.workers == 2
    gate, held, callers = asyncio.Event(), asyncio.Event(), 0
    query = relay.next_due_in

    async def next_due_in(s: AsyncSession, now: datetime) -> float | None:
        nonlocal callers
        callers += 1
        if callers == 2:  # the second worker stays in its query until the test says
            held.set()
            await gate.wait()
        return await query(s, now)

    monkeypatch.setattr(relay, "next_due_in", next_due_in)
    sleeping = clock.sleeper_added()
    await relay.start()
    await asyncio.wait_for(asyncio.gather(sleeping, held.wait()), 10)
    stopping = asyncio.create_task(relay.stop(grace=60))
    for _ in range(50):  # loop turns: the first worker wakes, clears the event and leaves
        await asyncio.sleep(0)
    assert not stopping.done()
    slept = asyncio.ensure_future(clock.sleeper_added())
    gate.set()
    done, _ = await asyncio.wait({stopping, slept}, timeout=30, return_when="FIRST_COMPLETED")
    slept.cancel()
    assert stopping in done, "the caught worker went to sleep on the clock instead of stopping"
    await stopping
