"""Dialling one device of the simulated PBX: a seat (Local or PJSIP) or a customer (Local, or
PJSIP through the carrier with its SIP answers), ringing it for the dial's time and saying
how it ended (DialStatus, cause, SIP code), as the lab's Asterisk does."""

from __future__ import annotations

import logging
import math

from dialer.simulator.behaviour import SIP_FAILURES, Behaviour
from dialer.simulator.originating import (
    Originate,
    originate_response,
)
from dialer.simulator.pbx import (
    Call,
    Chan,
    Leg,
    Pbx,
)

log = logging.getLogger(__name__)


def enter(pbx: Pbx, chan: Chan, context: str, exten: str, app: str, data: str) -> None:
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


async def ring_seat(
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


async def ring_customer(
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
            originate_response(pbx, call, o, False, reason)

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
            originate_response(
                pbx, call, o, False, 0
            )  # customer-first SIP failures all give Reason 0
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
                originate_response(pbx, call, o, False, 3)
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


__all__ = ["enter", "ring_customer", "ring_seat"]
