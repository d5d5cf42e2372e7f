"""The Originate actions the dialer sends, per mode. Pure: plain data in, AMI headers out.

Every Originate carries the attempt id three times (docs/asterisk.md):
* `ActionID` — the OriginateResponse and the queued response come back with it;
* `ChannelId` — the originated channel's Uniqueid, so the Linkedid of every channel of
  the call is the attempt id too (the 08 trace), whatever order events arrive in;
* the channel variable `ATTEMPT_ID` — the dialplan and CDRs can name it, and on a failed
  customer-first originate (Uniqueid `<unknown>` otherwise) the VarSet finds the channel.

Modes:
* seat first: Channel=<seat device>, Context=<dialer context>, Exten=<customer number>;
  the dialplan records (MixMonitor) and dials the customer through the trunk for
  RING_SECONDS (the Originate's own Timeout only covers the seat, which answers at once).
* customer first: Channel=<customer through the trunk>, Exten=connect-seat, Variable
  SEAT=<seat endpoint>; the dialplan gives a seat 2 s to answer, else plays a short message,
  raises UserEvent(Abandoned) and hangs up.
* pooled (predictive, no seat chosen yet): Channel=<customer through the trunk>,
  Exten=pool-wait, Variable POOL=1: on answer the dialplan raises UserEvent(PoolAnswered)
  and holds the customer for POOL_WAIT (2) s, in which the dialer Setvars SEAT and
  Redirects the channel to connect-seat (dialer.pool_dialer); else the customer hears the
  pool's message naming the caller, UserEvent(Abandoned), hang-up.
* reminder (automatic): Channel=<customer>, Application=Playback, Data=<message>.
* callback (automatic): Channel=<customer>, Context=<dialer context>, Exten=callback; the
  dialplan plays the message, reads one key and raises UserEvent(CallbackResult, Key: N).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dialer.ami.protocol import HeaderValue

CONNECT_SEAT_EXTEN = "connect-seat"
CALLBACK_EXTEN = "callback"
POOL_EXTEN = "pool-wait"
POOL_ANSWERED_EVENT = "PoolAnswered"  # the UserEvent of an answered pooled call


@dataclass(frozen=True, slots=True)
class DialPlan:
    """Where the dialer's calls go; configured per Asterisk server (docs/asterisk.md)."""

    family: str = "pjsip"  # pjsip (production) or local (the lab's Local channels)
    context: str = "dialer"
    trunk: str = "carrier"  # PJSIP endpoint of the carrier
    customers_context: str = "customers"  # Local family only
    seat_answer_seconds: int = 2  # customer first: a seat must answer within this
    ring_timeout_ms: int = 30_000  # how long the originated channel may ring
    caller_id: str = '"续保专员" <95500>'
    automatic_caller_id: str = '"续保回访" <95500>'

    def customer_channel(self, number: str, trunk: str | None = None) -> str:
        if self.family == "local":
            return f"Local/{number}@{self.customers_context}"
        return f"PJSIP/{number}@{trunk or self.trunk}"


def seat_endpoint(device: str) -> str:
    """`PJSIP/8001` -> `8001`; `Local/8001@seats` -> `8001` (what ${SEAT} in the dialplan wants)."""
    _, _, rest = device.partition("/")
    return (rest or device).split("@", 1)[0]


def dialable(number: str) -> str:
    """E.164 or national digits -> what the trunk dials (digits only, no +86)."""
    digits = "".join(ch for ch in number if ch.isdigit())
    if number.strip().startswith("+86"):
        digits = digits[2:]
    return digits


def _common(attempt_id: str, caller_id: str, timeout_ms: int) -> dict[str, HeaderValue]:
    return {
        "Priority": "1",
        "Async": "true",
        "Timeout": str(timeout_ms),
        "CallerID": caller_id,
        "ChannelId": attempt_id,
    }


def _variables(attempt_id: str, number: str, lead_id: int, **extra: str) -> dict[str, str]:
    v = {"ATTEMPT_ID": attempt_id, "NUMBER": number, "LEAD_ID": str(lead_id)}
    v.update(extra)
    return v


