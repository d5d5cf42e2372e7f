"""Originate and the lab dialplan, as coroutines over `Pbx` (see pbx.py). This module starts
an Originate and sends it down its flow; the flows are in `dialplan.py`, the dialling of one
device in `devices.py`, what they share in `originating.py`.

Flows (conf/extensions.conf and pjsip/conf/extensions_pjsip.conf of the traces):

* seat first: Originate Channel=<seat> (Local/8001@seats or PJSIP/8001), Context
  dialer/dialer-sip, Exten=<number>: the seat answers, MixMonitor, Dial(customer, 30).
* customer first: Channel=<customer> (Local/<n>@customers or PJSIP/<n>@carrier),
  Exten connect-seat, Variable SEAT: MixMonitor, Dial(seat, 20).
* callback: Exten callback: Playback, Read one key, UserEvent CallbackResult, goodbye; on
  key 2 (docker/asterisk/extensions.conf) "connecting you" and music on hold for
  HOLD_SECONDS (20), during which a Redirect to connect-seat connects the SEAT set on the
  channel (`request_redirect`); else "a specialist will call you" and hang-up.
* pooled: Exten pool-wait (POOL=1): UserEvent PoolAnswered, hold POOL_WAIT (2) s for a
  Redirect to connect-seat, else Abandoned and the pool's message.
* reminder: Exten reminder: Playback, hang up.
* application: Application=Playback, Data=...: plays and hangs up.
"""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path

from dialer import prompts
from dialer.simulator.behaviour import Behaviour
from dialer.simulator.callback_menu import callback_flow, pool_wait
from dialer.simulator.chanspy import chanspy, is_chanspy
from dialer.simulator.devices import ring_customer, ring_seat
from dialer.simulator.dialplan import (
    customer_first,
    request_redirect,
    run_application,
    seat_first,
)
from dialer.simulator.originating import (
    SEAT_FIRST_EXTEN,
    Originate,
    Rec,
    Responder,
    family_of,
    originate_response,
    role_of,
    teardown,
)
from dialer.simulator.pbx import (
    Call,
    HungUp,
    Pbx,
    PbxShutDown,
)
from dialer.simulator.shutdown import cut

log = logging.getLogger(__name__)


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


async def _run(pbx: Pbx, call: Call, o: Originate, tech: str, resource: str) -> None:
    rec: list[Rec] = []
    try:
        await _originate(pbx, call, o, tech, resource, rec)
    except PbxShutDown:
        cut(pbx, call)
        originate_response(pbx, call, o, False, 0)
    except HungUp:
        teardown(pbx, call, o)
    except asyncio.CancelledError:
        teardown(pbx, call, o)
        raise
    except Exception:
        log.exception("simulated call %s crashed", o.action_id)
        teardown(pbx, call, o)
    finally:
        for r in rec:
            seconds = r.bridged
            if r.bridged_at is not None:
                seconds += pbx.clock.monotonic() - r.bridged_at
            pbx.finish_recording(Path(r.name), seconds)
        pbx.calls.discard(call)
        pbx.processed_calls += 1


async def _originate(
    pbx: Pbx, call: Call, o: Originate, tech: str, resource: str, rec: list[Rec]
) -> None:
    family = family_of(tech)
    if family is None:
        # Unknown technology: queued, then Failure Reason 0 with no channel at all.
        originate_response(pbx, call, o, False, 0)
        return
    role = role_of(family, resource)
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
        originate_response(pbx, call, o, False, 0)
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
        status, _, _ = await ring_seat(pbx, call, None, leg)
        beh = Behaviour("answer", talk=math.inf)
    else:
        beh = pbx.behaviour(number, family)
        status, _, _ = await ring_customer(pbx, call, o, None, leg, beh, o.timeout)
    if status != "ANSWER":
        return
    a = leg.a
    originate_response(pbx, call, o, True, 4, a)
    if is_chanspy(o.application):
        await chanspy(pbx, call, leg, o.data)
    elif o.application:
        await run_application(pbx, call, leg, beh, o.application, o.data)
    elif o.exten == "connect-seat":
        await customer_first(pbx, call, o, leg, beh, family, rec)
    elif o.exten == "pool-wait":
        await pool_wait(pbx, call, o, leg, beh, family, rec)
    elif o.exten == "callback":
        await callback_flow(pbx, call, o, leg, beh, family, rec)
    elif o.exten == "reminder":
        await run_application(pbx, call, leg, beh, "Playback", prompts.RENEWAL_REMINDER)
    elif kind == "seat" and SEAT_FIRST_EXTEN.match(o.exten):
        await seat_first(pbx, call, o, leg, family, rec)
    else:
        teardown(pbx, call, o)


__all__ = ["Originate", "request_redirect", "start_originate"]
