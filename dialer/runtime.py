"""What the dialer's units share: the seats, the calls in flight, the AMI servers, the bus,
the task owner and the database's write guard.

This is plain state plus two rules that every unit must follow the same way: a seat changes
only through the seat state machine, and every change is logged and published as
`SeatChanged` (`record`); a write transaction on SQLite waits its turn by urgency
(`write_guard`). What one unit asks of another goes over the bus (`finish`, `send`,
`settle` are its commands, `dialer.domain`)."""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.clock import Clock
from dialer import locks
from dialer.calls import CallResult
from dialer.campaigns import CallingWindows, CampaignInfo
from dialer.decisions import Finished
from dialer.domain import FinishAttempt, SeatChanged, SendCall, SettleResults
from dialer.messagebus import MessageBus
from dialer.results import Effects
from dialer.seats import Seat, SeatState, Transition
from dialer.state import AmiServerSpec, DialerConfig, LiveCall, PbxServer
from dialer.tasks import TaskOwner

log = logging.getLogger(__name__)


class DialerRuntime:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        servers: Sequence[AmiServerSpec],
        config: DialerConfig,
        windows: CallingWindows,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.config = config
        self.windows = windows
        self.bus = MessageBus()
        self.tasks = TaskOwner(clock)
        self.servers = {s.name: PbxServer(s) for s in servers}
        self.server_order = list(self.servers)
        self._rr = 0
        self.seats: dict[int, Seat] = {}
        self.live: dict[str, LiveCall] = {}
        self.stats: Counter[str] = Counter()
        # Seat ready (clock.monotonic), kept for the latency of its next Originate.
        self.ready_at: dict[int, float] = {}
        self.running = False
        self.pg = False
        self._write_lock = locks.PriorityLock()  # SQLite: one writer, claims first

    # -- servers -------------------------------------------------------------------------------

    def server_for_seat(self, device: str) -> PbxServer:
        name = self.config.seat_servers.get(device) or self.server_order[0]
        return self.servers[name]

    def next_server(self) -> PbxServer | None:
        """The next usable server, round robin (automatic calls)."""
        n = len(self.server_order)
        for i in range(n):
            server = self.servers[self.server_order[(self._rr + i) % n]]
            if server.usable:
                self._rr = (self._rr + i + 1) % n
                return server
        return None

    # -- seats ---------------------------------------------------------------------------------

    def record(self, seat: Seat, t: Transition | None) -> None:
        """The one way a seat's change becomes known: logged, then `SeatChanged` on the bus
        (the seat store persists it, the seat page hears it, the seat dialer wakes a ready
        seat)."""
        if t is None:
            return
        fmt = "seat %s (specialist %s): %s -> %s on %s"
        args: list[object] = [
            seat.device,
            seat.specialist_id,
            t.from_state.value,
            t.to_state.value,
            t.trigger,
        ]
        if t.reason:
            fmt += " (%s)"
            args.append(t.reason)
        if t.attempt_id:
            fmt += " [%s]"
            args.append(t.attempt_id)
        log.info(fmt, *args)
        self.bus.publish(SeatChanged(seat.specialist_id, t))

    @staticmethod
    def will_dial(seat: Seat) -> bool:
        """The seat's next call is wanted: ready with nothing offered, or wrapping up with
        no pause asked for."""
        return seat.available or (seat.state is SeatState.WRAP_UP and seat.pending_pause is None)

    def mark_ready(self, sid: int) -> None:
        self.ready_at[sid] = self.clock.monotonic()

    # -- tasks and the database ----------------------------------------------------------------

    def spawn(self, coro: Awaitable[Any]) -> None:
        self.tasks.job(coro)

    @contextlib.asynccontextmanager
    async def write_guard(self, rank: int) -> AsyncIterator[None]:
        """PostgreSQL: row locks (SKIP LOCKED) do the work. SQLite (one instance): one
        writer at a time in this process, instead of SQLite's busy-wait on its file lock,
        the most urgent first (`dialer.locks`: a ready seat's claim before a batch of
        results)."""
        if self.pg:
            yield
        else:
            async with self._write_lock.hold(rank):
                yield

    # -- the commands other units answer -------------------------------------------------------

    async def finish(self, live: LiveCall, fin: Finished) -> Effects | None:
        """Write the attempt's result now (the result writer)."""
        result: Effects | None = await self.bus.handle(FinishAttempt(live, fin))
        return result

    async def send(self, live: LiveCall, camp: CampaignInfo | None) -> None:
        """Pace, check and send the attempt's Originate (the originator)."""
        await self.bus.handle(SendCall(live, camp))

    def settle(self, server: str, results: Sequence[CallResult]) -> None:
        """Finished calls of a server's tracker, to be written (call events)."""
        self.bus.handle(SettleResults(server, results))


__all__ = ["DialerRuntime"]
