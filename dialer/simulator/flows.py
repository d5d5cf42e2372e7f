"""Originate and the lab dialplan, as coroutines over `Pbx` (see pbx.py).

Flows (conf/extensions.conf and pjsip/conf/extensions_pjsip.conf of the traces):

* seat first: Originate Channel=<seat> (Local/8001@seats or PJSIP/8001), Context
  dialer/dialer-sip, Exten=<number>: the seat answers, MixMonitor, Dial(customer, 30).
* customer first: Channel=<customer> (Local/<n>@customers or PJSIP/<n>@carrier),
  Exten connect-seat, Variable SEAT: MixMonitor, Dial(seat, 20).
* callback: Exten callback: Playback, Read one key, UserEvent CallbackResult, goodbye; on
  key 2 (docker/asterisk/extensions.conf) "connecting you" and music on hold for
  HOLD_SECONDS (20), during which a Redirect to connect-seat connects the SEAT set on the
  channel (`request_redirect`); else "a specialist will call you" and hang-up.
* reminder: Exten reminder: Playback, hang up.
* application: Application=Playback, Data=...: plays and hangs up.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from dialer import prompts
from dialer.simulator.behaviour import SIP_FAILURES, Behaviour
from dialer.simulator.pbx import (
    Call,
    Chan,
    HungUp,
    Leg,
    Pbx,
    PbxShutDown,
    Redirected,
    has_sounds,
    parse_callerid,
    playback_seconds,
)
from dialer.simulator.shutdown import cut

log = logging.getLogger(__name__)

_CUSTOMER = re.compile(r"^1\d.+$")  # lab dialplan: customers _1X.
_SEAT = re.compile(r"^8\d.+$")  # seats _8X.
_SEAT_FIRST_EXTEN = re.compile(r"^\d+$")
_SEAT_SILENT = Behaviour("noanswer", ring=math.inf)  # a seat nobody picks up
CONNECT_KEY = "2"  # the callback's "connect me to a specialist"
HOLD_SECONDS = 20.0  # the callback's hold before "a specialist will call you"
# With `Pbx.seat_hangup_first`, how long before the carrier's Hangup the seat's comes (the
# live run of issue 11 saw up to 1 ms).
SEAT_HANGUP_LEAD = 0.001

Responder = Callable[[str, str], None]


@dataclass
class _Rec:
    name: str
    bridged_at: float | None = None
    bridged: float = 0.0


class Originate:
    """Parsed Originate headers."""

    def __init__(self, headers: dict[str, str], variables: list[str], action_id: str) -> None:
        self.action_id = action_id
        self.channel = headers.get("Channel", "")
        self.context = headers.get("Context", "")
        self.exten = headers.get("Exten", "")
        self.application = headers.get("Application")
        self.data = headers.get("Data", "")
        self.asynchronous = headers.get("Async", "").lower() in ("true", "yes", "1", "on")
        self.timeout = float(headers.get("Timeout") or 30000) / 1000.0
        self.cid = parse_callerid(headers.get("CallerID"))
        self.channel_id = headers.get("ChannelId") or None
        self.other_id = headers.get("OtherChannelId") or None
        self.variables: list[tuple[str, str]] = []
        for header in variables:
            for item in header.split(","):
                k, _, v = item.partition("=")
                if k:
                    self.variables.append((k.strip(), v))


def start_originate(pbx: Pbx, o: Originate, respond: Responder) -> None:
    """Validate, answer the action (now if Async, after the outcome if not), run the call."""
    if not o.channel:
        respond("Error", "Channel not specified")
        return
    tech, sep, resource = o.channel.partition("/")
    if not sep or not resource:
        respond("Error", "Invalid channel")
        return
    pbx.originates += 1
    call = Call(
        action_id=o.action_id,
        dial_string=o.channel,
        headers={},
        variables=o.variables,
        timeout=o.timeout,
    )
    if not o.asynchronous:
        call.respond = respond
    else:
        respond("Success", "Originate successfully queued")
    pbx.calls.add(call)
    call.task = asyncio.create_task(_run(pbx, call, o, tech, resource))


def _or(
    pbx: Pbx, call: Call, o: Originate, ok: bool, reason: int, chan: Chan | None = None
) -> None:
    if call.responded:
        return
    call.responded = True
    if call.respond is not None:
        if ok:
            call.respond("Success", "Originate successfully queued")
        else:
            call.respond("Error", "Originate failed")
        return
    pairs = [
        ("ActionID", o.action_id),
        ("Response", "Success" if ok else "Failure"),
        ("Channel", chan.name if ok and chan else o.channel),
    ]
    if o.application:
        pairs += [("Application", o.application), ("Data", o.data)]
    else:
        pairs += [("Context", o.context), ("Exten", o.exten)]
    uid = chan.uniqueid if ok and chan else (o.channel_id or "<unknown>")
    pairs += [
        ("Reason", str(reason)),
        ("Uniqueid", uid),
        ("CallerIDNum", o.cid[0] or "<unknown>"),
        ("CallerIDName", o.cid[1] or "<unknown>"),
    ]
    pbx.emit("OriginateResponse", "call,all", pairs)


async def _run(pbx: Pbx, call: Call, o: Originate, tech: str, resource: str) -> None:
    rec: list[_Rec] = []
    try:
        await _originate(pbx, call, o, tech, resource, rec)
    except PbxShutDown:
        cut(pbx, call)
        _or(pbx, call, o, False, 0)
    except HungUp:
        _teardown(pbx, call, o)
    except asyncio.CancelledError:
        _teardown(pbx, call, o)
        raise
    except Exception:
        log.exception("simulated call %s crashed", o.action_id)
        _teardown(pbx, call, o)
    finally:
        for r in rec:
            seconds = r.bridged
            if r.bridged_at is not None:
                seconds += pbx.clock.monotonic() - r.bridged_at
            pbx.finish_recording(Path(r.name), seconds)
        pbx.calls.discard(call)
        pbx.processed_calls += 1


def _teardown(pbx: Pbx, call: Call, o: Originate) -> None:
    """Hang up whatever is left of a call (Hangup action outside the modelled phases)."""
    bridges = {c.bridge for c in call.channels if c.bridge and c.name in pbx.channels}
    for bridge in bridges:
        for c in call.channels:
            if c.bridge == bridge and c.name in pbx.channels:
                c.bridge = ""
                pbx.bridge_event("BridgeLeave", bridge, 0, c)
        pbx.bridge_event("BridgeDestroy", bridge, 0)
    for c in reversed(call.channels):
        if c.name in pbx.channels:
            pbx.hangup_request(c, 16, soft=c is not call.hangup_by)
            pbx.cdr(c, "ANSWERED" if c.answered is not None else "NO ANSWER")
            pbx.hangup(c, 16)
    _or(pbx, call, o, False, 0)


def _family(tech: str) -> str | None:
    return {"Local": "Local", "PJSIP": "PJSIP"}.get(tech)


def _role(family: str, resource: str) -> tuple[str, str] | None:
    """('seat'|'customer', number) of an originate/dial target, None if no such extension."""
    number, _, ctx = resource.partition("@")
    if family == "Local":
        if ctx == "seats" and _SEAT.match(number):
            return "seat", number
        if ctx == "customers" and _CUSTOMER.match(number):
            return "customer", number
        return None
    if ctx == "carrier":
        return "customer", number
    return ("seat", number) if number else None


async def _originate(
    pbx: Pbx, call: Call, o: Originate, tech: str, resource: str, rec: list[_Rec]
) -> None:
    family = _family(tech)
    if family is None:
        # Unknown technology: queued, then Failure Reason 0 with no channel at all.
        _or(pbx, call, o, False, 0)
        return
    role = _role(family, resource)
    if role is None:
        leg = pbx.open_leg(
            call,
            family,
            resource,
            "customer",
            linkedid=o.channel_id,
            ids=(o.channel_id, o.other_id),
            cid=o.cid,
            set_vars=True,
        )
        if leg.b is not None:
            pbx.cdr(leg.b, "FAILED")
            pbx.hangup(leg.b, 0)
        pbx.hangup(leg.a, 0)
        pbx.cdr(leg.a, "FAILED")
        _or(pbx, call, o, False, 0)
        return
    kind, number = role
    leg = pbx.open_leg(
        call,
        family,
        resource,
        kind,
        linkedid=o.channel_id,
        ids=(o.channel_id, o.other_id),
        cid=o.cid,
        set_vars=True,
    )
    if kind == "seat":
        status, _, _ = await _ring_seat(pbx, call, None, leg)
        beh = Behaviour("answer", talk=math.inf)
    else:
        beh = pbx.behaviour(number, family)
        status, _, _ = await _ring_customer(pbx, call, o, None, leg, beh, o.timeout)
    if status != "ANSWER":
        return
    a = leg.a
    _or(pbx, call, o, True, 4, a)
    if o.application:
        await _application(pbx, call, leg, beh, o.application, o.data)
    elif o.exten == "connect-seat":
        await _customer_first(pbx, call, o, leg, beh, family, rec)
    elif o.exten == "callback":
        await _callback(pbx, call, o, leg, beh, family, rec)
    elif o.exten == "reminder":
        await _application(pbx, call, leg, beh, "Playback", prompts.RENEWAL_REMINDER)
    elif kind == "seat" and _SEAT_FIRST_EXTEN.match(o.exten):
        await _seat_first(pbx, call, o, leg, family, rec)
    else:
        _teardown(pbx, call, o)


# -- dialling one device ---------------------------------------------------------------------


def _enter(pbx: Pbx, chan: Chan, context: str, exten: str, app: str, data: str) -> None:
    chan.context, chan.exten, chan.app, chan.appdata = context, exten, app, data
    chan.priority += 1
    pbx.ev(
        "Newexten",
        chan,
        ("Extension", exten),
        ("Application", app),
        ("AppData", data),
        privilege="dialplan,all",
    )


async def _ring_seat(
    pbx: Pbx, call: Call, caller: Chan | None, leg: Leg
) -> tuple[str, int, int | None]:
    pbx.dial_event("DialBegin", caller, leg.a, ("DialString", leg.dial_string))
    await pbx.wait(call, pbx.seat_answer)
    if leg.b is not None:
        pbx.newstate(leg.b, 6)
    pbx.newstate(leg.a, 6)
    if caller is not None:
        pbx.varset(caller, "DIALSTATUS", "ANSWER")
    pbx.dial_event("DialEnd", caller, leg.a, ("DialStatus", "ANSWER"))
    return "ANSWER", 16, None


async def _ring_customer(
    pbx: Pbx,
    call: Call,
    o: Originate | None,
    caller: Chan | None,
    leg: Leg,
    beh: Behaviour,
    timeout: float,
) -> tuple[str, int, int | None]:
    """Dial the customer until answer or failure. In originate mode (`caller` None) a
    failure also sends the OriginateResponse. Returns (DialStatus, cause, SIP code)."""
    if leg.b is None:
        return await _ring_pjsip_customer(pbx, call, o, caller, leg, beh, timeout)
    c1, c2 = leg.a, leg.b
    orig = caller is None

    def fail(reason: int) -> None:
        if o is not None and orig:
            _or(pbx, call, o, False, reason)

    pbx.dial_event("DialBegin", caller, c1, ("DialString", leg.dial_string))
    kind = beh.kind
    if kind in ("busy", "congestion"):
        status, cause, disp, reason = (
            ("BUSY", 17, "BUSY", 5) if kind == "busy" else ("CONGESTION", 34, "CONGESTION", 8)
        )
        pbx.newstate(c2, 7)
        pbx.dial_event("DialEnd", caller, c1, ("DialStatus", status))
        pbx.hangup_request(c2, 0)
        pbx.cdr(c2, disp)
        fail(reason)
        pbx.hangup(c1, 0)
        if orig:
            pbx.cdr(c1, disp)
        pbx.hangup_request(c2, 16, soft=True)
        pbx.hangup(c2, cause)
        return status, cause, None
    if kind == "poweredoff":
        pbx.dial_event("DialState", caller, c1, ("DialStatus", "PROGRESS"))
        await pbx.wait(call, min(beh.ring or 1.0, timeout))
        pbx.hangup_request(c2, 16, soft=True)
        pbx.hangup_request(c1, 20)
        pbx.dial_event("DialEnd", caller, c1, ("DialStatus", "CHANUNAVAIL"))
        pbx.cdr(c2, "FAILED")
        if orig:
            pbx.cdr(c1, "FAILED")
        fail(0)
        pbx.hangup(c2, 20)
        pbx.hangup(c1, 20)
        return "CHANUNAVAIL", 20, None
    if kind == "unallocated":
        pbx.cdr(c2, "NO ANSWER")
        pbx.hangup_request(c2, 16, soft=True)
        pbx.hangup_request(c1, 1)
        pbx.hangup(c2, 1)
        fail(0)
        if orig:
            pbx.cdr(c1, "NO ANSWER")
        pbx.dial_event("DialEnd", caller, c1, ("DialStatus", "NOANSWER"))
        pbx.hangup(c1, 1)
        return "NOANSWER", 1, None
    pbx.newstate(c1, 5)
    pbx.dial_event("DialState", caller, c1, ("DialStatus", "RINGING"))
    ring = beh.ring if beh.answers else math.inf
    if ring >= timeout:
        await pbx.wait(call, timeout)
        if orig:
            pbx.hangup_request(c2, 19)
            pbx.hangup_request(c2, 16, soft=True)
            fail(3)
            pbx.cdr(c1, "NO ANSWER")
            pbx.cdr(c2, "NO ANSWER")
            pbx.hangup(c1, 19)
            pbx.hangup(c2, 19)
            return "NOANSWER", 19, None
        pbx.dial_event("DialEnd", caller, c1, ("DialStatus", "NOANSWER"))
        pbx.hangup_request(c2, 0)
        pbx.hangup(c1, 0)
        pbx.cdr(c2, "FAILED")
        pbx.hangup_request(c2, 16, soft=True)
        pbx.hangup(c2, 0)
        return "NOANSWER", 0, None
    await pbx.wait(call, ring)
    pbx.newstate(c2, 6)
    pbx.newstate(c1, 6)
    if caller is not None:
        pbx.varset(caller, "DIALSTATUS", "ANSWER")
    pbx.dial_event("DialEnd", caller, c1, ("DialStatus", "ANSWER"))
    return "ANSWER", 16, None


async def _ring_pjsip_customer(
    pbx: Pbx,
    call: Call,
    o: Originate | None,
    caller: Chan | None,
    leg: Leg,
    beh: Behaviour,
    timeout: float,
) -> tuple[str, int, int | None]:
    cust = leg.a
    orig = caller is None
    pbx.dial_event("DialBegin", caller, cust, ("DialString", leg.dial_string))
    if beh.kind in SIP_FAILURES:
        code, cause, _txt, status, disp = SIP_FAILURES[beh.kind]
        await pbx.wait(call, 0.005)  # the carrier's final response, a few ms later
        pbx.hangup_request(cust, cause, tech=code)
        pbx.dial_event("DialEnd", caller, cust, ("DialStatus", status))
        if orig and o is not None:
            _or(pbx, call, o, False, 0)  # customer-first SIP failures all give Reason 0
        if caller is not None:
            # Dial's DIALSTATUS variable says CHANUNAVAIL for a 404 although DialEnd says
            # NOANSWER (pjsip_wrong_number_404).
            pbx.varset(caller, "DIALSTATUS", "CHANUNAVAIL" if code == 404 else status)
        pbx.hangup(cust, cause, tech=code)
        if orig:
            pbx.cdr(cust, disp)
        return status, cause, code
    await pbx.wait(call, 0.015)  # 180 Ringing
    pbx.newstate(cust, 5)
    pbx.dial_event("DialState", caller, cust, ("DialStatus", "RINGING"))
    ring = beh.ring if beh.answers else math.inf
    if ring >= timeout:
        await pbx.wait(call, timeout)
        if orig:
            pbx.hangup(cust, 19, tech=480)
            if o is not None:
                _or(pbx, call, o, False, 3)
            pbx.cdr(cust, "NO ANSWER")
            return "NOANSWER", 19, 480
        pbx.dial_event("DialEnd", caller, cust, ("DialStatus", "NOANSWER"))
        if caller is not None:
            pbx.varset(caller, "DIALSTATUS", "NOANSWER")
        pbx.hangup(cust, 0)
        return "NOANSWER", 0, None
    await pbx.wait(call, ring)
    pbx.newstate(cust, 6)
    if caller is not None:
        pbx.varset(caller, "DIALSTATUS", "ANSWER")
    pbx.dial_event("DialEnd", caller, cust, ("DialStatus", "ANSWER"))
    return "ANSWER", 16, None


# -- the dialplan ----------------------------------------------------------------------------

_DISPOSITION = {
    "BUSY": "BUSY",
    "CONGESTION": "CONGESTION",
    "NOANSWER": "NO ANSWER",
    "CHANUNAVAIL": "FAILED",
}


def _mixmonitor(pbx: Pbx, chan: Chan, rec: list[_Rec]) -> _Rec:
    pbx.start_mixmonitor(chan)
    r = _Rec(f"{chan.uniqueid}.wav")
    rec.append(r)
    return r


def _bridge(pbx: Pbx, first: Chan, second: Chan, r: _Rec | None) -> str:
    bridge = pbx.new_bridge()
    pbx.bridge_event("BridgeCreate", bridge, 0)
    first.bridge = second.bridge = bridge
    pbx.bridge_event("BridgeEnter", bridge, 1, first)
    pbx.bridge_event("BridgeEnter", bridge, 2, second)
    pbx.varset(first, "BRIDGEPEER", second.name)
    pbx.varset(second, "BRIDGEPEER", first.name)
    if r is not None:
        r.bridged_at = pbx.clock.monotonic()
    return bridge


def _leave(pbx: Pbx, chan: Chan, members: int, r: _Rec | None = None) -> None:
    bridge, chan.bridge = chan.bridge, ""
    pbx.bridge_event("BridgeLeave", bridge, members, chan)
    if r is not None and r.bridged_at is not None:
        r.bridged += pbx.clock.monotonic() - r.bridged_at
        r.bridged_at = None


async def _talk(pbx: Pbx, call: Call, beh: Behaviour, cust: Chan, other: Chan) -> None:
    """The bridged conversation until the customer hangs up (DTMF on the way)."""
    if beh.dtmf and beh.dtmf_at < beh.talk:
        await pbx.wait(call, beh.dtmf_at)
        for name in ("DTMFBegin", "DTMFEnd"):
            dur = (
                [("DurationMs", "200" if cust.tech == "PJSIP" else "100")]
                if name == "DTMFEnd"
                else []
            )
            pbx.ev(
                name,
                cust,
                ("Digit", beh.dtmf),
                *dur,
                ("Direction", "Received"),
                privilege="dtmf,all",
            )
            pbx.ev(
                name, other, ("Digit", beh.dtmf), *dur, ("Direction", "Sent"), privilege="dtmf,all"
            )
        await pbx.wait(call, beh.talk - beh.dtmf_at)
    else:
        await pbx.wait(call, beh.talk)


async def _seat_first(
    pbx: Pbx, call: Call, o: Originate, seat_leg: Leg, family: str, rec: list[_Rec]
) -> None:
    s1, s2 = seat_leg.a, seat_leg.b
    number = o.exten
    ctx = o.context or ("dialer-sip" if family == "PJSIP" else "dialer")
    if family == "Local":
        number = dict(o.variables).get("NUMBER") or number
        _enter(pbx, s1, ctx, o.exten, "Set", f"NUMBER={number}")
        pbx.varset(s1, "NUMBER", number)
    else:
        _enter(pbx, s1, ctx, o.exten, "NoOp", f"seat-first {s1.name} -> {number}")
    r = _mixmonitor(pbx, s1, rec)
    resource = f"{number}@{'carrier' if family == 'PJSIP' else 'customers'}"
    ring = _seconds(dict(o.variables).get("RING_SECONDS"), 30.0)  # Dial(…,${RING_SECONDS})
    _enter(pbx, s1, ctx, o.exten, "Dial", f"{family}/{resource},{ring:g}")
    pbx.varset(s1, "DIALSTATUS", "")
    cust_leg = pbx.open_leg(
        call,
        family,
        resource,
        "customer",
        linkedid=s1.linkedid,
        cid=(number, s1.cid_name),
        set_vars=False,
    )
    cust = cust_leg.a
    beh = pbx.behaviour(number, family)
    moh = s2 is not None and (beh.answers or beh.kind == "noanswer")
    if moh and s2 is not None:
        pbx.ev("MusicOnHoldStart", s2, ("Class", "default"))
    if _role(family, resource) is None:
        beh = Behaviour("unallocated")
    status, cause, code = await _ring_customer(pbx, call, None, s1, cust_leg, beh, ring)
    if status == "ANSWER":
        _bridge(pbx, cust, s1, r)
        try:
            await _talk(pbx, call, beh, cust, s1)
            by = cust_leg.b or cust
        except HungUp:
            by = call.hangup_by or cust
            if by not in (cust, cust_leg.b):
                _seat_hung_up(pbx, seat_leg, cust_leg, by, moh, r)
                return
        c2 = cust_leg.b
        if c2 is None:  # PJSIP: the customer's BYE (or our Hangup on the carrier leg)
            if by is cust and call.hangup_by is None:
                pbx.hangup_request(cust, 16)
            bridge = cust.bridge
            _leave(pbx, cust, 1, r)
            _leave(pbx, s1, 0, r)
            if pbx.seat_hangup_first:
                # pjsip_chanspy_barge: the seat's Hangup before the carrier's.
                pbx.varset(s1, "DIALSTATUS", status)
                pbx.hangup_request(s1, 16, soft=True)
                pbx.bridge_event("BridgeDestroy", bridge, 0)
                pbx.cdr(s1, "ANSWERED", cust, "Dial")
                pbx.hangup(s1, 16)
                await pbx.wait(call, SEAT_HANGUP_LEAD)
                pbx.hangup(cust, 16)
                return
            pbx.bridge_event("BridgeDestroy", bridge, 0)
            pbx.hangup(cust, 16)
        elif by is c2:
            pbx.hangup_request(c2, 16, soft=True)
            pbx.hangup_request(cust, 16)
            pbx.cdr(c2, "ANSWERED")
            pbx.hangup(c2, 16)
            bridge = cust.bridge
            _leave(pbx, cust, 1, r)
            _leave(pbx, s1, 0, r)
            pbx.hangup(cust, 16)
            pbx.bridge_event("BridgeDestroy", bridge, 0)
        else:  # Hangup action on cust;1
            bridge = cust.bridge
            _leave(pbx, cust, 1, r)
            pbx.hangup_request(c2, 16)
            _leave(pbx, s1, 0, r)
            pbx.bridge_event("BridgeDestroy", bridge, 0)
            pbx.hangup(cust, 16)
            pbx.cdr(c2, "ANSWERED")
            pbx.hangup_request(c2, 16, soft=True)
            pbx.hangup(c2, 16)
    if s2 is not None or status == "ANSWER":
        pbx.varset(s1, "DIALSTATUS", status)
    pbx.hangup_request(s1, 16, soft=True)
    if s2 is None:
        if status == "ANSWER":
            pbx.cdr(s1, "ANSWERED", cust, "Dial")
            pbx.hangup(s1, 16)
        else:
            if code is not None:
                pbx.hangup(s1, cause, tech=code)
            pbx.cdr(s1, _DISPOSITION.get(status, "FAILED"), cust, "Dial")
            pbx.cdr(s1, "ANSWERED", None, "Dial")
            if code is None:
                pbx.hangup(s1, 16)
        return
    pbx.hangup_request(s2, 16)
    if status != "ANSWER":
        pbx.cdr(s1, _DISPOSITION.get(status, "FAILED"), cust, "Dial")
    pbx.cdr(s1, "ANSWERED", cust, "Dial")
    pbx.cdr(s2, "ANSWERED", None, "MusicOnHold", "default")
    if moh:
        pbx.ev("MusicOnHoldStop", s2)
    pbx.hangup_request(s2, 16, soft=True)
    pbx.hangup(s2, 16)
    pbx.hangup(s1, 16)


def _seat_hung_up(pbx: Pbx, seat_leg: Leg, cust_leg: Leg, by: Chan, moh: bool, r: _Rec) -> None:
    """A Hangup action on the seat's side of a bridged seat-first call (06: seat;2)."""
    s1, s2 = seat_leg.a, seat_leg.b
    cust, c2 = cust_leg.a, cust_leg.b
    bridge = s1.bridge
    if s2 is not None:
        if moh:
            pbx.ev("MusicOnHoldStop", s2)
        pbx.hangup_request(s2, 16, soft=True)
        pbx.hangup(s2, 0)
        pbx.hangup_request(s1, 0)
    else:
        pbx.hangup_request(s1, 16, soft=True)
    _leave(pbx, s1, 1, r)
    _leave(pbx, cust, 0, r)
    pbx.bridge_event("BridgeDestroy", bridge, 0)
    pbx.hangup(cust, 16)
    if c2 is not None:
        pbx.hangup_request(c2, 16)
        pbx.cdr(c2, "ANSWERED")
        pbx.hangup_request(c2, 16, soft=True)
        pbx.hangup(c2, 16)
        pbx.varset(s1, "DIALSTATUS", "ANSWER")
        pbx.hangup_request(s1, 16, soft=True)
        pbx.cdr(s1, "ANSWERED", cust, "Dial")
        pbx.cdr(s2 if s2 is not None else s1, "ANSWERED", None, "MusicOnHold", "default")
    else:
        pbx.cdr(s1, "ANSWERED", cust, "Dial")
    pbx.hangup(s1, 16)
    del by


