"""The lab dialplan of the simulated PBX, flow by flow (conf/extensions.conf and
pjsip/conf/extensions_pjsip.conf of the traces): seat first, customer first (connect-seat),
the callback menu with its key-2 hold, the reminder and a plain application; recordings
(MixMonitor), bridges and who hangs up first."""

from __future__ import annotations

import logging
from dataclasses import replace

from dialer import prompts
from dialer.simulator.behaviour import Behaviour
from dialer.simulator.devices import enter, ring_customer, ring_seat
from dialer.simulator.originating import (
    CONNECT_KEY,
    HOLD_SECONDS,
    SEAT_HANGUP_LEAD,
    SEAT_SILENT,
    Originate,
    Rec,
    role_of,
    teardown,
)
from dialer.simulator.pbx import (
    Call,
    Chan,
    HungUp,
    Leg,
    Pbx,
    Redirected,
    has_sounds,
    playback_seconds,
)

log = logging.getLogger(__name__)


_DISPOSITION = {
    "BUSY": "BUSY",
    "CONGESTION": "CONGESTION",
    "NOANSWER": "NO ANSWER",
    "CHANUNAVAIL": "FAILED",
}


def _mixmonitor(pbx: Pbx, chan: Chan, rec: list[Rec]) -> Rec:
    pbx.start_mixmonitor(chan)
    r = Rec(f"{chan.uniqueid}.wav")
    rec.append(r)
    return r


def _bridge(pbx: Pbx, first: Chan, second: Chan, r: Rec | None) -> str:
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


def _leave(pbx: Pbx, chan: Chan, members: int, r: Rec | None = None) -> None:
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


async def seat_first(
    pbx: Pbx, call: Call, o: Originate, seat_leg: Leg, family: str, rec: list[Rec]
) -> None:
    s1, s2 = seat_leg.a, seat_leg.b
    number = o.exten
    ctx = o.context or ("dialer-sip" if family == "PJSIP" else "dialer")
    if family == "Local":
        number = dict(o.variables).get("NUMBER") or number
        enter(pbx, s1, ctx, o.exten, "Set", f"NUMBER={number}")
        pbx.varset(s1, "NUMBER", number)
    else:
        enter(pbx, s1, ctx, o.exten, "NoOp", f"seat-first {s1.name} -> {number}")
    r = _mixmonitor(pbx, s1, rec)
    resource = f"{number}@{'carrier' if family == 'PJSIP' else 'customers'}"
    ring = _seconds(dict(o.variables).get("RING_SECONDS"), 30.0)  # Dial(…,${RING_SECONDS})
    enter(pbx, s1, ctx, o.exten, "Dial", f"{family}/{resource},{ring:g}")
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
    if role_of(family, resource) is None:
        beh = Behaviour("unallocated")
    status, cause, code = await ring_customer(pbx, call, None, s1, cust_leg, beh, ring)
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


def _seat_hung_up(pbx: Pbx, seat_leg: Leg, cust_leg: Leg, by: Chan, moh: bool, r: Rec) -> None:
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


async def customer_first(
    pbx: Pbx, call: Call, o: Originate, leg: Leg, beh: Behaviour, family: str, rec: list[Rec]
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
    rec: list[Rec],
    ctx: str,
    seat: str,
    seat_timeout: float,
) -> None:
    """`connect-seat` on the customer's channel (answered): MixMonitor, Dial(seat), talk."""
    c1, c2 = leg.a, leg.b
    r = _mixmonitor(pbx, c1, rec)
    resource = f"{seat}@seats" if family == "Local" else seat
    enter(pbx, c1, ctx, "connect-seat", "Dial", f"{family}/{resource},{seat_timeout:g}")
    pbx.varset(c1, "DIALSTATUS", "")
    if not seat or role_of(family, resource) is None:
        pbx.varset(c1, "DIALSTATUS", "CHANUNAVAIL")
        teardown(pbx, call, o)
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
        status, _, _ = await ring_customer(pbx, call, None, c1, seat_leg, SEAT_SILENT, seat_timeout)
        await _no_seat(pbx, call, leg, ctx, seat, status)
        return
    await ring_seat(pbx, call, c1, seat_leg)
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
    enter(pbx, c1, ctx, "connect-seat", "UserEvent", f"Abandoned,AttemptId: {attempt}")
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
    enter(pbx, c1, ctx, "connect-seat", "Playback", message)
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


