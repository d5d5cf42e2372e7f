"""Replays a real trace's actions against the simulator and reduces both sides to the key
events that must agree (used by tests/test_conformance.py and for debugging:
`.venv/bin/python -m tests.test_conformance_support tests/fixtures/ami/02_originate_answered_bridged`).

Real Asterisk runs each channel in its own thread, so the interleaving *between* channels
differs from run to run (the README shows OriginateResponse before or after DialEnd, Cdr
before Newchannel). What is stable, and compared here, is:
* the sequence of key events of each channel (name, Channel/DestChannel family and half,
  DialStatus, Reason, Cause, TechCause, state, kept variables, DTMF, UserEvent);
* the sequence of Responses (Response, Message) and of OriginateResponses;
* the multiset of Cdr (channel, Disposition).
Noise events (Newexten, most VarSets, NewCallerid, DeviceStateChange, ...) are dropped on
both sides by the same filter.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dialer.ami.connection import md5_key
from dialer.ami.protocol import AmiParser, Message, encode_pairs, parse_stream
from dialer.simulator import PbxSimulator
from schedules.clock import VirtualClock

NOISE = {
    "Newexten",
    "NewCallerid",
    "NewConnectedLine",
    "DeviceStateChange",
    "QueueMemberStatus",
    "LocalBridge",
    "RTCPSent",
    "RTCPReceived",
    "MusicOnHoldStart",
    "MusicOnHoldStop",
}
KEPT_VARS = {"MIXMONITOR_FILENAME", "ATTEMPT_ID", "DIALSTATUS", "KEY"}
_ID = re.compile(r"-[0-9a-f]{8}(;[12])?$")


def norm(name: str | None) -> str | None:
    if name is None:
        return None
    return _ID.sub(lambda m: m.group(1) or "", name)


@dataclass
class KeyView:
    responses: list[tuple[str, str]] = field(default_factory=list)
    originate_responses: list[tuple[str | None, ...]] = field(default_factory=list)
    streams: dict[str, list[tuple[str | None, ...]]] = field(default_factory=dict)
    cdrs: Counter[tuple[str | None, str | None]] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)


def key_view(msgs: list[Message], kept_vars: set[str] = KEPT_VARS) -> KeyView:
    v = KeyView()
    origin: dict[str, str] = {}
    for m in msgs:
        name = m.get("Event")
        if name is None:
            v.responses.append((m.get("Response") or "", m.get("Message") or ""))
            continue
        if name in NOISE or (name == "VarSet" and m.get("Variable") not in kept_vars):
            continue
        v.counts[name] += 1
        if name == "OriginateResponse":
            ch = m.get("Channel")
            ch = norm(ch) if ch and "-" in ch else ch
            v.originate_responses.append(
                (
                    m.get("Response"),
                    ch,
                    m.get("Reason"),
                    "unknown" if m.get("Uniqueid") == "<unknown>" else "id",
                )
            )
            continue
        if name == "Cdr":
            v.cdrs[(norm(m.get("Channel")), m.get("Disposition"))] += 1
            continue
        value = m.get("Value") if m.get("Variable") in ("DIALSTATUS", "ATTEMPT_ID", "KEY") else None
        state = m.get("ChannelStateDesc") if name in ("Newstate", "Newchannel") else None
        key = (
            name,
            norm(m.get("DestChannel")),
            m.get("DialStatus"),
            m.get("Cause"),
            m.get("TechCause"),
            m.get("Variable"),
            value,
            state,
            m.get("UserEvent"),
            m.get("Key"),
            m.get("Digit"),
            m.get("Direction"),
        )
        if "Channel" in m:
            # Qualified by the call's originated channel (via Linkedid), so that the 30
            # `PJSIP/carrier-...` legs of a burst stay apart.
            ch = norm(m.get("Channel")) or ""
            uid, linked = m.get("Uniqueid"), m.get("Linkedid")
            if uid is not None:
                origin.setdefault(uid, ch)
            stream = f"{ch} of {origin.get(linked or '', '?')}"
        elif "DestChannel" in m:
            stream = f"originate->{norm(m.get('DestChannel'))}"
        elif name.startswith("Bridge"):
            stream = "bridge"
        else:
            stream = "system"
        v.streams.setdefault(stream, []).append(key)
    return v


def trace_actions(base: Path) -> list[tuple[float, Message]]:
    raw = base.with_suffix(".actions").read_bytes()
    out = []
    for line in base.with_suffix(".timeline.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["dir"] != "send":
            continue
        chunk = raw[rec["off"] : rec["off"] + rec["len"]]
        msgs = AmiParser(expect_banner=False).feed(chunk)
        out.extend((rec["t"], m) for m in msgs)
    return out


def action_vars(actions: list[tuple[float, Message]]) -> set[str]:
    names = set(KEPT_VARS)
    for _, m in actions:
        for header in m.getall("Variable"):
            for item in header.split(","):
                names.add(item.partition("=")[0])
    names.discard("NUMBER")  # the lab dialplan Set()s it again, a dialplan detail
    return names


@dataclass
class SimRun:
    messages: list[Message]
    sim: PbxSimulator
    log: list[tuple[float, str, bytes]]  # (virtual time, "send"/"recv", bytes), in order


async def run_against_simulator(
    base: Path,
    monitor_dir: Path | None = None,
    at: Sequence[tuple[float, Callable[[PbxSimulator], object]]] = (),
) -> SimRun:
    """Send the trace's actions to a fresh simulator at the trace's times (VirtualClock).
    `at`: what happened to the PBX outside AMI at a trace time (e.g. `core stop` on its CLI)."""
    clock = VirtualClock(datetime(2026, 11, 27, 11, 33, 20, tzinfo=UTC))
    sim = PbxSimulator(clock=clock, users={"dialer": "dialer-secret"}, monitor_dir=monitor_dir)
    await sim.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(sim.host, sim.port)
    parser = AmiParser()
    received: list[Message] = []
    challenges: list[str] = []
    log: list[tuple[float, str, bytes]] = []
    eof = asyncio.Event()

    async def read() -> None:
        while data := await reader.read(65536):
            log.append((clock.monotonic(), "recv", data))
            for m in parser.feed(data):
                received.append(m)
                if "Challenge" in m:
                    challenges.append(m["Challenge"])
        eof.set()

    task = asyncio.create_task(read())
    todo = sorted(at, key=lambda x: x[0])
    try:
        for t, action in trace_actions(base):
            while todo and todo[0][0] <= t:
                when, what = todo.pop(0)
                await _advance_to(clock, when)
                what(sim)
            await _advance_to(clock, t)
            pairs = []
            for k, val in action.headers:
                if k == "Channel" and _ID.search(val):
                    val = _live_name(sim, val)
                if k == "Data" and "," in val and _ID.search(val.split(",", 1)[0]):
                    # ChanSpy's target: the simulator's name for the traced channel.
                    target, rest = val.split(",", 1)
                    val = f"{_live_name(sim, target)},{rest}"
                if k == "Key" and challenges:
                    # The trace's key answers the real server's challenge; answer ours.
                    val = md5_key(challenges[-1], "dialer-secret")
                pairs.append((k, val))
            before = sum(sim.action_counts.values())
            log.append((clock.monotonic(), "send", encode_pairs(pairs)))
            writer.write(encode_pairs(pairs))
            await writer.drain()
            for _ in range(2000):
                if sum(sim.action_counts.values()) > before or eof.is_set():
                    break
                await asyncio.sleep(0)
        for _ in range(4000):  # until the server closes (Goodbye, or a failed login)
            if eof.is_set():
                break
            await clock.advance(0.05)
            await asyncio.sleep(0)
    finally:
        writer.close()
        task.cancel()
        await sim.stop()
    return SimRun(received, sim, log)


def outcomes_of_run(run: SimRun) -> list[dict[str, object]]:
    """The call tracker's verdict on what the simulator sent (as `callcenter ami replay`)."""
    from dialer.replay import Replayer

    rep = Replayer()
    parser = AmiParser(expect_banner=False)
    now = 0.0
    for now, direction, data in run.log:
        if direction == "send":
            for msg in parser.feed(data):
                rep.action(msg, now)
        else:
            rep.received(data, now)
    return [r.to_dict() for r in rep.finish(now)]