async def _customer_first(
    pbx: Pbx, call: Call, o: Originate, leg: Leg, beh: Behaviour, family: str, rec: list[_Rec]
) -> None:
    ctx = o.context or ("dialer-sip" if family == "PJSIP" else "dialer")
    seat = dict(o.variables).get("SEAT", "")
    await _connect_seat(pbx, call, o, leg, beh, family, rec, ctx, seat, 20.0)


async def _connect_seat(
    pbx: Pbx,
    call: Call,
    o: Originate,
    leg: Leg,
    beh: Behaviour,
    family: str,
    rec: list[_Rec],
    ctx: str,
    seat: str,
    seat_timeout: float,
) -> None:
    """`connect-seat` on the customer's channel (answered): MixMonitor, Dial(seat), talk."""
    c1, c2 = leg.a, leg.b
    r = _mixmonitor(pbx, c1, rec)
    resource = f"{seat}@seats" if family == "Local" else seat
    _enter(pbx, c1, ctx, "connect-seat", "Dial", f"{family}/{resource},{seat_timeout:g}")
    pbx.varset(c1, "DIALSTATUS", "")
    if not seat or _role(family, resource) is None:
        pbx.varset(c1, "DIALSTATUS", "CHANUNAVAIL")
        _teardown(pbx, call, o)
        return
    seat_leg = pbx.open_leg(
        call,
        family,
        resource,
        "seat",
        linkedid=c1.linkedid,
        cid=(o.cid[0], o.cid[1]),
        set_vars=False,
    )
    s1, s2 = seat_leg.a, seat_leg.b
    if seat in pbx.unanswered_seats:
        status, _, _ = await _ring_customer(
            pbx, call, None, c1, seat_leg, _SEAT_SILENT, seat_timeout
        )
        await _no_seat(pbx, call, leg, ctx, seat, status)
        return
    await _ring_seat(pbx, call, c1, seat_leg)
    bridge = _bridge(pbx, s1, c1, r)
    if s2 is not None:
        pbx.ev("MusicOnHoldStart", s2, ("Class", "default"))
    try:
        await _talk(pbx, call, beh, c1, s1)
    except HungUp:
        if call.hangup_by not in (c1, c2):
            raise
    if c2 is None:  # PJSIP
        pbx.hangup_request(c1, 16)
        _leave(pbx, c1, 1, r)
        pbx.varset(c1, "DIALSTATUS", "ANSWER")
        pbx.hangup_request(c1, 16, soft=True)
        if pbx.seat_hangup_first:
            # pjsip_key2_redirect_to_seat: the seat's Hangup before the carrier's.
            _leave(pbx, s1, 0, r)
            pbx.bridge_event("BridgeDestroy", bridge, 0)
            pbx.hangup(s1, 16)
            await pbx.wait(call, SEAT_HANGUP_LEAD)
            pbx.cdr(c1, "ANSWERED", s1, "Dial")
            pbx.hangup(c1, 16)
            return
        pbx.cdr(c1, "ANSWERED", s1, "Dial")
        _leave(pbx, s1, 0, r)
        pbx.bridge_event("BridgeDestroy", bridge, 0)
        pbx.hangup(c1, 16)
        pbx.hangup(s1, 16)
        return
    pbx.cdr(c2, "ANSWERED")
    pbx.hangup_request(c2, 16, soft=True)
    pbx.hangup_request(c1, 16)
    pbx.hangup(c2, 16)
    _leave(pbx, c1, 1, r)
    pbx.varset(c1, "DIALSTATUS", "ANSWER")
    pbx.hangup_request(c1, 16, soft=True)
    _leave(pbx, s1, 0, r)
    pbx.bridge_event("BridgeDestroy", bridge, 0)
    assert s2 is not None
    pbx.hangup_request(s2, 16)
    pbx.hangup(s1, 16)
    pbx.ev("MusicOnHoldStop", s2)
    pbx.hangup_request(s2, 16, soft=True)
    pbx.hangup(s2, 16)
    pbx.cdr(s2, "ANSWERED", None, "MusicOnHold", "default")
    pbx.cdr(c1, "ANSWERED", s1, "Dial")
    pbx.hangup(c1, 16)


