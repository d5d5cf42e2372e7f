"""The dialer engine: seats take leads from their own queues, automatic campaigns call on
their own, every call's result goes back to the CRM. `DialerEngine` is a thin facade over
units that each do one job and talk through the message bus (`dialer.messagebus`, events and
commands in `dialer.domain`); it starts and stops them (`await start()` / `await stop()`,
for an aiohttp cleanup_ctx), and it is what the services, the pages and the tests call.

The units (docs/dialer.md "Units and the bus", docs/architecture.md):

- `dialer.runtime.DialerRuntime`: what they share (seats, calls in flight, servers, the bus,
  the task owner, the write guard) and the seat state machine's one entry, `record`.
- `dialer.seat_dialer.SeatDialer`: a ready seat gets its next call (claims in
  `dialer.claims`, pre-claims during wrap-up in `dialer.preclaims`, preview offers).
- `dialer.seat_commands.SeatCommands`: sign in and out, ready, pause, preview confirm/skip.
- `dialer.campaign_runner.CampaignRunner`: automatic campaigns.
- `dialer.originator.Originator`: pacing, headers, the Originate (window checked at the
  moment of sending; a send of unknown fate is never re-sent), hang-up.
- `dialer.call_events.CallEvents`: AMI events to the call trackers, reconciliation after a
  (re)connect, expiry.
- `dialer.result_writer.ResultWriter`: results written in one transaction each batch
  (attempt, lead, phone, outbox, and `attempt.recording` for the recordings worker), then
  `AttemptSettled` and the in-memory `on_attempt_ended` hook (tests and tools).
- `dialer.restore.Restore`: seats and calls in flight taken back at start.
- `dialer.seat_store.SeatStore`, `dialer.handover.KeyHandover`, `dialer.campaigns`.

Each AMI server is owned by exactly one engine process (configure disjoint server lists).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.clock import Clock
from crm_sync.models import Lead, LeadStatus, Phone
from dialer.call_events import CallEvents
from dialer.campaign_runner import CampaignRunner
from dialer.campaigns import CallingWindows, CampaignInfo, CampaignRegistry
from dialer.domain import CampaignChanged, SeatChanged
from dialer.exceptions import IllegalSeatTransition
from dialer.handover import KeyHandover
from dialer.originate import DialPlan
from dialer.originator import Originator
from dialer.outcomes import UNKNOWN
from dialer.restore import Restore
from dialer.result_writer import ResultWriter
from dialer.runtime import DialerRuntime
from dialer.seat_commands import SeatCommands
from dialer.seat_dialer import SeatDialer
from dialer.seat_store import SeatStore
from dialer.seats import Seat, Transition
from dialer.state import (
    AmiLink,
    AmiServerSpec,
    AttemptEnded,
    AttemptEndedHook,
    DialerConfig,
    LinkFactory,
    LiveCall,
    PbxServer,
    supervisor_link,
)
from dialer.takeover import CallMover
from schedules.retry import RetryConfig
from schedules.timeline import TimelineRules
from schedules.windows import CallingHours, CallingPlan

log = logging.getLogger(__name__)


class DialerEngine:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        servers: Sequence[AmiServerSpec],
        *,
        plan: CallingPlan | None = None,
        retry: RetryConfig | None = None,
        config: DialerConfig | None = None,
        on_attempt_ended: AttemptEndedHook | None = None,
        link_factory: LinkFactory | None = None,
        timeline: TimelineRules | None = None,
    ) -> None:
        if not servers:
            raise ValueError("the dialer needs at least one AMI server")
        self.sessions = sessions
        self.clock = clock
        self.plan = plan or CallingPlan()
        self.retry = retry or RetryConfig()
        self.config = config or DialerConfig()
        self.timeline = timeline or TimelineRules()  # the reminder's T−30 (schedules.timeline)
        self.on_attempt_ended = on_attempt_ended
        self._link_factory = link_factory or supervisor_link
        self.windows = CallingWindows(self.plan, self.config)
        rt = self.rt = DialerRuntime(sessions, clock, servers, self.config, self.windows)
        self.bus, self.tasks, self.seats, self.stats = rt.bus, rt.tasks, rt.seats, rt.stats
        self.registry = CampaignRegistry(sessions, self.bus, self.config.reminder_message)
        self.seat_store = SeatStore(
            sessions,
            clock,
            self.bus,
            self.seats.get,
            rt.write_guard,
            interval=self.config.seat_store_seconds,
        )
        # Called (synchronously, on the loop) after every seat change, a preview offer or
        # skip included (each is a `SeatChanged` on the bus): the seat page's live updates
        # subscribe here. Subscribed before the seat dialer, which may start the next call.
        self.seat_listeners: list[Callable[[Seat], None]] = []
        self.bus.subscribe(SeatChanged, self._notify)
        self.result_writer = ResultWriter(
            rt, self.retry, self.windows.hours_for, lambda: self.on_attempt_ended
        )
        self.call_events = CallEvents(rt, self.result_writer.put)
        self.originator = Originator(rt)
        self.seat_dialer = SeatDialer(rt, self.registry)
        self.seat_commands = SeatCommands(rt, self.seat_dialer, self.seat_store)
        self.campaign_runner = CampaignRunner(rt, self.registry, self.plan, self.timeline)
        pool = self.campaign_runner.pool
        self.seat_commands.hold_pause = lambda seat: not pool.may_pause(seat)
        self.restorer = Restore(rt)
        self.mover = CallMover(rt, self.seat_dialer)
        self.handover = KeyHandover(
            clock,
            self.bus,
            live=rt.live,
            seats=rt.seats,
            servers=rt.servers,
            server_for_seat=rt.server_for_seat,
            record=rt.record,
            spawn=rt.spawn,
            running=lambda: rt.running,
            action_timeout=self.config.action_timeout,
        )

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.rt.running

    async def start(self) -> None:
        rt = self.rt
        if rt.running:
            raise RuntimeError("dialer engine already started")
        rt.running = True
        async with self.sessions() as s:
            rt.pg = s.get_bind().dialect.name == "postgresql"
        self.seat_dialer.claims.reset()
        self.campaign_runner.reset()
        await self.ensure_default_campaigns()
        await self._load_campaigns()
        await self.restorer.run()
        for name, server in rt.servers.items():
            server.link = self._link_factory(
                server.spec,
                self.clock,
                functools.partial(self.call_events.on_event, name),
                functools.partial(self.call_events.on_resync, name),
            )
            server.link.start()
        self.tasks.worker(self.seat_dialer.run(), "dialer-dispatch")
        for i in range(self.config.result_writers):
            self.tasks.worker(self.result_writer.run(), f"dialer-results-{i}")
        self.seat_store.reopen()
        self.tasks.worker(self.seat_store.run(), "dialer-seats")
        self.tasks.worker(self._housekeeping(), "dialer-housekeeping")
        for c in self.registry.all():
            self.bus.publish(CampaignChanged(c))
        self.seat_dialer.wake_available(mark=True)
        log.info(
            "dialer engine started: servers %s, %d seats restored, %d calls in flight",
            ", ".join(rt.servers),
            len(self.seats),
            len(rt.live),
        )

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking work, let the claims, sends and result writes already under way finish
        (up to `grace` seconds of the clock), then cancel the rest and drop the AMI links.
        Calls in flight stay in the database and are reconciled by the next start (never
        re-sent). `grace=0` is a kill: everything is cancelled at once."""
        if not self.rt.running:
            return
        self.rt.running = False
        tasks = self.tasks
        for t in [*tasks.named("dialer-dispatch", "dialer-housekeeping"), *tasks.timers.values()]:
            t.cancel()
        self.campaign_runner.wake_all()  # the loops see the engine stopped and return
        busy = [*tasks.campaigns.values(), *tasks.jobs]
        if grace > 0:
            await tasks.wait_quiet(busy, grace)
            await self.seat_dialer.pre.release_all("dialer stopped before dialling")
            # Writers finish what is queued and return (never cancelled inside a
            # transaction, which could leave a connection holding SQLite's write lock).
            self.result_writer.close()
            self.seat_store.close()
            await tasks.wait_quiet(tasks.named("dialer-results", "dialer-seats"), grace)
        await tasks.cancel_all()
        with contextlib.suppress(Exception):
            await self.seat_store.flush()
        for server in self.rt.servers.values():
            if server.link is not None:
                with contextlib.suppress(Exception):
                    await server.link.stop()
                server.link = None
        log.info(
            "dialer engine stopped (%d calls left in flight for reconciliation)", len(self.rt.live)
        )

    async def wait_connected(self) -> None:
        for server in self.rt.servers.values():
            wait = getattr(server.link, "wait_connected", None)
            if wait is not None:
                await wait()

    async def _housekeeping(self) -> None:
        while True:
            await self.clock.sleep(self.config.housekeeping_seconds)
            self.call_events.expire()
            try:
                await self._load_campaigns()
            except Exception:
                log.exception("could not reload campaigns")

    def _notify(self, event: SeatChanged) -> None:
        seat = self.seats.get(event.specialist_id)
        if seat is None:
            return
        for listener in self.seat_listeners:
            try:
                listener(seat)
            except Exception:
                log.exception("seat listener failed for specialist %s", seat.specialist_id)

    # -- campaigns and windows -------------------------------------------------------------

    async def ensure_default_campaigns(self) -> None:
        await self.registry.ensure_defaults()

    async def _load_campaigns(self) -> None:
        await self.registry.load()

    def campaigns(self) -> list[CampaignInfo]:
        return self.registry.all()

    async def set_campaign(self, name_or_id: str | int, **changes: Any) -> CampaignInfo:
        return await self.registry.set(name_or_id, **changes)

    def hours_for(self, kind: str) -> CallingHours:
        return self.windows.hours_for(kind)

    def day_start(self, now: datetime) -> datetime:
        return self.windows.day_start(now)

    def is_open(self, kind: str, tz: str, now: datetime) -> bool:
        return self.windows.is_open(kind, tz, now)

    def ring_ms(self, kind: str, tz: str, now: datetime, plan: DialPlan) -> int | None:
        return self.windows.ring_ms(kind, tz, now, plan)

    # -- seats (SeatCommands) --------------------------------------------------------------

    def signed_in_seats(self) -> list[Seat]:
        return self.seat_commands.signed_in_seats()

    def seat_of(self, specialist_id: int) -> Seat:
        return self.seat_commands.seat_of(specialist_id)

    async def sign_in(
        self, specialist_id: int, seat: str | None = None, *, ready: bool = False
    ) -> Seat:
        return await self.seat_commands.sign_in(specialist_id, seat, ready=ready)

    async def sign_out(self, specialist_id: int) -> Seat:
        return await self.seat_commands.sign_out(specialist_id)

    async def set_ready(self, specialist_id: int) -> Seat:
        return await self.seat_commands.set_ready(specialist_id)

    async def pause(self, specialist_id: int, reason: str) -> Seat:
        return await self.seat_commands.pause(specialist_id, reason)

    async def confirm_preview(self, specialist_id: int) -> str:
        return await self.seat_commands.confirm_preview(specialist_id)

    async def skip_preview(self, specialist_id: int, reason: str = "skipped in preview") -> None:
        await self.seat_commands.skip_preview(specialist_id, reason)

    def pbx(self, name: str) -> PbxServer | None:
        """One AMI server's link, call tracker and trunks (the supervisors' actions, the board)."""
        return self.rt.servers.get(name)

    def after_dispose(self, specialist_id: int, lead_id: int | None = None) -> None:
        """A specialist saved a result: their wrap-up ends, or is skipped (SeatCommands)."""
        self.seat_commands.after_dispose(specialist_id, lead_id)

    def wake(self, specialist_id: int) -> None:
        """Ask the dispatcher to look for a call for this seat."""
        self.seat_dialer.wake(specialist_id)

    async def hang_up(self, attempt_id: str) -> bool:
        return await self.originator.hang_up(attempt_id)

    async def move_call(self, attempt_id: str, seat_device: str) -> str:
        """A supervisor moves the call to a free seat (`dialer.takeover`): the customer's
        channel moved."""
        return await self.mover.move(attempt_id, seat_device)

    # -- views for the services ------------------------------------------------------------

    @property
    def latencies(self) -> deque[tuple[int, float, float, float]]:
        """Seat ready -> Originate sent and -> its reply, for benchmarks (`Originator`)."""
        return self.originator.latencies

    def health(self) -> list[dict[str, Any]]:
        """Each AMI link: connected or not, and what its manager.conf user lacks (readcheck)."""
        return [
            {
                "server": name,
                "connected": server.link is not None and server.link.connected,
                "warnings": server.read_check.warnings(),
            }
            for name, server in self.rt.servers.items()
        ]

    def live_calls(self) -> list[dict[str, Any]]:
        out = []
        for live in self.rt.live.values():
            state = self.rt.servers[live.server].tracker.state_of(live.attempt_id)
            out.append(
                {
                    "attempt_id": live.attempt_id,
                    "lead_id": live.lead_id,
                    "specialist_id": live.specialist_id,
                    "seat": live.seat,
                    "number": live.number,
                    "mode": live.mode,
                    "campaign_kind": live.kind,
                    "ami_server": live.server,
                    "state": state.value if state is not None else "reserved",
                }
            )
        return out

    def live_attempt(self, attempt_id: str) -> LiveCall | None:
        return self.rt.live.get(attempt_id)

    async def idle(self) -> bool:
        """True when nothing is in flight and no result waits to be written (for tests)."""
        return not self.rt.live and self.result_writer.queue.empty()

    # -- for tests and benchmarks that look inside -----------------------------------------

    @property
    def _servers(self) -> dict[str, PbxServer]:
        return self.rt.servers

    @property
    def _live(self) -> dict[str, LiveCall]:
        return self.rt.live

    @property
    def _results(self) -> Any:
        return self.result_writer.queue

    def _record(self, seat: Seat, t: Transition | None) -> None:
        self.rt.record(seat, t)


async def leads_without_result(session: AsyncSession) -> int:
    """Open leads that carry no contact result yet (for simulations and reports)."""
    return int(
        await session.scalar(
            select(func.count())
            .select_from(Lead)
            .where(Lead.contact_result.is_(None), Lead.status != LeadStatus.CLOSED.value)
        )
        or 0
    )


__all__ = [
    "UNKNOWN",
    "AmiLink",
    "AmiServerSpec",
    "AttemptEnded",
    "AttemptEndedHook",
    "CampaignInfo",
    "DialerConfig",
    "DialerEngine",
    "IllegalSeatTransition",
    "LinkFactory",
    "Phone",
    "leads_without_result",
    "supervisor_link",
]
