"""A supervisor moves a live call to another seat (issue 15, "take over a call").

The customer's channel gets what the key-2 hand-over sends (`dialer.transfer.connect_now`:
Setvar SEAT, SEAT_TIMEOUT, Redirect to `connect-seat`); Asterisk takes it out of the bridge,
the old seat's leg ends and `connect-seat` dials the new seat.

The seats go through the seat state machine: the new seat rings (it must be signed in on this
process, on the call's Asterisk, and free: ready with nothing offered), then answers when the
customer is bridged to it (`CallBridged`, published again for the move); the old seat's call
is over at the Redirect (wrap-up: it talked). The attempt stays the same row and stays the
attempt of the specialist it was dialled for (`LiveCall.specialist_id`): its result lands on
it when the customer hangs up, and the lead's contact result stays the lead owner's to set
(`dialer.results.dispose`): a move changes neither the attempt nor the lead's owner.
"""

from __future__ import annotations

import logging

from dialer import supervise, transfer
from dialer.exceptions import SupervisorActionFailed
from dialer.runtime import DialerRuntime
from dialer.seat_dialer import SeatDialer
from dialer.seats import Seat, SeatState

log = logging.getLogger(__name__)


class CallMover:
    def __init__(self, rt: DialerRuntime, seat_dialer: SeatDialer) -> None:
        self.rt = rt
        self.seat_dialer = seat_dialer

    def _target(self, device: str) -> Seat:
        for seat in self.rt.seats.values():
            if seat.device == device and seat.state is not SeatState.OFFLINE:
                return seat
        raise SupervisorActionFailed(f"nobody is signed in on seat {device}")

    async def move(self, attempt_id: str, device: str) -> str:
        """Move the call to the seat `device`; returns the customer's channel once Asterisk
        accepted the Redirect. Raises `SupervisorActionFailed` with the reason."""
        rt = self.rt
        live = rt.live.get(attempt_id)
        server = rt.servers.get(live.server) if live is not None else None
        if live is None or server is None:
            raise SupervisorActionFailed("the call has ended")
        target = self._target(device)
        if target.specialist_id in (live.specialist_id, live.moved_to) and live.seat == device:
            raise SupervisorActionFailed(f"the call is on seat {device} already")
        if not target.available:
            raise SupervisorActionFailed(
                f"seat {device} is not free ({target.state.value}): it must be ready"
            )
        if rt.server_for_seat(device) is not server:
            raise SupervisorActionFailed(f"seat {device} is on another Asterisk than the call")
        if not live.answered:
            raise SupervisorActionFailed("the customer has not answered yet: nothing to move")
        channel = supervise.customer_channel(server.tracker.live_channels(attempt_id), live.seat)
        if channel is None:
            raise SupervisorActionFailed("the customer is not on the line")
        link = server.link
        if link is None or not link.connected:
            raise SupervisorActionFailed("the call's Asterisk is not connected: try again shortly")
        old = rt.seats.get(live.moved_to or live.specialist_id or -1)
        before = (live.moved_to, live.seat)
        rt.record(target, target.dial(rt.clock.now(), attempt_id))
        live.moved_to, live.seat = target.specialist_id, device
        server.tracker.expect_bridge(attempt_id)
        try:
            await transfer.connect_now(
                link.send,
                channel,
                device,
                context=server.spec.plan.context,
                action_timeout=rt.config.action_timeout,
                attempt_id=attempt_id,
                # One call, one recording: the new seat's part goes on in the same file.
                recording=live.recording,
            )
        except transfer.TransferFailed as exc:
            if not exc.sent:  # nothing moved: the call stays where it was
                live.moved_to, live.seat = before
                if target.attempt_id == attempt_id and target.state is SeatState.RINGING:
                    rt.record(target, target.call_end(rt.clock.now(), 0.0))
            raise SupervisorActionFailed(f"the call was not moved: {exc.reason}") from exc
        if (
            old is not None
            and old.attempt_id == attempt_id
            and old.state in (SeatState.RINGING, SeatState.ON_CALL)
        ):
            self.seat_dialer.end_call(old.specialist_id, talked=True)
        log.info("attempt %s: moved from %s to %s (%s)", attempt_id, before[1], device, channel)
        return channel


__all__ = ["CallMover"]
