"""The simulated Asterisk: channels, originates, dialplan flows and the events they emit.

Each originate runs as one coroutine that sleeps on the project Clock between phases
(the event loop's timer heap schedules them: no per-event scan of all calls), so 1,000+
concurrent calls cost 1,000 sleeping coroutines. Event sequences, per channel, follow the
real Asterisk 22 traces in tests/fixtures/ami (Local) and tests/fixtures/ami/pjsip (PJSIP);
see docs/simulator.md for what is modelled and what is not.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from common.clock import Clock
from dialer import prompts
from dialer.ami.events import event_class
from dialer.simulator.behaviour import (
    Behaviour,
    Scenario,
    behaviour_for_digit,
)
from dialer.simulator.wav import write_recording

log = logging.getLogger(__name__)

Pairs = list[tuple[str, str]]
STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}
CAUSE_TXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    34: "Circuit/channel congestion",
}
MONITOR_SPOOL = "/var/spool/asterisk/monitor"
# The sound files this PBX has: the stock ones the lab traces play, and ours (dialer.prompts,
# installed by `make prompts`). Playing any other fails at once (PLAYBACKSTATUS=FAILED).
PLAYBACK_SECONDS = {
    "hello-world": 1.4,
    "tt-weasels": 2.95,
    "tt-monkeys": 15.4,
    "vm-goodbye": 0.9,
    "if-correct-press": 1.6,
    **prompts.SECONDS,
}
_CALLERID = re.compile(r'^\s*"?([^"<]*?)"?\s*<([^>]*)>\s*$')


def parse_callerid(value: str | None) -> tuple[str, str]:
    """`"name" <num>` -> (num, name)."""
    if not value:
        return "", ""
    m = _CALLERID.match(value)
    if m:
        return m.group(2), m.group(1)
    return value, ""


def playback_seconds(data: str) -> float:
    """How long `Playback(data)` plays (`a&b` plays both); a missing file plays nothing."""
    return sum(PLAYBACK_SECONDS.get(f, 0.0) for f in data.split("&") if f)


def has_sounds(data: str) -> bool:
    """Whether every file of `Playback(data)` exists on this PBX."""
    return all(f in PLAYBACK_SECONDS for f in data.split("&") if f)


class HungUp(Exception):
    """Raised inside a call coroutine when a Hangup action hit one of its channels."""


class PbxShutDown(Exception):
    """Raised inside a call coroutine that a `now` shutdown cuts (`Call.shutdown`; see
    dialer/simulator/shutdown.py)."""


class Redirected(Exception):
    """Raised inside a call coroutine when a Redirect action moved its channel on hold
    (`Call.hold`) to `Call.redirect`."""


@dataclass(eq=False)
class Chan:
    name: str
    tech: str
    uniqueid: str
    linkedid: str
    created: float
    context: str
    exten: str
    cid_num: str = ""
    cid_name: str = ""
    conn_num: str = ""
    conn_name: str = ""
    state: int = 0
    priority: int = 1
    app: str = ""
    appdata: str = ""
    bridge: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    call: Call | None = None
    answered: float | None = None

    def snapshot(self, prefix: str = "") -> Pairs:
        p = prefix
        return [
            (f"{p}Channel", self.name),
            (f"{p}ChannelState", str(self.state)),
            (f"{p}ChannelStateDesc", STATE_DESC.get(self.state, "Unknown")),
            (f"{p}CallerIDNum", self.cid_num),
            (f"{p}CallerIDName", self.cid_name),
            (f"{p}ConnectedLineNum", self.conn_num),
            (f"{p}ConnectedLineName", self.conn_name),
            (f"{p}Language", "en"),
            (f"{p}AccountCode", ""),
            (f"{p}Context", self.context),
            (f"{p}Exten", self.exten),
            (f"{p}Priority", str(self.priority)),
            (f"{p}Uniqueid", self.uniqueid),
            (f"{p}Linkedid", self.linkedid),
        ]


@dataclass(eq=False)
class Call:
    """One originate and every channel it created."""

    action_id: str
    dial_string: str
    headers: dict[str, str]
    variables: list[tuple[str, str]]
    timeout: float
    channels: list[Chan] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    hangup_by: Chan | None = None
    respond: Callable[[str, str], None] | None = None  # sync originate: (Response, Message)
    answered: bool = False
    responded: bool = False
    hold: Chan | None = None  # the channel a Redirect may move now (the callback's hold)
    redirect: tuple[str, str] | None = None  # (context, exten) a Redirect asked for
    shutdown: bool = False  # the PBX is shutting down `now`: every channel is cut


@dataclass(eq=False)
class Leg:
    """A dialled device: `a` faces the caller (Local ;1, or the PJSIP channel), `b` is the
    far half that runs the device's dialplan (Local ;2; None on PJSIP)."""

    a: Chan
    b: Chan | None
    role: str  # "seat" or "customer"
    number: str
    dial_string: str


