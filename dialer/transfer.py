"""Connecting a customer to a free specialist during an automatic call (callback key 2).

The callback dialplan (docs/asterisk.md) puts a customer who pressed 2 on hold for up to
`HOLD_SECONDS` (20 s). If a seat is free the dialer sends, on the customer's channel,

    Action: Setvar    Variable: SEAT          Value: 8001     (the endpoint, as customer first)
    Action: Setvar    Variable: SEAT_TIMEOUT  Value: 10
    Action: Redirect  Context: dialer  Exten: connect-seat  Priority: 1

and the channel leaves the hold for `connect-seat`, which records and dials the seat exactly as
a customer-first call does after the customer answered. If no seat is free, or any step fails,
nothing is sent (or the hold simply runs out): the customer hears "a specialist will call you"
and the result books a specialist for later (`dialer.results.record_result`).

`choose_seat` is pure; `connect_now` only talks to AMI through the send function it is given
(an `AmiSupervisor.send` / `AmiConnection.send`), so the engine keeps the seat bookkeeping.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from dialer.ami.connection import Reply
from dialer.ami.exceptions import AmiError
from dialer.ami.protocol import HeaderValue
from dialer.seats import Seat

log = logging.getLogger(__name__)

CONNECT_KEY = "2"  # the callback menu's "connect me to a specialist"
CONNECT_EXTEN = "connect-seat"
# connect-seat's MixMonitor appends to this file when it is set (a call moved to another seat).
RECORDING_VARIABLE = "RECORDING"
DEFAULT_SEAT_TIMEOUT = 10  # seconds the chosen seat has to answer (SEAT_TIMEOUT)


# The AMI send function: `AmiSupervisor.send` / `AmiConnection.send` (action, headers, *,
# action_id, timeout, check) -> Reply.
SendAction = Callable[..., Awaitable[Reply]]


class TransferFailed(Exception):
    """The customer was not handed to the seat. `sent` says whether the Redirect may have
    reached Asterisk (it timed out or the link dropped after it was written): then the seat
    may still ring for this call, and must stay held until the call ends."""

    def __init__(self, reason: str, *, sent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent


def wants_specialist(key: str | None) -> bool:
    """The callback menu's key asking to talk to a specialist now."""
    return key == CONNECT_KEY


def choose_seat(seats: Iterable[Seat], owner_id: int | None = None) -> Seat | None:
    """The seat to hand a customer to: the lead owner's if it is free, else the free seat
    that has been waiting longest (fair to the specialists; ties by specialist id). Free
    means ready with nothing offered (`Seat.available`). The caller passes only the seats
    the call's Asterisk can dial."""
    free = [s for s in seats if s.available]
    for seat in free:
        if owner_id is not None and seat.specialist_id == owner_id:
            return seat
    if not free:
        return None
    return min(free, key=lambda s: (s.since is None, s.since or 0, s.specialist_id))


def seat_endpoint(device: str) -> str:
    """The SEAT value `connect-seat` dials: `PJSIP/8001` -> `8001`, `Local/8001@seats` ->
    `8001` (the dialplan adds the technology, as for a customer-first Originate)."""
    resource = device.split("/", 1)[1] if "/" in device else device
    return resource.split("@", 1)[0]


async def connect_now(
    send: SendAction,
    channel: str,
    seat_device: str,
    *,
    context: str = "dialer",
    seat_timeout: int = DEFAULT_SEAT_TIMEOUT,
    action_timeout: float | None = None,
    attempt_id: str | None = None,
    recording: str | None = None,
) -> None:
    """Hand the customer on `channel` to `seat_device`: Setvar SEAT and SEAT_TIMEOUT on the
    channel, then Redirect it to `context`,`connect-seat`,1. Returns once Asterisk accepted
    the Redirect; the seat's answer and the bridge come as events (the CallTracker).

    `recording` (a call moved to another seat): the file the call records to so far, Setvar
    RECORDING, so that connect-seat's MixMonitor appends to it instead of starting a second
    file (docker/asterisk/extensions.conf).

    Raises `TransferFailed`: with `sent=False` when Asterisk refused a step or the link failed
    before the Redirect was written (the customer stays on hold, then hears that a specialist
    will call); with `sent=True` when the Redirect's fate is unknown."""
    what = attempt_id or channel
    variables: list[tuple[str, HeaderValue]] = [
        ("SEAT", seat_endpoint(seat_device)),
        ("SEAT_TIMEOUT", seat_timeout),
    ]
    if recording:
        variables.append((RECORDING_VARIABLE, recording))
    for variable, value in variables:
        try:
            reply = await send(
                "Setvar",
                {"Channel": channel, "Variable": variable, "Value": value},
                timeout=action_timeout,
            )
        except AmiError as exc:
            raise TransferFailed(f"Setvar {variable} on {channel} not confirmed: {exc}") from exc
        if not reply.ok:
            raise TransferFailed(
                f"Setvar {variable} on {channel} refused: {reply.get('Message') or 'error'}"
            )
    headers: dict[str, HeaderValue] = {
        "Channel": channel,
        "Context": context,
        "Exten": CONNECT_EXTEN,
        "Priority": 1,
    }
    try:
        reply = await send("Redirect", headers, timeout=action_timeout)
    except AmiError as exc:
        raise TransferFailed(f"Redirect of {channel}: fate unknown ({exc})", sent=True) from exc
    if not reply.ok:
        raise TransferFailed(f"Redirect of {channel} refused: {reply.get('Message') or 'error'}")
    log.info("attempt %s: customer %s redirected to seat %s", what, channel, seat_device)


__all__ = [
    "CONNECT_EXTEN",
    "CONNECT_KEY",
    "DEFAULT_SEAT_TIMEOUT",
    "SendAction",
    "TransferFailed",
    "choose_seat",
    "connect_now",
    "seat_endpoint",
    "wants_specialist",
]