async def _no_seat(pbx: Pbx, call: Call, leg: Leg, ctx: str, seat: str, status: str) -> None:
    """No seat answered (docker/asterisk/extensions.conf): UserEvent Abandoned, a short
    message, hang-up."""
    c1 = leg.a
    pbx.varset(c1, "DIALSTATUS", status)
    attempt = c1.variables.get("ATTEMPT_ID", "")
    _enter(pbx, c1, ctx, "connect-seat", "UserEvent", f"Abandoned,AttemptId: {attempt}")
    pbx.ev(
        "UserEvent",
        c1,
        ("UserEvent", "Abandoned"),
        ("AttemptId", attempt),
        ("Seat", seat),
        ("DialStatus", status),
        privilege="user,all",
    )
    later = c1.variables.get("KEY") == CONNECT_KEY  # handed over from the callback menu
    message = prompts.A_SPECIALIST_WILL_CALL_YOU if later else prompts.RENEWAL_SORRY
    if c1.variables.get("POOL") == "1":  # a pooled campaign's call names the caller
        message = prompts.POOL_SORRY
    _enter(pbx, c1, ctx, "connect-seat", "Playback", message)
    await pbx.wait(call, playback_seconds(message))
    _dialplan_hangs_up(pbx, leg)


def _customer_hangs_up(pbx: Pbx, leg: Leg) -> None:
    c1, c2 = leg.a, leg.b
    if c2 is not None:
        pbx.hangup_request(c2, 16, soft=True)
        pbx.hangup_request(c1, 16)
        pbx.cdr(c2, "ANSWERED")
        pbx.hangup(c2, 16)
        pbx.cdr(c1, "ANSWERED")
        pbx.hangup(c1, 16)
    else:
        pbx.hangup_request(c1, 16)
        pbx.cdr(c1, "ANSWERED")
        pbx.hangup(c1, 16)


