"""A supervisor on a live call: listen, whisper, barge (ChanSpy), hang up, move to another seat.

Listening in is a call of its own (pjsip_chanspy_listen/_whisper/_barge in the AMI traces):

    Action: Originate   ActionID: spy-<audit id>
    Channel: PJSIP/8003                       (the supervisor's own seat)
    Application: ChanSpy   Data: PJSIP/8001-00000003,qE
    CallerID: ...   Timeout: 30000   Async: true

ChanSpy's options (Asterisk 22, app_chanspy): `q` no beep or name announcement, so the
specialist and the customer do not hear that someone joined; `E` the spy ends when the spied
channel hangs up; `w` whisper: the supervisor talks to the spied channel only; `B` barge: the
supervisor talks to both parties. Listen is `qE` (ChanSpy only listens unless `w`/`B`).
The spied channel is the specialist's own (the seat's leg): whisper then reaches the
specialist and not the customer. An automatic call has no seat: its customer leg is spied.

Taking a call over: hang up is the engine's `hang_up` (its outcome becomes "by action");
moving it to another seat is `dialer.takeover` (what the key-2 hand-over sends: Setvar SEAT,
SEAT_TIMEOUT, Redirect to `connect-seat`, as in pjsip_key2_redirect_to_seat, on the
customer's channel, and the seats' states).

Pure parts (`spy_options`, `spied_channel`, `customer_channel`, `spy_originate`) take plain
data; `listen_in` only uses the link it is given.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dialer.ami.exceptions import AmiError
from dialer.ami.protocol import HeaderValue
from dialer.exceptions import SupervisorActionFailed
from dialer.originate import DialPlan
from dialer.state import AmiLink

log = logging.getLogger(__name__)

SPY_OPTIONS: Mapping[str, str] = {"listen": "qE", "whisper": "qwE", "barge": "qBE"}
SPY_MODES = tuple(SPY_OPTIONS)
SPY_RING_MS = 30_000  # the supervisor's phone rings this long before the spy gives up


@dataclass(frozen=True, slots=True)
class SpyRequest:
    mode: str  # listen, whisper, barge
    supervisor_seat: str  # the supervisor's device, e.g. PJSIP/8003
    channel: str  # the spied channel, e.g. PJSIP/8001-00000003
    action_id: str  # spy-<audit id>


def spy_options(mode: str) -> str:
    try:
        return SPY_OPTIONS[mode]
    except KeyError:
        raise ValueError(
            f"unknown listening mode {mode!r}: one of {', '.join(SPY_MODES)}"
        ) from None


def _is_seat_channel(channel: str, seat: str) -> bool:
    # PJSIP/8001-00000003 for seat PJSIP/8001; Local/8001@seats-00000001;1 for Local/8001@seats
    return channel.startswith(seat + "-")


def spied_channel(channels: Sequence[str], seat: str | None) -> str | None:
    """The channel to spy on: the seat's leg when the call has a seat, else the first live
    channel (the originated customer leg of an automatic call)."""
    if seat:
        for c in channels:
            if _is_seat_channel(c, seat):
                return c
    return channels[0] if channels and not seat else None


def customer_channel(channels: Sequence[str], seat: str | None) -> str | None:
    """The customer's leg: the live channel that is not the seat's."""
    for c in channels:
        if not seat or not _is_seat_channel(c, seat):
            return c
    return None


def spy_originate(req: SpyRequest, plan: DialPlan) -> dict[str, HeaderValue]:
    """The Originate that rings the supervisor's seat and runs ChanSpy on the call."""
    return {
        "Channel": req.supervisor_seat,
        "Application": "ChanSpy",
        "Data": f"{req.channel},{spy_options(req.mode)}",
        "CallerID": plan.caller_id,
        "Timeout": SPY_RING_MS,
        "Async": "true",
    }


def _link_up(link: AmiLink | None) -> AmiLink:
    if link is None or not link.connected:
        raise SupervisorActionFailed("the call's Asterisk is not connected: try again shortly")
    return link


async def listen_in(
    link: AmiLink | None, req: SpyRequest, plan: DialPlan, timeout: float | None = None
) -> None:
    """Send the spy Originate; returns once Asterisk queued it (the supervisor's phone then
    rings; ChanSpyStart follows when it is answered)."""
    headers = spy_originate(req, plan)
    try:
        reply = await _link_up(link).send(
            "Originate", headers, action_id=req.action_id, timeout=timeout
        )
    except AmiError as exc:
        raise SupervisorActionFailed(f"the listening call was not confirmed: {exc}") from exc
    if not reply.ok:
        raise SupervisorActionFailed(
            f"Asterisk refused the listening call: {reply.get('Message') or 'error'}"
        )
    log.info(
        "%s on %s from seat %s (%s)", req.mode, req.channel, req.supervisor_seat, req.action_id
    )


__all__ = [
    "SPY_MODES",
    "SPY_OPTIONS",
    "SpyRequest",
    "SupervisorActionFailed",
    "customer_channel",
    "listen_in",
    "spied_channel",
    "spy_options",
    "spy_originate",
]
