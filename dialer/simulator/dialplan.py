"""The lab dialplan of the simulated PBX, flow by flow (conf/extensions.conf and
pjsip/conf/extensions_pjsip.conf of the traces): seat first, customer first (connect-seat),
the callback menu with its key-2 hold, the reminder and a plain application; recordings
(MixMonitor), bridges and who hangs up first."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import PurePosixPath

from dialer import prompts
from dialer.simulator.behaviour import Behaviour
from dialer.simulator.devices import enter, ring_customer, ring_seat
from dialer.simulator.originating import (
    CONNECT_KEY,
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

# The dialplan's channel variable: the file a moved call records to so far (set by the
# dialer's move, dialer.transfer.RECORDING_VARIABLE; read by connect-seat's MixMonitor).
RECORDING_VARIABLE = "RECORDING"


_DISPOSITION = {
    "BUSY": "BUSY",
    "CONGESTION": "CONGESTION",
    "NOANSWER": "NO ANSWER",
    "CHANUNAVAIL": "FAILED",
}


def dial_seconds(value: str | None, default: float) -> float:
    try:
        return float(value) if value else default
    except ValueError:
        return default


def _mixmonitor(pbx: Pbx, chan: Chan, rec: list[Rec]) -> Rec:
    pbx.start_mixmonitor(chan)
    r = Rec(f"{chan.uniqueid}.wav")
    rec.append(r)
    return r


def _connect_seat_recording(pbx: Pbx, chan: Chan, rec: list[Rec]) -> Rec:
    """connect-seat's MixMonitor (docker/asterisk/extensions.conf). A call moved to another
    seat comes back here: a channel that records already (customer first) goes on with the
    MixMonitor it has (a second one on the same file would truncate it); a seat-first call's
    customer appends to the file the old seat's channel recorded (RECORDING, set by the
    move), so that the call keeps one recording."""
    name = PurePosixPath(chan.variables.get("MIXMONITOR_FILENAME", "")).name
    if not name:
        path = chan.variables.get(RECORDING_VARIABLE, "")
        if not path:
            return _mixmonitor(pbx, chan, rec)
        name = pbx.start_mixmonitor(chan, path, "ab").name
    for r in rec:
        if r.name == name:
            return r
    r = Rec(name)  # not this coroutine's file (e.g. a restart): its own part only
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
    ring = dial_seconds(dict(o.variables).get("RING_SECONDS"), 30.0)  # Dial(…,${RING_SECONDS})
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
            left = await _movable_talk(pbx, call, beh, cust, s1)
            if left is not None:
                _seat_first_moved(pbx, seat_leg, cust, moh, r)
                await _moved(
                    pbx, call, o, cust_leg, replace(beh, talk=left, dtmf=None), family, rec
                )
                return
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


async def _movable_talk(
    pbx: Pbx, call: Call, beh: Behaviour, cust: Chan, seat: Chan
) -> float | None:
    """The bridged talk, during which a Redirect may take the customer's channel out of the
    bridge (a supervisor moving the call to another seat): None when the talk ran its
    course, else the seconds the customer still had to say."""
    start = pbx.clock.monotonic()
    call.hold = cust
    try:
        await _talk(pbx, call, beh, cust, seat)
    except Redirected:
        return max(beh.talk - (pbx.clock.monotonic() - start), 0.0)
    finally:
        if call.hold is cust:
            call.hold = None
    return None


# A Redirect of a bridged channel is not in the lab traces (pjsip_key2_redirect_to_seat moves
# a channel on hold). Asterisk 22 (bridge_basic, app_dial) pulls the channel out of the bridge
# (BridgeLeave), the two-party bridge dissolves (the peer's BridgeLeave, BridgeDestroy) and
# the redirected channel runs the new extension (Newexten …), while the peer's side ends:
# the Dial caller's dialplan goes on after Dial (DIALSTATUS ANSWER, then its hang-up, as at
# the end of every seat-first call); a Dial callee is hung up by app_dial.


def _seat_first_moved(pbx: Pbx, seat_leg: Leg, cust: Chan, moh: bool, r: Rec) -> None:
    """The customer (the seat's Dial callee) was redirected: the seat's side ends."""
    s1, s2 = seat_leg.a, seat_leg.b
    bridge = cust.bridge
    _leave(pbx, cust, 1, r)
    _leave(pbx, s1, 0, r)
    pbx.bridge_event("BridgeDestroy", bridge, 0)
    pbx.varset(s1, "DIALSTATUS", "ANSWER")
    pbx.hangup_request(s1, 16, soft=True)
    if s2 is not None:
        pbx.hangup_request(s2, 16)
        if moh:
            pbx.ev("MusicOnHoldStop", s2)
        pbx.cdr(s2, "ANSWERED", None, "MusicOnHold", "default")
        pbx.hangup_request(s2, 16, soft=True)
        pbx.hangup(s2, 16)
    pbx.cdr(s1, "ANSWERED", cust, "Dial")
    pbx.hangup(s1, 16)


def _connected_seat_moved(pbx: Pbx, seat_leg: Leg, c1: Chan, r: Rec) -> None:
    """The customer (the Dial caller of connect-seat) was redirected: app_dial hangs the
    seat (its callee) up."""
    s1, s2 = seat_leg.a, seat_leg.b
    bridge = c1.bridge
    _leave(pbx, c1, 1, r)
    _leave(pbx, s1, 0, r)
    pbx.bridge_event("BridgeDestroy", bridge, 0)
    pbx.hangup_request(s1, 16, soft=True)
    if s2 is not None:
        pbx.ev("MusicOnHoldStop", s2)
        pbx.hangup_request(s2, 16, soft=True)
        pbx.cdr(s2, "ANSWERED", None, "MusicOnHold", "default")
        pbx.hangup(s2, 16)
    pbx.hangup(s1, 16)
    pbx.cdr(c1, "ANSWERED", s1, "Dial")


async def _moved(
    pbx: Pbx, call: Call, o: Originate, leg: Leg, beh: Behaviour, family: str, rec: list[Rec]
) -> None:
    """The customer's channel runs the Redirect's target: `connect-seat` dials the SEAT set
    on it (as the key-2 hand-over does); any other extension is not in the modelled
    dialplan and hangs up."""
    target, call.redirect = call.redirect, None
    assert target is not None
    context, exten = target
    cust = leg.a
    if exten != "connect-seat":
        dialplan_hangs_up(pbx, leg)
        return
    seat = cust.variables.get("SEAT", "")
    enter(pbx, cust, context, exten, "NoOp", f"moved {cust.name} -> seat {seat}")
    timeout = dial_seconds(cust.variables.get("SEAT_TIMEOUT"), 10.0)
    await connect_seat(pbx, call, o, leg, beh, family, rec, context, seat, timeout)


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
    await connect_seat(pbx, call, o, leg, beh, family, rec, ctx, seat, 20.0)


async def connect_seat(
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
    r = _connect_seat_recording(pbx, c1, rec)
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
        await no_seat(pbx, call, leg, ctx, seat, status)
        return
    await ring_seat(pbx, call, c1, seat_leg)
    bridge = _bridge(pbx, s1, c1, r)
    if s2 is not None:
        pbx.ev("MusicOnHoldStart", s2, ("Class", "default"))
    try:
        left = await _movable_talk(pbx, call, beh, c1, s1)
    except HungUp:
        if call.hangup_by not in (c1, c2):
            raise
        left = None
    if left is not None:
        _connected_seat_moved(pbx, seat_leg, c1, r)
        await _moved(pbx, call, o, leg, replace(beh, talk=left, dtmf=None), family, rec)
        return
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


async def no_seat(pbx: Pbx, call: Call, leg: Leg, ctx: str, seat: str, status: str) -> None:
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
    dialplan_hangs_up(pbx, leg)


def customer_hangs_up(pbx: Pbx, leg: Leg) -> None:
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


def dialplan_hangs_up(pbx: Pbx, leg: Leg) -> None:
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


def request_redirect(pbx: Pbx, chan: Chan, context: str, exten: str) -> bool:
    """A Redirect action for `chan`: modelled for a channel on the callback's hold and for
    the customer's channel bridged to a seat (the call coroutine then runs the target);
    anywhere else it is refused (False)."""
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
        customer_hangs_up(pbx, leg)
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