def outcomes_of_trace(base: Path) -> list[dict[str, object]]:
    from dialer.replay import TraceFiles, replay

    return [r.to_dict() for r in replay(TraceFiles.beside(base.with_suffix(".ami")))]


OUTCOME_KEYS = (
    "attempt_id",
    "seat",
    "number",
    "mode",
    "outcome",
    "cause",
    "tech_cause",
    "dial_status",
    "originate_response",
    "originate_reason",
    "answered",
    "bridged",
    "key_pressed",
)


def outcome_summary(results: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return sorted((tuple(r.get(k) for k in OUTCOME_KEYS) for r in results), key=str)


async def _advance_to(clock: VirtualClock, t: float, step: float = 0.02) -> None:
    # Small steps: a call task created by the previous action registers its first timer
    # only once it has run, which must happen before time moves past that timer.
    while clock.monotonic() < t:
        await clock.advance(min(step, t - clock.monotonic()))


def _live_name(sim: PbxSimulator, real: str) -> str:
    want = norm(real)
    for name in reversed(list(sim.pbx.channels)):
        if norm(name) == want:
            return name
    return real


def diff(real: KeyView, simv: KeyView) -> list[str]:
    problems = []
    if real.responses != simv.responses:
        problems.append(f"responses:\n  real {real.responses}\n  sim  {simv.responses}")
    # Several originates in flight answer in any order (the bursts): compare as a multiset.
    if sorted(real.originate_responses, key=str) != sorted(simv.originate_responses, key=str):
        problems.append(
            f"OriginateResponse:\n  real {real.originate_responses}\n  sim  {simv.originate_responses}"
        )
    if real.cdrs != simv.cdrs:
        problems.append(
            f"Cdr:\n  real {sorted(real.cdrs.items())}\n  sim  {sorted(simv.cdrs.items())}"
        )
    for stream in sorted(set(real.streams) | set(simv.streams)):
        a, b = real.streams.get(stream, []), simv.streams.get(stream, [])
        if stream == "bridge":  # BridgeCreate/Destroy of concurrent calls: any order
            a, b = sorted(a, key=str), sorted(b, key=str)
        if a != b:
            lines = [f"stream {stream}:"]
            for i in range(max(len(a), len(b))):
                ra = a[i] if i < len(a) else None
                sb = b[i] if i < len(b) else None
                mark = "  " if ra == sb else "!!"
                lines.append(f" {mark} real {_fmt(ra)}\n    sim  {_fmt(sb)}")
            problems.append("\n".join(lines))
    return problems


def _fmt(key: tuple[str | None, ...] | None) -> str:
    if key is None:
        return "-"
    return " ".join(str(x) for x in key if x is not None)


async def compare(base: Path) -> list[str]:
    _, real_msgs = parse_stream(base.with_suffix(".ami").read_bytes())
    kept = action_vars(trace_actions(base))
    run = await run_against_simulator(base)
    return diff(key_view(real_msgs, kept), key_view(run.messages, kept))


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        path = Path(arg)
        problems = asyncio.run(compare(path.with_suffix("")))
        print(f"=== {path.name}: {'OK' if not problems else f'{len(problems)} differences'}")
        for p in problems:
            print(p)
