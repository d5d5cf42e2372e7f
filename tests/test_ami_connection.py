"""AmiConnection over real TCP against the simulator (ephemeral ports, no sleeps)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from dialer.ami.connection import AmiConnection
from dialer.ami.exceptions import AmiAuthError, AmiDisconnected
from dialer.ami.protocol import Message
from dialer.simulator import PbxSimulator
from schedules.clock import VirtualClock
from tests.virtual_time import Driver

SECRET = "dialer-secret"


async def until(
    cond: Callable[[], bool], clock: VirtualClock | None = None, limit: int = 5000
) -> None:
    """Poll `cond`. With a `clock`, the clock moves only when the loop is idle (the project's
    Driver), so no timer fires while bytes are still on their way; without one, the loop
    turns `limit` times (loopback bytes are readable at the next turn)."""
    if clock is not None:
        await Driver(clock).until(cond, within=60.0)
        return
    for _ in range(limit):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def sim(clock: VirtualClock) -> AsyncIterator[PbxSimulator]:
    s = PbxSimulator(clock=clock, users={"dialer": SECRET})
    await s.start("127.0.0.1", 0)
    yield s
    await s.stop()


def _conn(sim: PbxSimulator, clock: VirtualClock, **kw: Any) -> AmiConnection:
    kw.setdefault("secret", SECRET)
    return AmiConnection(
        sim.host, sim.port, username="dialer", clock=clock, event_parser=lambda m: m, **kw
    )


async def test_plain_login_then_ping_and_the_banner(sim: PbxSimulator, clock: VirtualClock) -> None:
    conn = _conn(sim, clock)
    seen: list[Message] = []
    conn.subscribe(seen.append)
    await conn.connect()
    reply = await conn.send("Ping")
    assert reply.ok and reply["Ping"] == "Pong" and "Timestamp" in reply.response
    assert conn.banner == "Asterisk Call Manager/11.0.0"
    await until(lambda: len(seen) >= 2)
    assert [m.name for m in seen[:2]] == ["FullyBooted", "SuccessfulAuth"]
    await conn.close()
    assert not conn.connected


async def test_md5_challenge_login_works(sim: PbxSimulator, clock: VirtualClock) -> None:
    conn = _conn(sim, clock, auth="md5", events=False)
    await conn.connect()
    assert (await conn.send("Ping")).ok
    assert sim.action_counts["Challenge"] == 1
    await conn.close()


async def test_wrong_secret_is_refused(sim: PbxSimulator, clock: VirtualClock) -> None:
    conn = _conn(sim, clock, secret="wrong")
    task = asyncio.create_task(conn.connect())
    await until(lambda: task.done(), clock)  # the simulator answers after 1 s, like Asterisk
    with pytest.raises(AmiAuthError, match="Authentication failed"):
        task.result()
    assert not conn.connected


async def test_event_list_action_returns_every_list_event(
    sim: PbxSimulator, clock: VirtualClock
) -> None:
    conn = _conn(sim, clock)
    await conn.connect()
    r = await conn.send(
        "Originate",
        {
            "Channel": "Local/8001@seats",
            "Context": "dialer",
            "Exten": "13800000017",
            "Async": "true",
        },
        action_id="att-1",
    )
    assert r["Message"] == "Originate successfully queued"
    await until(lambda: len(sim.pbx.channels) == 4, clock)
    reply = await conn.send("CoreShowChannels")
    assert reply.ok
    assert sorted(m["Channel"].rsplit("-", 1)[0] for m in reply.events) == [
        "Local/13800000017@customers",
        "Local/13800000017@customers",
        "Local/8001@seats",
        "Local/8001@seats",
    ]
    status = await conn.send("Status")
    assert len(status.events) == 4
    await conn.close()


async def test_a_failing_subscriber_does_not_stop_the_others(
    sim: PbxSimulator, clock: VirtualClock
) -> None:
    conn = _conn(sim, clock)
    good: list[str] = []

    def bad(event: Message) -> None:
        raise RuntimeError("subscriber bug")

    conn.subscribe(bad)
    conn.subscribe(lambda m: good.append(m.name))
    await conn.connect()
    await conn.send(
        "Originate",
        {
            "Channel": "Local/8001@seats",
            "Context": "dialer",
            "Exten": "13800000011",
            "Async": "true",
        },
        action_id="att-2",
    )
    await until(lambda: "OriginateResponse" in good and good.count("Hangup") == 4, clock)
    assert conn.connected
    await conn.close()


async def test_link_drop_fails_pending_actions_at_once_and_resends_nothing(
    sim: PbxSimulator, clock: VirtualClock
) -> None:
    conn = _conn(sim, clock)
    await conn.connect()
    # A synchronous Originate is answered only when the customer answers (2 s), so it is
    # still pending when the link drops.
    pending = asyncio.create_task(
        conn.send(
            "Originate",
            {
                "Channel": "Local/13800000010@customers",
                "Context": "dialer",
                "Exten": "connect-seat",
                "Variable": "SEAT=8001",
            },
            action_id="att-001",
            timeout=60,
        )
    )
    await until(lambda: sim.action_counts["Originate"] == 1)
    await sim.drop_clients()
    await until(lambda: pending.done())
    with pytest.raises(
        AmiDisconnected, match="Originate att-001; its fate is unknown, not re-sent"
    ):
        pending.result()
    with pytest.raises(AmiDisconnected):
        await conn.send("Ping")
    await clock.advance(10)
    assert sim.action_counts["Originate"] == 1


async def test_malformed_frames_are_skipped(clock: VirtualClock) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"garbage without colon\r\n\r\nResponse: Success\r\nActionID: L\r\n"
            b"Message: Authentication accepted\r\n\r\n"
            b"Event: Newchannel\r\nChannel: \xff\xfe/1\r\n\r\n"
        )
        await reader.read()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = AmiConnection(
        "127.0.0.1", port, username="u", secret="s", clock=clock, event_parser=lambda m: m
    )
    conn.next_action_id = lambda: "L"  # type: ignore[method-assign]
    seen: list[Message] = []
    conn.subscribe(seen.append)
    await conn.connect()
    await until(lambda: bool(seen))
    assert seen[0].name == "Newchannel"
    await conn.abort()
    server.close()


async def _blast_server(
    events: int, login_done: asyncio.Event | None = None
) -> tuple[asyncio.Server, int]:
    """Logs the client in (ActionID "L"), then writes `events` numbered events at once."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"Response: Success\r\nActionID: L\r\nMessage: Authentication accepted\r\n\r\n"
        )
        writer.write(
            b"".join(
                b"Event: UserEvent\r\nUserEvent: N\r\nN: %d\r\n\r\n" % i for i in range(events)
            )
        )
        await writer.drain()
        await reader.read()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_full_stream_stops_reading_until_its_consumer_catches_up(
    clock: VirtualClock,
) -> None:
    # 50,000 events (~1.8 MB) against a stream of 100: the connection must pause the socket
    # with at most one read's worth of events held back, then deliver every event in order.
    server, port = await _blast_server(50_000)
    conn = AmiConnection(
        "127.0.0.1", port, username="u", secret="s", clock=clock, event_parser=lambda m: m
    )
    conn.next_action_id = lambda: "L"  # type: ignore[method-assign]
    stream = conn.stream(maxsize=100)
    await conn.connect()
    await until(lambda: conn._read_paused)
    received = conn.events_received
    for _ in range(20):  # nobody consumes: nothing more is read
        await asyncio.sleep(0)
    assert conn.events_received == received < 50_000
    assert conn._transport is not None and not conn._transport.is_reading()
    got: list[int] = []

    async def consume() -> None:
        async for event in stream:
            got.append(int(event["N"]))

    consumer = asyncio.create_task(consume())
    await until(lambda: len(got) == 50_000, limit=100_000)
    assert got == list(range(50_000))
    assert not conn._read_paused
    consumer.cancel()
    stream.close()
    await conn.abort()
    server.close()


async def test_a_send_waits_while_the_peer_does_not_read_and_fails_when_the_link_drops(
    clock: VirtualClock,
) -> None:
    reading = asyncio.Event()
    peer: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer.append(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"Response: Success\r\nActionID: L\r\nMessage: Authentication accepted\r\n\r\n"
        )
        await reading.wait()  # the peer stops reading: the client's write buffer fills

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = AmiConnection(
        "127.0.0.1", port, username="u", secret="s", clock=clock, event_parser=lambda m: m
    )
    conn.next_action_id = lambda: "L"  # type: ignore[method-assign]
    await conn.connect()
    big = {"Variable": {f"V{i}": "x" * 1000 for i in range(1000)}}  # ~1 MB per action
    sends = [
        asyncio.create_task(conn.send("UserEvent", big, action_id=f"big-{i}", timeout=None))
        for i in range(20)
    ]
    await until(lambda: conn._write_paused)
    assert conn._write_waiters and not any(s.done() for s in sends)
    peer[0].transport.abort()  # the link drops with the writers waiting
    await until(lambda: all(s.done() for s in sends))
    for s in sends:
        with pytest.raises(AmiDisconnected, match="not re-sent"):
            s.result()
    assert not conn.connected
    server.close()