def _dialplan_hangs_up(pbx: Pbx, leg: Leg) -> None:
    c1, c2 = leg.a, leg.b
    pbx.hangup_request(c1, 16, soft=True)
    if c2 is not None:
        pbx.hangup_request(c2, 16)
    pbx.hangup(c1, 16)
    pbx.cdr(c1, "ANSWERED")
    if c2 is not None:
        pbx.cdr(c2, "ANSWERED")
        pbx.hangup_request(c2, 16, soft=True)
        pbx.hangup(c2, 16)


async def _callback(
    pbx: Pbx,
    call: Call,
    o: Originate,
    leg: Leg,
    beh: Behaviour,
    family: str,
    rec: list[_Rec],
) -> None:
    c1 = leg.a
    context = o.context
    _enter(pbx, c1, context or "dialer", "callback", "Playback", "hello-world")
    prompt = playback_seconds("hello-world") + playback_seconds("if-correct-press")
    read_timeout = 6.0
    if beh.dtmf and beh.dtmf_at < beh.talk:
        await pbx.wait(call, beh.dtmf_at)
        _enter(pbx, c1, context or "dialer", "callback", "Read", "KEY,if-correct-press,1,,1,6")
        key, status = beh.dtmf, "OK"
        pbx.ev("DTMFBegin", c1, ("Digit", key), ("Direction", "Received"), privilege="dtmf,all")
        pbx.ev(
            "DTMFEnd",
            c1,
            ("Digit", key),
            ("DurationMs", "100"),
            ("Direction", "Received"),
            privilege="dtmf,all",
        )
    elif beh.talk > prompt + read_timeout:
        await pbx.wait(call, prompt + read_timeout)
        key, status = "", "TIMEOUT"
    else:
        await pbx.wait(call, beh.talk)
        _customer_hangs_up(pbx, leg)
        return
    pbx.varset(c1, "KEY", key)
    pbx.varset(c1, "READSTATUS", status)
    _enter(
        pbx,
        c1,
        context or "dialer",
        "callback",
        "UserEvent",
        f"CallbackResult,Key: {key},ReadStatus: {status}",
    )
    pbx.ev(
        "UserEvent",
        c1,
        ("UserEvent", "CallbackResult"),
        ("Key", key),
        ("ReadStatus", status),
        privilege="user,all",
    )
    if key == CONNECT_KEY:
        await _hold_for_specialist(pbx, call, o, leg, beh, family, rec, context or "dialer")
        return
    goodbye = playback_seconds("vm-goodbye")
    await pbx.wait(call, goodbye)
    _dialplan_hangs_up(pbx, leg)


