"""The simulator shuts down as the real Asterisk did (trace
`pjsip_originate_while_shutting_down`, copied to tests/fixtures/ami/pjsip/shutdown/): actions
refused with "Asterisk is shutting down", the live call left to end, `Event: Shutdown` 1.1 s
after its last Hangup, then the link closed; and `now`, which cuts the calls first."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from dialer.ami.protocol import AmiParser, Message, encode_pairs, parse_stream
from dialer.simulator import PbxSimulator
from schedules.clock import VirtualClock
from tests import test_conformance_support as conformance

TRACE = Path(__file__).parent / "fixtures" / "ami" / "pjsip" / "shutdown"
BASE = TRACE / "pjsip_originate_while_shutting_down"
CORE_STOP_AT = 0.501973 + 2.03  # the first Originate, then `core stop gracefully` on the CLI


def _stop_gracefully(sim: PbxSimulator) -> None:
    sim.shutdown("gracefully")


async def test_a_graceful_stop_gives_the_traced_refusal_shutdown_event_and_close() -> None:
    real = parse_stream(BASE.with_suffix(".ami").read_bytes())[1]
    kept = conformance.action_vars(conformance.trace_actions(BASE))
    run = await conformance.run_against_simulator(BASE, at=[(CORE_STOP_AT, _stop_gracefully)])

    real_view, sim_view = conformance.key_view(real, kept), conformance.key_view(run.messages, kept)
    problems = conformance.diff(real_view, sim_view)
    assert not problems, "\n".join(problems)
    summary = conformance.outcome_summary
    assert summary(conformance.outcomes_of_run(run)) == summary(conformance.outcomes_of_trace(BASE))

    def essentials(msgs: list[Message]) -> list[tuple[str | None, ...]]:
        return [
            (m.get("Response"), m.get("ActionID"), m.get("Message"))
            if m.get("Event") is None
            else (m.get("Event"), m.get("Privilege"), m.get("Shutdown"), m.get("Restart"))
            for m in msgs
            if m.get("Event") in (None, "Shutdown")
        ]

    assert essentials(run.messages) == essentials(real)
    assert essentials(real)[-2:] == [
        ("Error", "att-207", "Asterisk is shutting down"),
        ("Shutdown", "system,all", "Cleanly", "False"),
    ]
    assert run.messages[-1].get("Event") == "Shutdown"  # the last message: then the close
    refused = [m for m in run.messages if m.get("ActionID") == "att-207"]
    assert len(refused) == 1  # no OriginateResponse, no channel for the refused Originate
    assert not any("8004" in (m.get("Channel") or "") for m in run.messages)
    hangups = [t for t, d, data in run.log if d == "recv" and b"Event: Hangup\r\n" in data]
    shutdown = [t for t, d, data in run.log if d == "recv" and b"Event: Shutdown" in data]
    assert shutdown and round(shutdown[0] - hangups[-1], 2) == 1.1


async def _login(sim: PbxSimulator) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(sim.host, sim.port)
    await reader.readline()  # banner
    writer.write(encode_pairs([("Action", "Login"), ("Username", "dialer"), ("Secret", "secret")]))
    return reader, writer


async def _read_until_closed(reader: asyncio.StreamReader, clock: VirtualClock) -> list[Message]:
    parser = AmiParser(expect_banner=False)
    out: list[Message] = []
    while True:
        read = asyncio.ensure_future(reader.read(65536))
        deadline = time.monotonic() + 30  # real seconds: only a bound for a broken run
        while not read.done():
            assert time.monotonic() < deadline, "the server never closed the link"
            await clock.advance(0.01)
            await asyncio.sleep(0)
        data = read.result()
        if not data:
            return out
        out.extend(parser.feed(data))


async def test_a_restart_now_cuts_a_ringing_call_then_shuts_down_and_comes_back() -> None:
    clock = VirtualClock(datetime(2026, 12, 6, 2, 0, tzinfo=UTC))
    sim = PbxSimulator(clock=clock, users={"dialer": "secret"})
    await sim.start("127.0.0.1", 0)
    try:
        reader, writer = await _login(sim)
        writer.write(
            encode_pairs(
                [
                    ("Action", "Originate"),
                    ("ActionID", "att-1"),
                    ("Channel", "PJSIP/8002"),
                    ("Context", "dialer-sip"),
                    ("Exten", "13800000012"),  # rings, never answers
                    ("Priority", "1"),
                    ("Timeout", "30000"),
                    ("Async", "true"),
                ]
            )
        )
        deadline = time.monotonic() + 30  # real seconds: only a bound for a broken run
        while not any(c.state == 5 for c in sim.pbx.channels.values()):
            assert time.monotonic() < deadline, "the customer never rang"
            await clock.advance(0.005)
            await asyncio.sleep(0)
        await clock.advance(0.03)  # 0.03 s of ringing, as in the live run
        stop = sim.shutdown("now", restart=True)
        msgs = await _read_until_closed(reader, clock)
        await stop.done.wait()
        writer.close()
        events = [(m.get("Event"), m.get("Channel") or m.get("DestChannel")) for m in msgs]
        tail = [e for e in events if e[0] in ("DialEnd", "Hangup", "Shutdown")][-4:]
        assert [name for name, _ in tail] == ["DialEnd", "Hangup", "Hangup", "Shutdown"]
        dial_end = [m for m in msgs if m.get("Event") == "DialEnd"][-1]
        assert dial_end.get("DialStatus") == "CANCEL" and dial_end.get("Channel")  # the Dial
        assert {m.get("Cause") for m in msgs if m.get("Event") == "Hangup"} == {"16"}
        assert msgs[-1].get("Event") == "Shutdown" and msgs[-1].get("Restart") == "True"
        assert sim.pbx.channels == {}
        # Restarted: a new login is served again.
        reader, writer = await _login(sim)
        writer.write(encode_pairs([("Action", "Ping"), ("ActionID", "p1")]))
        parser = AmiParser(expect_banner=False)
        got: list[Message] = []
        while not any(m.get("ActionID") == "p1" for m in got):
            got.extend(parser.feed(await reader.read(65536)))
        assert [m.get("Response") for m in got if m.get("ActionID") == "p1"] == ["Success"]
        writer.close()
    finally:
        await sim.stop()