async def callback_flow(
    pbx: Pbx,
    call: Call,
    o: Originate,
    leg: Leg,
    beh: Behaviour,
    family: str,
    rec: list[Rec],
) -> None:
    c1 = leg.a
    context = o.context
    enter(pbx, c1, context or "dialer", "callback", "Playback", "hello-world")
    prompt = playback_seconds("hello-world") + playback_seconds("if-correct-press")
    read_timeout = 6.0
    if beh.dtmf and beh.dtmf_at < beh.talk:
        await pbx.wait(call, beh.dtmf_at)
        enter(pbx, c1, context or "dialer", "callback", "Read", "KEY,if-correct-press,1,,1,6")
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
    enter(
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
    rec: list[Rec],
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
        enter(pbx, c1, ctx, "callback", "Playback", prompt)
        await pbx.wait(call, playback_seconds(prompt))
        enter(pbx, c1, ctx, "callback", "MusicOnHold", f"default,{hold:g}")
        pbx.ev("MusicOnHoldStart", c1, ("Class", "default"))
        on_hold = True
        await pbx.wait(call, hold)
    except Redirected:
        talk = replace(beh, dtmf=None)
        await _redirected(pbx, call, o, leg, talk, family, rec, on_hold=on_hold, note="callback")
        return
    call.hold = None
    pbx.ev("MusicOnHoldStop", c1)
    message = prompts.A_SPECIALIST_WILL_CALL_YOU
    enter(pbx, c1, ctx, "callback", "Playback", message)
    await pbx.wait(call, playback_seconds(message))
    _dialplan_hangs_up(pbx, leg)


async def _redirected(
    pbx: Pbx,
    call: Call,
    o: Originate,
    leg: Leg,
    beh: Behaviour,
    family: str,
    rec: list[Rec],
    *,
    on_hold: bool,
    note: str,
) -> None:
    """A channel on hold was Redirected (the dialer found a seat): to `connect-seat` with
    the SEAT and SEAT_TIMEOUT set on it; anywhere else the modelled dialplan hangs up."""
    c1 = leg.a
    target, call.redirect, call.hold = call.redirect, None, None
    if on_hold:
        pbx.ev("MusicOnHoldStop", c1)
    assert target is not None
    context, exten = target
    if exten != "connect-seat":
        _dialplan_hangs_up(pbx, leg)  # no such extension in the modelled dialplan
        return
    enter(pbx, c1, context, exten, "NoOp", f"{note} {c1.name} -> seat")
    seat = c1.variables.get("SEAT", "")
    timeout = _seconds(c1.variables.get("SEAT_TIMEOUT"), 2.0)
    await _connect_seat(pbx, call, o, leg, beh, family, rec, context, seat, timeout)


POOL_EXTEN = "pool-wait"


async def pool_wait(
    pbx: Pbx, call: Call, o: Originate, leg: Leg, beh: Behaviour, family: str, rec: list[Rec]
) -> None:
    """`pool-wait` (docker/asterisk/extensions.conf): a pooled call answered with no seat
    chosen yet. UserEvent PoolAnswered, then music on hold for POOL_WAIT s, during which a
    Redirect to connect-seat connects the SEAT set on the channel; else Abandoned and the
    pool's message. A customer who hangs up within the wait just hangs up."""
    c1 = leg.a
    ctx = o.context or ("dialer-sip" if family == "PJSIP" else "dialer")
    attempt = c1.variables.get("ATTEMPT_ID", "")
    wait = _seconds(c1.variables.get("POOL_WAIT"), 2.0)
    enter(pbx, c1, ctx, POOL_EXTEN, "UserEvent", f"PoolAnswered,AttemptId: {attempt}")
    pbx.ev(
        "UserEvent",
        c1,
        ("UserEvent", "PoolAnswered"),
        ("AttemptId", attempt),
        privilege="user,all",
    )
    enter(pbx, c1, ctx, POOL_EXTEN, "MusicOnHold", f"default,{wait:g}")
    pbx.ev("MusicOnHoldStart", c1, ("Class", "default"))
    call.hold = c1
    try:
        if beh.talk < wait:
            await pbx.wait(call, beh.talk)
            call.hold = None
            pbx.ev("MusicOnHoldStop", c1)
            _customer_hangs_up(pbx, leg)
            return
        await pbx.wait(call, wait)
    except Redirected:
        await _redirected(pbx, call, o, leg, beh, family, rec, on_hold=True, note="pool")
        return
    call.hold = None
    pbx.ev("MusicOnHoldStop", c1)
    await _no_seat(pbx, call, leg, ctx, "", "NOANSWER")


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


async def run_application(
    pbx: Pbx, call: Call, leg: Leg, beh: Behaviour, app: str, data: str
) -> None:
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
