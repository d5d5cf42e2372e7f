"""The lab dialplan's flows after the customer answers an automatic call: the callback
menu with its key-2 hold and hand-over (a Redirect to a free seat), and the pool's wait
for a free member. Both end in `connect-seat` (`dialplan.connect_seat`)."""

from __future__ import annotations

import logging
from dataclasses import replace

from dialer import prompts
from dialer.simulator.behaviour import Behaviour
from dialer.simulator.devices import enter
from dialer.simulator.dialplan import (
    connect_seat,
    customer_hangs_up,
    dial_seconds,
    dialplan_hangs_up,
    no_seat,
)
from dialer.simulator.originating import (
    CONNECT_KEY,
    HOLD_SECONDS,
    Originate,
    Rec,
)
from dialer.simulator.pbx import (
    Call,
    Leg,
    Pbx,
    Redirected,
    playback_seconds,
)

log = logging.getLogger(__name__)


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
        customer_hangs_up(pbx, leg)
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
    dialplan_hangs_up(pbx, leg)


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
    hold = dial_seconds(c1.variables.get("HOLD_SECONDS"), HOLD_SECONDS)
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
    dialplan_hangs_up(pbx, leg)


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
        dialplan_hangs_up(pbx, leg)  # no such extension in the modelled dialplan
        return
    enter(pbx, c1, context, exten, "NoOp", f"{note} {c1.name} -> seat")
    seat = c1.variables.get("SEAT", "")
    timeout = dial_seconds(c1.variables.get("SEAT_TIMEOUT"), 2.0)
    await connect_seat(pbx, call, o, leg, beh, family, rec, context, seat, timeout)


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
    wait = dial_seconds(c1.variables.get("POOL_WAIT"), 2.0)
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
            customer_hangs_up(pbx, leg)
            return
        await pbx.wait(call, wait)
    except Redirected:
        await _redirected(pbx, call, o, leg, beh, family, rec, on_hold=True, note="pool")
        return
    call.hold = None
    pbx.ev("MusicOnHoldStop", c1)
    await no_seat(pbx, call, leg, ctx, "", "NOANSWER")