async def _hold_for_specialist(
    pbx: Pbx,
    call: Call,
    o: Originate,
    leg: Leg,
    beh: Behaviour,
    family: str,
    rec: list[_Rec],
    ctx: str,
) -> None:
    """Key 2: "connecting you", then music on hold until the dialer Redirects the channel
    to connect-seat or HOLD_SECONDS run out ("a specialist will call you", hang-up). The
    customer waits on hold; once connected, talks with the seat for the behaviour's talk
    time, without pressing keys again."""
    c1 = leg.a
    hold = _seconds(c1.variables.get("HOLD_SECONDS"), HOLD_SECONDS)
    on_hold = False
    call.hold = c1
    try:
        prompt = prompts.CONNECTING_YOU
        _enter(pbx, c1, ctx, "callback", "Playback", prompt)
        await pbx.wait(call, playback_seconds(prompt))
        _enter(pbx, c1, ctx, "callback", "MusicOnHold", f"default,{hold:g}")
        pbx.ev("MusicOnHoldStart", c1, ("Class", "default"))
        on_hold = True
        await pbx.wait(call, hold)
    except Redirected:
        target, call.redirect, call.hold = call.redirect, None, None
        if on_hold:
            pbx.ev("MusicOnHoldStop", c1)
        assert target is not None
        context, exten = target
        if exten != "connect-seat":
            _dialplan_hangs_up(pbx, leg)  # no such extension in the modelled dialplan
            return
        _enter(pbx, c1, context, exten, "NoOp", f"callback {c1.name} -> seat")
        seat = c1.variables.get("SEAT", "")
        timeout = _seconds(c1.variables.get("SEAT_TIMEOUT"), 2.0)
        talk = replace(beh, dtmf=None)
        await _connect_seat(pbx, call, o, leg, talk, family, rec, context, seat, timeout)
        return
    call.hold = None
    pbx.ev("MusicOnHoldStop", c1)
    message = prompts.A_SPECIALIST_WILL_CALL_YOU
    _enter(pbx, c1, ctx, "callback", "Playback", message)
    await pbx.wait(call, playback_seconds(message))
    _dialplan_hangs_up(pbx, leg)