class Pbx:
    """Channels and flows. `sinks` receive every event as encoded bytes, with its class."""

    def __init__(
        self,
        clock: Clock,
        *,
        monitor_dir: Path | None = None,
        scenario: Scenario | None = None,
        seat_answer_seconds: float = 0.003,
    ) -> None:
        self.clock = clock
        self.monitor_dir = monitor_dir
        self.scenario = scenario
        self.seat_answer = seat_answer_seconds
        # Seats (by number, e.g. "8002") that ring but are never picked up when the dialplan
        # dials them (customer first, a callback handed to a seat).
        self.unanswered_seats: set[str] = set()
        # After a customer's BYE on PJSIP, send the seat's Hangup 1 ms before the carrier's
        # (real Asterisk does either: pjsip_chanspy_barge and pjsip_key2_redirect_to_seat
        # vs pjsip_customer_hangs_up_first_race); the HangupRequest stays on the carrier first.
        self.seat_hangup_first = False
        self.channels: dict[str, Chan] = {}
        self.calls: set[Call] = set()
        self.globals: dict[str, str] = {}
        self.sinks: set[Callable[[bytes, str], None]] = set()
        self._seq = 0
        self._local_seq = 0
        self._pjsip_seq = 0
        self._bridge_seq = 0
        self.started = clock.now()
        self.events_emitted = 0
        self.originates = 0
        self.processed_calls = 0
        # Optional probe for the benchmark: (scheduled monotonic, actual monotonic).
        self.lateness_probe: Callable[[float, float], None] | None = None

    # -- events ----------------------------------------------------------------------------

    def emit(self, name: str, privilege: str | None, pairs: Iterable[tuple[str, str]]) -> None:
        """Send one event to every sink with its class (`Privilege` is `<class>,all`, the
        class Asterisk 22 uses for it unless given), so each session can drop what its
        user may not read."""
        cls = event_class(name)
        if privilege is None:
            privilege = f"{cls},all"
        parts = [f"Event: {name}\r\nPrivilege: {privilege}\r\n"]
        parts.extend(f"{k}: {v}\r\n" for k, v in pairs)
        parts.append("\r\n")
        data = "".join(parts).encode("utf-8")
        self.events_emitted += 1
        for sink in tuple(self.sinks):
            sink(data, cls)

    def ev(
        self, name: str, chan: Chan, *extra: tuple[str, str], privilege: str | None = None
    ) -> None:
        self.emit(name, privilege, [*chan.snapshot(), *extra])

    def newstate(self, chan: Chan, state: int) -> None:
        chan.state = state
        if state == 6 and chan.answered is None:
            chan.answered = self.clock.monotonic()
        self.ev("Newstate", chan)

    def varset(self, chan: Chan, var: str, value: str) -> None:
        chan.variables[var] = value
        self.ev("VarSet", chan, ("Variable", var), ("Value", value))

    def dial_event(
        self, name: str, caller: Chan | None, dest: Chan, *extra: tuple[str, str]
    ) -> None:
        pairs: Pairs = caller.snapshot() if caller is not None else []
        pairs += dest.snapshot("Dest")
        pairs += extra
        self.emit(name, "call,all", pairs)

    def hangup_request(
        self, chan: Chan, cause: int, soft: bool = False, tech: int | None = None
    ) -> None:
        extra: Pairs = [("Cause", str(cause))]
        if tech is not None:
            extra.append(("TechCause", str(tech)))
        self.ev("SoftHangupRequest" if soft else "HangupRequest", chan, *extra)

    def hangup(self, chan: Chan, cause: int, tech: int | None = None) -> None:
        extra: Pairs = [("Cause", str(cause)), ("Cause-txt", CAUSE_TXT.get(cause, "Unknown"))]
        if tech is not None:
            extra.append(("TechCause", str(tech)))
        self.ev("Hangup", chan, *extra)
        self.channels.pop(chan.name, None)

    def cdr(
        self, chan: Chan, disposition: str, dest: Chan | None = None, app: str = "", data: str = ""
    ) -> None:
        now = self.clock.now()
        start = now.timestamp() - (self.clock.monotonic() - chan.created)
        answered = chan.answered if disposition == "ANSWERED" else None
        duration = int(self.clock.monotonic() - chan.created)
        billable = int(self.clock.monotonic() - answered) if answered is not None else 0

        def fmt(ts: float | None) -> str:
            if ts is None:
                return ""
            return datetime.fromtimestamp(ts, now.tzinfo).strftime("%Y-%m-%d %H:%M:%S")

        ans_ts = None if answered is None else start + (answered - chan.created)
        src = chan.cid_num
        self.emit(
            "Cdr",
            "cdr,all",
            [
                ("AccountCode", ""),
                ("Source", src),
                ("Destination", chan.exten),
                ("DestinationContext", chan.context),
                ("CallerID", f'"{chan.cid_name}" <{src}>'),
                ("Channel", chan.name),
                ("DestinationChannel", dest.name if dest else ""),
                ("LastApplication", app or chan.app),
                ("LastData", data or chan.appdata),
                ("StartTime", fmt(start)),
                ("AnswerTime", fmt(ans_ts)),
                ("EndTime", fmt(now.timestamp())),
                ("Duration", str(duration)),
                ("BillableSeconds", str(billable)),
                ("Disposition", disposition),
                ("AMAFlags", "DOCUMENTATION"),
                ("UniqueID", chan.uniqueid),
                ("UserField", ""),
            ],
        )

    # -- channels --------------------------------------------------------------------------

    def _uniqueid(self, given: str | None) -> str:
        seq = self._seq
        self._seq += 1
        if given:
            return given
        return f"{int(self.clock.now().timestamp())}.{seq}"

    def _new_chan(
        self,
        call: Call,
        name: str,
        tech: str,
        uid: str,
        linkedid: str | None,
        context: str,
        exten: str,
        state: int,
        cid: tuple[str, str],
    ) -> Chan:
        chan = Chan(
            name=name,
            tech=tech,
            uniqueid=uid,
            linkedid=linkedid or uid,
            created=self.clock.monotonic(),
            context=context,
            exten=exten,
            cid_num=cid[0],
            cid_name=cid[1],
            conn_num=cid[0],
            conn_name=cid[1],
            state=state,
            call=call,
        )
        self.channels[name] = chan
        call.channels.append(chan)
        return chan

    def open_leg(
        self,
        call: Call,
        tech: str,
        resource: str,
        role: str,
        *,
        linkedid: str | None,
        ids: tuple[str | None, str | None] = (None, None),
        cid: tuple[str, str],
        set_vars: bool,
    ) -> Leg:
        """Create the channel(s) of one dialled device and emit Newchannel (+ VarSets)."""
        number, _, ctx = resource.partition("@")
        if tech == "Local":
            hexid = f"{self._local_seq:08x}"
            self._local_seq += 1
            base = f"Local/{resource}-{hexid}"
            uid1 = self._uniqueid(ids[0])
            uid2 = self._uniqueid(ids[1])
            linked = linkedid or uid1
            a = self._new_chan(call, base + ";1", tech, uid1, linked, ctx, number, 0, cid)
            b = self._new_chan(call, base + ";2", tech, uid2, linked, ctx, number, 4, cid)
            self.ev("Newchannel", a)
            self.ev("Newchannel", b)
            if set_vars:
                # Asterisk applies the originate variables to ;1 in reverse (a list it
                # prepends to) and to ;2 in order, as the 02 trace shows.
                for k, v in reversed(call.variables):
                    self.varset(a, k, v)
                for k, v in call.variables:
                    self.varset(b, k, v)
            self.emit(
                "LocalBridge",
                "call,all",
                [
                    *a.snapshot("LocalOne"),
                    *b.snapshot("LocalTwo"),
                    ("Context", ctx),
                    ("Exten", number),
                    ("LocalOptimization", "Yes"),
                ],
            )
            return Leg(a, b, role, number, resource)
        endpoint = "carrier" if role == "customer" else number
        hexid = f"{self._pjsip_seq:08x}"
        self._pjsip_seq += 1
        uid = self._uniqueid(ids[0])
        chan = self._new_chan(
            call,
            f"PJSIP/{endpoint}-{hexid}",
            tech,
            uid,
            linkedid,
            "dialer-sip-inbound",
            "s",
            0,
            cid,
        )
        if role == "customer":
            chan.exten = number
        self.ev("Newchannel", chan)
        if set_vars:
            for k, v in reversed(call.variables):
                self.varset(chan, k, v)
        return Leg(chan, None, role, number, resource)

    # -- time ------------------------------------------------------------------------------

    async def wait(self, call: Call, seconds: float) -> None:
        """Sleep on the clock; a Hangup action on the call interrupts with HungUp, a
        Redirect of its channel on hold with Redirected."""
        if seconds <= 0:
            return
        target = self.clock.monotonic() + seconds
        try:
            await self.clock.sleep(seconds)
        except asyncio.CancelledError:
            if call.hangup_by is not None or call.redirect is not None or call.shutdown:
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                if call.shutdown:
                    raise PbxShutDown() from None
                if call.hangup_by is not None:
                    raise HungUp() from None
                raise Redirected() from None
            raise
        probe = self.lateness_probe
        if probe is not None:
            probe(target, self.clock.monotonic())

    # -- behaviour -------------------------------------------------------------------------

    def behaviour(self, number: str, family: str) -> Behaviour:
        if self.scenario is not None:
            return self.scenario.draw(number, family)
        return behaviour_for_digit(number, family)

    # -- recordings ------------------------------------------------------------------------

    def start_mixmonitor(self, chan: Chan, path: str | None = None, options: str = "b") -> Path:
        """MixMonitor(path,options) on `chan` (by default the channel's own file); `a` in
        the options appends to the file (Asterisk's file.c seeks to its end)."""
        path = path or f"{MONITOR_SPOOL}/{chan.uniqueid}.wav"
        self.ev(
            "Newexten",
            chan,
            ("Extension", chan.exten),
            ("Application", "MixMonitor"),
            ("AppData", f"{path},{options}"),
        )
        self.varset(chan, "MIXMONITOR_FILENAME", path)
        self.ev("MixMonitorStart", chan)
        return Path(PurePosixPath(path).name)

    def finish_recording(self, name: Path, bridged_seconds: float) -> None:
        if self.monitor_dir is None:
            return
        try:
            write_recording(self.monitor_dir / name, bridged_seconds)
        except OSError as exc:
            log.warning("could not write recording %s: %s", name, exc)

    def new_bridge(self) -> str:
        self._bridge_seq += 1
        n = self._bridge_seq
        return f"5ea70000-0000-4000-8000-{n:012x}"

    def bridge_event(self, name: str, bridge: str, members: int, chan: Chan | None = None) -> None:
        pairs: Pairs = [
            ("BridgeUniqueid", bridge),
            ("BridgeType", "basic"),
            ("BridgeTechnology", "simple_bridge"),
            ("BridgeCreator", "<unknown>"),
            ("BridgeName", "<unknown>"),
            ("BridgeNumChannels", str(members)),
            ("BridgeVideoSourceMode", "none"),
        ]
        if chan is not None:
            pairs += chan.snapshot()
        self.emit(name, "call,all", pairs)
