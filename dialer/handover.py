"""The key-2 hand-over unit: a customer on an automatic call who pressed 2 is connected to a
free seat of the same Asterisk, the seat of the specialist who owns them first
(`dialer.transfer.choose_seat`), else the one ready longest.

It listens to `CustomerPressedKey` on the bus (the call tracker publishes it); it moves the
chosen seat through the seat state machine (`record`), and sends the Setvar + Redirect on the
server's link (`dialer.transfer.connect_now`). No free seat: nothing is sent, and the result
writer books a specialist for later."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from common.clock import Clock
from dialer import transfer
from dialer.domain import CustomerPressedKey
from dialer.messagebus import MessageBus
from dialer.models import DialMode, SeatState
from dialer.seats import Seat, Transition
from dialer.state import LiveCall, PbxServer

log = logging.getLogger(__name__)


class KeyHandover:
    def __init__(
        self,
        clock: Clock,
        bus: MessageBus,
        *,
        live: Mapping[str, LiveCall],
        seats: Mapping[int, Seat],
        servers: Mapping[str, PbxServer],
        server_for_seat: Callable[[str], PbxServer],
        record: Callable[[Seat, Transition | None], None],
        spawn: Callable[[Awaitable[Any]], None],
        running: Callable[[], bool],
        action_timeout: float,
    ) -> None:
        self.clock = clock
        self._live = live
        self._seats = seats
        self._servers = servers
        self._server_for_seat = server_for_seat
        self._record = record
        self._spawn = spawn
        self._running = running
        self._action_timeout = action_timeout
        bus.subscribe(CustomerPressedKey, self.on_key)

    def on_key(self, press: CustomerPressedKey) -> None:
        live = self._live.get(press.attempt_id)
        if (
            live is None
            or live.mode != DialMode.AUTOMATIC.value
            or not transfer.wants_specialist(press.key)
            or live.specialist_id is not None
            or not self._running()
        ):
            return
        server = self._servers[press.server]
        seat = transfer.choose_seat(
            (s for s in self._seats.values() if self._server_for_seat(s.device) is server),
            owner_id=live.owner_id,
        )
        if seat is None:
            log.info("attempt %s: key 2 but no free seat: a specialist is booked", live.attempt_id)
            return
        self._record(seat, seat.dial(self.clock.now(), live.attempt_id))
        live.specialist_id, live.seat = seat.specialist_id, seat.device
        self._spawn(self._connect(server, live, seat, press.channel))

    async def _connect(self, server: PbxServer, live: LiveCall, seat: Seat, channel: str) -> None:
        await hand_over(
            server,
            live,
            seat,
            channel,
            clock=self.clock,
            record=self._record,
            action_timeout=self._action_timeout,
        )


async def hand_over(
    server: PbxServer,
    live: LiveCall,
    seat: Seat,
    channel: str,
    *,
    clock: Clock,
    record: Callable[[Seat, Transition | None], None],
    action_timeout: float,
    seat_timeout: int = transfer.DEFAULT_SEAT_TIMEOUT,
) -> None:
    """Setvar + Redirect the customer on `channel` to `seat`, which already rings for
    `live` (key 2, and a pooled call answered: dialer.pool_dialer). Refused before the
    Redirect: the seat is given back (the customer's hold runs out); a Redirect of unknown
    fate keeps the seat held until the call ends."""
    link = server.link
    try:
        if link is None or not link.connected:
            raise transfer.TransferFailed("AMI link down")
        await transfer.connect_now(
            link.send,
            channel,
            seat.device,
            context=server.spec.plan.context,
            seat_timeout=seat_timeout,
            action_timeout=action_timeout,
            attempt_id=live.attempt_id,
        )
    except transfer.TransferFailed as exc:
        log.warning("attempt %s: not handed to %s: %s", live.attempt_id, seat.device, exc)
        if exc.sent:
            return  # the seat may ring: it stays held until the call ends
        if seat.attempt_id == live.attempt_id and seat.state is SeatState.RINGING:
            live.specialist_id = live.seat = None
            record(seat, seat.call_end(clock.now(), 0.0))


__all__ = ["KeyHandover", "hand_over"]