def seat_first(
    plan: DialPlan,
    *,
    attempt_id: str,
    seat: str,
    number: str,
    lead_id: int,
    caller_id: str | None = None,
) -> dict[str, HeaderValue]:
    h = _common(attempt_id, caller_id or plan.caller_id, plan.ring_timeout_ms)
    h.update({"Channel": seat, "Context": plan.context, "Exten": number})
    # The customer rings in the dialplan's Dial, not as the originated channel: its ring
    # time travels as a variable (cut, like Timeout, to what is left of the window).
    h["Variable"] = _variables(
        attempt_id, number, lead_id, RING_SECONDS=str(ring_seconds(plan.ring_timeout_ms))
    )
    return h


def ring_seconds(ring_ms: int) -> int:
    """Whole seconds for the dialplan's Dial timeout, never rounded up past the window."""
    return max(1, ring_ms // 1000)


def customer_first(
    plan: DialPlan,
    *,
    attempt_id: str,
    seat: str,
    number: str,
    lead_id: int,
    trunk: str | None = None,
    caller_id: str | None = None,
    pooled: bool = False,
) -> dict[str, HeaderValue]:
    h = _common(attempt_id, caller_id or plan.caller_id, plan.ring_timeout_ms)
    h.update(
        {
            "Channel": plan.customer_channel(number, trunk),
            "Context": plan.context,
            "Exten": CONNECT_SEAT_EXTEN,
        }
    )
    # POOL=1: a pooled campaign's customer whom no seat takes hears a message naming the
    # caller (the dialplan's `pool` branch of connect-seat), not the renewal one.
    extra = {"POOL": "1"} if pooled else {}
    h["Variable"] = _variables(
        attempt_id,
        number,
        lead_id,
        SEAT=seat_endpoint(seat),
        SEAT_TIMEOUT=str(plan.seat_answer_seconds),
        **extra,
    )
    return h


def pooled(
    plan: DialPlan,
    *,
    attempt_id: str,
    number: str,
    lead_id: int,
    trunk: str | None = None,
    caller_id: str | None = None,
) -> dict[str, HeaderValue]:
    """A pooled campaign's predictive call: the customer first as `customer_first`, but no
    seat yet: `pool-wait` holds the answered customer `POOL_WAIT` s while the dialer picks
    whoever of the pool is free then."""
    h = customer_first(
        plan,
        attempt_id=attempt_id,
        seat="",
        number=number,
        lead_id=lead_id,
        trunk=trunk,
        caller_id=caller_id,
        pooled=True,
    )
    h["Exten"] = POOL_EXTEN
    v = variables_of(h)
    del v["SEAT"]  # the dialer's Setvar sets it before the Redirect to connect-seat
    v["POOL_WAIT"] = str(plan.seat_answer_seconds)
    h["Variable"] = v
    return h


def reminder(
    plan: DialPlan,
    *,
    attempt_id: str,
    number: str,
    lead_id: int,
    message: str,
    trunk: str | None = None,
    caller_id: str | None = None,
) -> dict[str, HeaderValue]:
    h = _common(attempt_id, caller_id or plan.automatic_caller_id, plan.ring_timeout_ms)
    h.update(
        {
            "Channel": plan.customer_channel(number, trunk),
            "Application": "Playback",
            "Data": message,
        }
    )
    del h["Priority"]
    h["Variable"] = _variables(attempt_id, number, lead_id)
    return h


def callback(
    plan: DialPlan,
    *,
    attempt_id: str,
    number: str,
    lead_id: int,
    trunk: str | None = None,
    caller_id: str | None = None,
) -> dict[str, HeaderValue]:
    h = _common(attempt_id, caller_id or plan.automatic_caller_id, plan.ring_timeout_ms)
    h.update(
        {
            "Channel": plan.customer_channel(number, trunk),
            "Context": plan.context,
            "Exten": CALLBACK_EXTEN,
        }
    )
    h["Variable"] = _variables(attempt_id, number, lead_id)
    return h


def variables_of(headers: Mapping[str, HeaderValue]) -> dict[str, str]:
    v = headers.get("Variable")
    return dict(v) if isinstance(v, Mapping) else {}


__all__ = [
    "CALLBACK_EXTEN",
    "CONNECT_SEAT_EXTEN",
    "POOL_ANSWERED_EVENT",
    "POOL_EXTEN",
    "DialPlan",
    "callback",
    "customer_first",
    "dialable",
    "pooled",
    "reminder",
    "ring_seconds",
    "seat_endpoint",
    "seat_first",
    "variables_of",
]