def _seconds(value: str | None, default: float) -> float:
    try:
        return float(value) if value else default
    except ValueError:
        return default


def request_redirect(pbx: Pbx, chan: Chan, context: str, exten: str) -> bool:
    """A Redirect action for `chan`: modelled for a channel on the callback's hold (the
    call coroutine then runs the target); anywhere else it is refused (False)."""
    call = chan.call
    if call is None or call.task is None or call.hold is not chan or call.redirect is not None:
        return False
    call.redirect = (context, exten)
    call.task.cancel()
    return True


async def _application(pbx: Pbx, call: Call, leg: Leg, beh: Behaviour, app: str, data: str) -> None:
    """The originated channel runs `app` (no dialplan) and is hung up when it returns: no
    HangupRequest on it, only its Hangup. Playback sets PLAYBACKSTATUS first (SUCCESS as in
    04_automatic_callback_playback; FAILED at once for a missing file, as Asterisk does)."""
    playback = app.lower() == "playback"
    length = playback_seconds(data) if playback else 1.0
    c1, c2 = leg.a, leg.b
    c1.app, c1.appdata = app, data
    if beh.talk < length:
        await pbx.wait(call, beh.talk)
        _customer_hangs_up(pbx, leg)
        return
    await pbx.wait(call, length)
    if playback:
        pbx.varset(c1, "PLAYBACKSTATUS", "SUCCESS" if has_sounds(data) else "FAILED")
    pbx.cdr(c1, "ANSWERED")
    if c2 is not None:
        pbx.cdr(c2, "ANSWERED")
        pbx.hangup_request(c2, 0)
        pbx.hangup(c1, 0)
        pbx.hangup_request(c2, 16, soft=True)
        pbx.hangup(c2, 0)
    else:
        pbx.hangup(c1, 16)
