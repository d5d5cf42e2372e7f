"""The dialer engine: seats take leads from their own queues, automatic campaigns call on
their own, every call's result goes back to the CRM. One object, `DialerEngine`, owns every
background task (`await start()` / `await stop()`, for an aiohttp cleanup_ctx).

Flow of one call (docs/dialer.md):

1. A seat becomes ready (sign-in, end of wrap-up, a call that ended unanswered) or a timer
   fires: the dispatcher runs `_dial_for_seat`.
2. Claim: one transaction picks the next lead of the specialist's own queue whose calling
   window is open (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: a process lock), inserts
   the attempt row and commits. **Write before you dial.**
3. Send: the calling window is checked again with the clock *at the moment of sending*
   (whatever queued the call); then `Originate` with the attempt id as ActionID, ChannelId
   and ATTEMPT_ID. A send that fails because the link dropped has an unknown fate: it is
   never re-sent; the reconciliation settles it.
4. Events go to the server's `CallTracker`; a `BridgeEnter` of the call puts the seat on a
   call; a finished `CallResult` is written by a result writer in one transaction (attempt,
   lead, phone, outbox) by `dialer.results.record_result`, then the seat goes to wrap-up or
   back to ready, and the optional `on_attempt_ended` hook is called (recordings).
5. After every (re)connect the supervisor runs CoreShowChannels and calls `_on_resync`:
   attempts with live channels are re-attached; the others are finished as *unknown* and
   not redialled before the next window. At start the engine loads its servers' in-flight
   attempts from the database first, so a restarted process reconciles what it left behind.

Each AMI server is owned by exactly one engine process (configure disjoint server lists).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.clock import Clock
from crm_sync.models import Customer, Lead, LeadStatus, Phone, Policy, Specialist
from dialer import locks, originate, queues, shutdown
from dialer.ami import events as ev
from dialer.ami.exceptions import AmiError
from dialer.ami.protocol import HeaderValue
from dialer.calls import CallResult, KeyPress
from dialer.campaigns import CallingWindows, CampaignInfo, CampaignRegistry, campaign_for
from dialer.domain import (
    CallBridged,
    CallEnded,
    CallHungUp,
    CampaignChanged,
    CustomerPressedKey,
    OriginateSent,
    PbxShuttingDown,
    RecordingNamed,
    SeatChanged,
)
from dialer.exceptions import (
    IllegalSeatTransition,
    NoPreview,
    NotSignedIn,
    NotYourSeat,
    SeatTaken,
)
from dialer.handover import KeyHandover
from dialer.messagebus import MessageBus
from dialer.models import (
    AttemptState,
    CallAttempt,
    CampaignKind,
    DialMode,
    SeatSession,
    SeatState,
)
from dialer.originate import DialPlan
from dialer.outcomes import NOT_SENT, SKIPPED, UNKNOWN
from dialer.pacing import campaign_capacity
from dialer.results import Effects, Finished, record_result
from dialer.seat_store import SeatStore
from dialer.seats import Seat, Transition
from dialer.state import (
    TRACKER_MODE,
    AmiLink,
    AmiServerSpec,
    AttemptEnded,
    AttemptEndedHook,
    DialerConfig,
    LinkFactory,
    LiveCall,
    PbxServer,
    finished_from,
    supervisor_link,
)
from dialer.tasks import TaskOwner
from schedules.retry import RetryConfig
from schedules.timeline import TimelineRules
from schedules.windows import DEFAULT_TZ, CallingHours, CallingPlan

log = logging.getLogger(__name__)

_ATTEMPTS: Table = CallAttempt.__table__  # type: ignore[assignment]
_SEAT_SESSIONS: Table = SeatSession.__table__  # type: ignore[assignment]


_Live = LiveCall
_Server = PbxServer


# -- the engine ------------------------------------------------------------------------------


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
        self._servers = {s.name: _Server(s) for s in servers}
        self._server_order = list(self._servers)
        self._rr = 0
        self.seats: dict[int, Seat] = {}
        self._live: dict[str, _Live] = {}
        self._campaign_active: Counter[int] = Counter()
        self._campaign_waiting: Counter[int] = Counter()  # claimed, not yet past the trunk
        self._campaign_wake: dict[int, asyncio.Event] = {}
        self._wake_q: asyncio.Queue[int] = asyncio.Queue()
        self._queued: set[int] = set()
        self._results: asyncio.Queue[tuple[_Live, Finished] | None] = asyncio.Queue()
        self._write_lock = locks.PriorityLock()  # SQLite: one writer, claims first
        self.bus = MessageBus()
        self.registry = CampaignRegistry(sessions, self.bus, self.config.reminder_message)
        self.windows = CallingWindows(self.plan, self.config)
        self.bus.subscribe(CampaignChanged, self._on_campaign_changed)
        self.seat_store = SeatStore(
            sessions, clock, self.bus, self.seats.get, lambda rank: self._write_guard(rank)
        )
        # The trackers publish the keys they hear; the key-2 hand-over listens.
        for name, srv in self._servers.items():
            srv.tracker.on_key = functools.partial(self._publish_key, name)
            srv.tracker.publish, srv.tracker.server = self.bus.publish, name
        self.bus.subscribe(RecordingNamed, self._on_recording_named)
        self.bus.subscribe(CallBridged, self._on_bridged)
        self.bus.subscribe(PbxShuttingDown, self._on_pbx_shutdown)
        self.handover = KeyHandover(
            clock,
            self.bus,
            live=self._live,
            seats=self.seats,
            servers=self._servers,
            server_for_seat=self._server_for_seat,
            record=self._record,
            spawn=self._spawn,
            running=lambda: self._running,
            action_timeout=self.config.action_timeout,
        )
        self._claim_slots = asyncio.Semaphore(self.config.claim_parallelism)
        self.tasks = TaskOwner(clock)
        self._ready_at: dict[int, float] = {}
        # Next leads claimed during wrap-up (seat -> attempt), claims under way, and seats
        # whose pre-claimed lead is being dialled.
        self._preclaims: dict[int, _Live] = {}
        self._preclaiming: dict[int, asyncio.Task[None]] = {}
        self._preclaim_slots = asyncio.Semaphore(self.config.claim_parallelism)
        self._dialling: set[int] = set()
        self._pg = False
        # Rebuilt at start for the database.
        self._seat_queue = queues.SeatQueue(
            lock=False, daily_cap=self.config.daily_calls_per_number
        )
        self._running = False
        self._writing = 0
        self._closing = False
        self.stats: Counter[str] = Counter()
        # Seat ready -> Originate handed to the AMI link, and -> "queued" by the PBX, for
        # benchmarks: (specialist id, ready at (clock.monotonic), seconds to the send,
        # seconds to the reply).
        self.latencies: deque[tuple[int, float, float, float]] = deque(maxlen=100_000)
        # Called (synchronously, on the loop) after every seat change, a preview offer or
        # skip included (each is a `SeatChanged` on the bus): the seat page's live updates
        # subscribe here.
        self.seat_listeners: list[Callable[[Seat], None]] = []
        self.bus.subscribe(SeatChanged, self._notify)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        if self._running:
            raise RuntimeError("dialer engine already started")
        self._running = True
        self._closing = False
        async with self.sessions() as s:
            bind = s.get_bind()
            self._pg = bind.dialect.name == "postgresql"
        self._seat_queue = queues.SeatQueue(
            lock=self._pg, daily_cap=self.config.daily_calls_per_number
        )
        await self.ensure_default_campaigns()
        await self._load_campaigns()
        await self._restore()
        for name, server in self._servers.items():
            server.link = self._link_factory(
                server.spec,
                self.clock,
                functools.partial(self._on_event, name),
                functools.partial(self._on_resync, name),
            )
            server.link.start()
        self.tasks.worker(self._dispatcher(), "dialer-dispatch")
        for i in range(self.config.result_writers):
            self.tasks.worker(self._result_writer(), f"dialer-results-{i}")
        self.seat_store.reopen()
        self.tasks.worker(self.seat_store.run(), "dialer-seats")
        self.tasks.worker(self._housekeeping(), "dialer-housekeeping")
        for c in self.registry.all():
            self._on_campaign_changed(CampaignChanged(c))
        for sid, seat in self.seats.items():
            if seat.available:
                self._mark_ready(sid)
                self.wake(sid)
        log.info(
            "dialer engine started: servers %s, %d seats restored, %d calls in flight",
            ", ".join(self._servers),
            len(self.seats),
            len(self._live),
        )

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking work, let the claims, sends and result writes already under way finish
        (up to `grace` seconds of the clock), then cancel the rest and drop the AMI links.
        Calls in flight stay in the database and are reconciled by the next start (never
        re-sent). `grace=0` is a kill: everything is cancelled at once."""
        if not self._running:
            return
        self._running = False
        for t in [
            *self.tasks.named("dialer-dispatch", "dialer-housekeeping"),
            *self.tasks.timers.values(),
        ]:
            t.cancel()
        for ev_ in self._campaign_wake.values():
            ev_.set()  # campaign loops see `_running` is false and return
        busy = [*self.tasks.campaigns.values(), *self.tasks.jobs]
        if grace > 0:
            await self.tasks.wait_quiet(busy, grace)
            for sid in list(self._preclaims):  # never dialled: free for the next start
                with contextlib.suppress(Exception):
                    await self._release(self._preclaims.pop(sid), "dialer stopped before dialling")
            # Writers finish what is queued and return (never cancelled inside a
            # transaction, which could leave a connection holding SQLite's write lock).
            self._closing = True
            for _ in range(self.config.result_writers):
                self._results.put_nowait(None)
            self.seat_store.close()
            await self.tasks.wait_quiet(self.tasks.named("dialer-results", "dialer-seats"), grace)
        await self.tasks.cancel_all()
        with contextlib.suppress(Exception):
            await self.seat_store.flush()
        for server in self._servers.values():
            if server.link is not None:
                with contextlib.suppress(Exception):
                    await server.link.stop()
                server.link = None
        log.info(
            "dialer engine stopped (%d calls left in flight for reconciliation)", len(self._live)
        )

    def _spawn(self, coro: Awaitable[Any]) -> None:
        self.tasks.job(coro)

    async def wait_connected(self) -> None:
        for server in self._servers.values():
            link = server.link
            wait = getattr(link, "wait_connected", None)
            if wait is not None:
                await wait()

    # -- restore after a restart -------------------------------------------------------------

    async def _restore(self) -> None:
        names = list(self._servers)
        async with self.sessions() as s:
            for row in (await s.scalars(select(SeatSession))).all():
                state = SeatState(row.state)
                if state is SeatState.OFFLINE:
                    continue
                seat = Seat(
                    row.specialist_id,
                    row.seat,
                    state=state,
                    since=row.since,
                    pause_reason=row.pause_reason,
                    attempt_id=row.attempt_id,
                )
                self.seats[row.specialist_id] = seat
                # The wrap-up timer died with the process.
                self._record(seat, seat.restore(self.clock.now()))
            rows = (
                await s.execute(
                    select(CallAttempt, Customer.time_zone)
                    .join(Lead, Lead.id == CallAttempt.lead_id)
                    .join(Policy, Policy.id == Lead.policy_id)
                    .join(Customer, Customer.id == Policy.policyholder_id)
                    .where(CallAttempt.ended_at.is_(None), CallAttempt.ami_server.in_(names))
                )
            ).all()
        mono = self.clock.monotonic()
        for attempt, tz in rows:
            live = _Live(
                attempt.attempt_id,
                attempt.lead_id,
                attempt.number,
                tz or DEFAULT_TZ,
                attempt.campaign_kind,
                attempt.mode,
                attempt.ami_server,
                attempt.campaign_id,
                attempt.specialist_id,
                attempt.seat,
                recording=attempt.recording_file,
            )
            self._live[live.attempt_id] = live
            if attempt.state == AttemptState.RESERVED.value:
                await self._finish(
                    live,
                    Finished(
                        live.attempt_id, SKIPPED, reason="preview reservation dropped by a restart"
                    ),
                )
                continue
            if live.campaign_id is not None:
                self._campaign_active[live.campaign_id] += 1
            self._servers[live.server].tracker.register(
                live.attempt_id,
                TRACKER_MODE.get(live.mode),
                seat=live.seat,
                number=live.number,
                started_at=mono,
                channel_id=live.attempt_id,
            )
            held = self.seats.get(live.specialist_id or -1)
            if held is not None:
                self._record(held, held.restore(self.clock.now(), live.attempt_id))
            log.info("attempt %s: in flight at start, waiting for reconciliation", live.attempt_id)

    # -- campaigns ---------------------------------------------------------------------------

    async def ensure_default_campaigns(self) -> None:
        await self.registry.ensure_defaults()

    async def _load_campaigns(self) -> None:
        await self.registry.load()

    def campaigns(self) -> list[CampaignInfo]:
        return self.registry.all()

    async def set_campaign(self, name_or_id: str | int, **changes: Any) -> CampaignInfo:
        return await self.registry.set(name_or_id, **changes)

    def _on_campaign_changed(self, e: CampaignChanged) -> None:
        if not self._running:
            return
        c = e.campaign
        if c.mode == DialMode.AUTOMATIC.value:
            task = self.tasks.campaigns.get(c.id)
            if c.running and (task is None or task.done()):
                self._campaign_wake[c.id] = asyncio.Event()
                self.tasks.campaign(c.id, self._campaign_loop(c.id))
            elif c.running:
                self._campaign_wake[c.id].set()
        elif c.running:
            for sid, seat in self.seats.items():
                if seat.available:
                    self.wake(sid)

    # -- windows ----------------------------------------------------------------------------

    def hours_for(self, kind: str) -> CallingHours:
        return self.windows.hours_for(kind)

    def day_start(self, now: datetime) -> datetime:
        return self.windows.day_start(now)

    def is_open(self, kind: str, tz: str, now: datetime) -> bool:
        return self.windows.is_open(kind, tz, now)

    def ring_ms(self, kind: str, tz: str, now: datetime, plan: DialPlan) -> int | None:
        return self.windows.ring_ms(kind, tz, now, plan)

    # -- seats --------------------------------------------------------------------------------

    def _server_for_seat(self, device: str) -> _Server:
        name = self.config.seat_servers.get(device) or self._server_order[0]
        return self._servers[name]

    def _next_server(self) -> _Server | None:
        n = len(self._server_order)
        for i in range(n):
            server = self._servers[self._server_order[(self._rr + i) % n]]
            if server.usable:
                self._rr = (self._rr + i + 1) % n
                return server
        return None

    def _record(self, seat: Seat, t: Transition | None) -> None:
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
        if seat.available:
            self._mark_ready(seat.specialist_id)
            self.wake(seat.specialist_id)

    def _notify(self, event: SeatChanged) -> None:
        seat = self.seats.get(event.specialist_id)
        if seat is None:
            return
        for listener in self.seat_listeners:
            try:
                listener(seat)
            except Exception:
                log.exception("seat listener failed for specialist %s", seat.specialist_id)

    def _mark_ready(self, sid: int) -> None:
        self._ready_at[sid] = self.clock.monotonic()

    def signed_in_seats(self) -> list[Seat]:
        """The seats signed in (not offline), for the services' views."""
        return [s for s in self.seats.values() if s.state is not SeatState.OFFLINE]

    def seat_of(self, specialist_id: int) -> Seat:
        seat = self.seats.get(specialist_id)
        if seat is None or seat.state is SeatState.OFFLINE:
            raise NotSignedIn(f"specialist {specialist_id} is not signed in")
        return seat

    async def sign_in(
        self, specialist_id: int, seat: str | None = None, *, ready: bool = False
    ) -> Seat:
        async with self.sessions() as s:
            spec = await s.get(Specialist, specialist_id)
            if spec is None or not spec.active:
                raise NotSignedIn(f"no active specialist {specialist_id}")
            device = spec.seat
        if seat is not None and seat != device:
            # Any other device could be a colleague's phone or a trunk (toll fraud).
            log.warning(
                "specialist %s tried to sign in at %s instead of their seat", specialist_id, seat
            )
            raise NotYourSeat(f"specialist {specialist_id} may sign in only at their own seat")
        for other in self.seats.values():
            if (
                other.device == device
                and other.specialist_id != specialist_id
                and other.state is not SeatState.OFFLINE
            ):
                raise SeatTaken(f"seat {device} is signed in by specialist {other.specialist_id}")
        current = self.seats.get(specialist_id)
        if current is not None and current.state is not SeatState.OFFLINE:
            if current.device != device:
                raise SeatTaken(f"specialist {specialist_id} is signed in at {current.device}")
            return current
        new = Seat(specialist_id, device)
        self.seats[specialist_id] = new
        self._record(new, new.sign_in(self.clock.now(), ready=ready))
        await self.seat_store.flush()
        return new

    async def sign_out(self, specialist_id: int) -> Seat:
        seat = self.seat_of(specialist_id)
        if seat.attempt_id is not None and seat.state is SeatState.READY:
            await self.skip_preview(specialist_id)
        self._record(seat, seat.sign_out(self.clock.now()))
        await self._drop_preclaim(specialist_id, "seat signed out before dialling")
        await self.seat_store.flush()
        return seat

    async def set_ready(self, specialist_id: int) -> Seat:
        seat = self.seat_of(specialist_id)
        if seat.state is not SeatState.READY:
            self._record(seat, seat.ready(self.clock.now()))
            await self.seat_store.flush()
        return seat

    async def pause(self, specialist_id: int, reason: str) -> Seat:
        seat = self.seat_of(specialist_id)
        if seat.attempt_id is not None and seat.state is SeatState.READY:
            await self.skip_preview(specialist_id)
        self._record(seat, seat.pause(self.clock.now(), reason or "paused"))
        await self._drop_preclaim(specialist_id, "seat paused before dialling")
        await self.seat_store.flush()
        return seat

    def wake(self, specialist_id: int) -> None:
        """Ask the dispatcher to look for a call for this seat."""
        if not self._running:
            return
        if specialist_id in self._preclaims or specialist_id in self._preclaiming:
            # Its next lead is claimed (or being claimed): no queue, no claim slot to wait
            # for behind other seats' claims.
            if specialist_id not in self._dialling:
                self._dialling.add(specialist_id)
                self._spawn(self._dial_preclaimed(specialist_id))
            return
        if specialist_id in self._queued:
            return
        self._queued.add(specialist_id)
        self._wake_q.put_nowait(specialist_id)

    def _wake_later(self, specialist_id: int, seconds: float) -> None:
        if not self._running:
            self.tasks.timer(specialist_id, None)
            return

        async def fire() -> None:
            await self.clock.sleep(seconds)
            self.tasks.timer_fired(specialist_id)
            self.wake(specialist_id)

        self.tasks.timer(specialist_id, fire())

    def _wrap_up_later(self, specialist_id: int, seconds: float) -> None:
        async def fire() -> None:
            await self.clock.sleep(seconds)
            self.tasks.timer_fired(specialist_id)
            seat = self.seats.get(specialist_id)
            if seat is not None:
                self._record(seat, seat.wrap_done(self.clock.now()))

        self.tasks.timer(specialist_id, fire())

    async def _dispatcher(self) -> None:
        while True:
            sid = await self._wake_q.get()
            self._queued.discard(sid)
            await self._claim_slots.acquire()
            self.tasks.job(self._dial_for_seat_guarded(sid))

    async def _dial_for_seat_guarded(self, sid: int) -> None:
        """Claim under a slot of `claim_parallelism`; send outside it, so a seat waiting for
        its trunk's pace does not hold up the claims of other seats."""
        todo: tuple[_Live, CampaignInfo | None] | None = None
        try:
            todo = await self._dial_for_seat(sid)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("dialling for specialist %s failed; retrying later", sid)
            self._wake_later(sid, self.config.idle_recheck_seconds)
        finally:
            self._claim_slots.release()
        if todo is not None:
            await self._send(*todo)

    @contextlib.asynccontextmanager
    async def _write_guard(self, rank: int) -> AsyncIterator[None]:
        """PostgreSQL: row locks (SKIP LOCKED) do the work. SQLite (one instance): one
        writer at a time in this process, instead of SQLite's busy-wait on its file lock,
        the most urgent first (`dialer.locks`: a ready seat's claim before a batch of
        results)."""
        if self._pg:
            yield
        else:
            async with self._write_lock.hold(rank):
                yield

    @staticmethod
    def _will_dial(seat: Seat) -> bool:
        """The seat's next call is wanted: ready with nothing offered, or wrapping up with
        no pause asked for."""
        return seat.available or (seat.state is SeatState.WRAP_UP and seat.pending_pause is None)

    async def _claim_for_seat(
        self,
        seat: Seat,
        kinds: Mapping[str, CampaignInfo],
        server: _Server,
        now: datetime,
        *,
        pre: bool,
    ) -> tuple[_Live, CampaignInfo] | str:
        """One claim transaction for the seat's own queue: the first lead whose window is
        open, its attempt committed (write before dial). Returns the attempt, or why not:
        "empty" (nothing to dial now), "taken" (lost a race for the lead: look again),
        "unwanted" (the seat no longer wants a call; or, for a pre-claim, the lead would be
        a preview, which the specialist must see first)."""
        sid = seat.specialist_id
        wanted = self._will_dial if pre else (lambda st: st.available)
        rank = locks.PRECLAIM if pre else locks.CLAIM
        async with self._write_guard(rank), self.sessions() as s:
            cands = queues.choose(
                await self._seat_queue.candidates(
                    s,
                    sid,
                    list(kinds),
                    now=now,
                    limit=self.config.claim_batch,
                    day_start=self.day_start(now),
                ),
                now=now,
                window_kind=lambda c: c.kind,
                is_open=self.is_open,
                want=1,
            )
            camp = campaign_for(cands[0].kind, kinds) if cands else None
            preview = camp is not None and camp.mode == DialMode.PREVIEW.value
            if camp is None or not wanted(seat) or (pre and preview):
                await s.rollback()
                return "empty" if camp is None else "unwanted"
            c = cands[0]
            attempt_id = queues.new_attempt_id()
            s.add(
                CallAttempt(
                    attempt_id=attempt_id,
                    lead_id=c.lead_id,
                    phone_id=c.phone_id,
                    number=c.number,
                    specialist_id=sid,
                    seat=seat.device,
                    mode=camp.mode,
                    campaign_id=camp.id,
                    campaign_kind=c.kind,
                    ami_server=server.spec.name,
                    state=(AttemptState.RESERVED if preview else AttemptState.DIALING).value,
                    created_at=now,
                )
            )
            try:
                await s.commit()
            except IntegrityError:
                await s.rollback()
                log.info("specialist %s: lead %s taken meanwhile", sid, c.lead_id)
                return "taken"
        live = _Live(
            attempt_id,
            c.lead_id,
            c.number,
            c.tz,
            c.kind,
            camp.mode,
            server.spec.name,
            camp.id,
            sid,
            seat.device,
            camp.trunk,
        )
        self._live[attempt_id] = live
        self.stats["preclaimed" if pre else "claimed"] += 1
        return live, camp

    async def _dial_for_seat(self, sid: int) -> tuple[_Live, CampaignInfo | None] | None:
        seat = self.seats.get(sid)
        if seat is None or not seat.available:
            return None
        if sid in self._preclaims or sid in self._preclaiming:
            return None  # `_dial_preclaimed` has it
        kinds = self.registry.specialist_kinds()
        if not kinds:
            return None
        server = self._server_for_seat(seat.device)
        if not server.usable:
            # Link down or Asterisk shutting down: wait for it (woken again on reconnect)
            # rather than claim leads nobody can dial.
            self._wake_later(sid, min(5.0, self.config.idle_recheck_seconds))
            return None
        now = self.clock.now()
        got = await self._claim_for_seat(seat, kinds, server, now, pre=False)
        if got == "empty":
            if seat.available:
                self._wake_later(sid, await self._recheck_delay(sid, now))
            return None
        if got == "taken":
            self.wake(sid)
            return None
        if isinstance(got, str):
            return None
        live, camp = got
        if not seat.available:
            # The specialist paused or signed out while the claim committed: nothing is
            # dialled, and the attempt ends at once so the lead and number are free again.
            self.stats["not_sent_seat"] += 1
            await self._finish(
                live,
                Finished(live.attempt_id, NOT_SENT, reason="seat no longer ready: not dialled"),
            )
            return None
        if camp.mode == DialMode.PREVIEW.value:
            self._record(seat, seat.offer(self.clock.now(), live.attempt_id))
            log.info(
                "seat %s: lead %s offered for preview (%s)",
                seat.device,
                live.lead_id,
                live.attempt_id,
            )
            return None
        self._record(seat, seat.dial(self.clock.now(), live.attempt_id))
        return live, camp

    # -- pre-claim: the next lead claimed during wrap-up ---------------------------------------

    def _preclaim_later(self, sid: int) -> None:
        """The seat started its wrap-up: claim its next lead in the background."""
        if (
            not self.config.preclaim
            or not self._running
            or sid in self._preclaims
            or sid in self._preclaiming
        ):
            return
        self._preclaiming[sid] = self.tasks.job(self._preclaim(sid))

    async def _preclaim(self, sid: int) -> None:
        """A claim like any other (committed before anything is dialled, lead and number in
        flight), made while the seat wraps up. Kept in `_preclaims` until the seat is ready;
        released (not_sent) if the seat pauses or signs out first."""
        try:
            async with self._preclaim_slots:
                seat = self.seats.get(sid)
                kinds = self.registry.specialist_kinds()
                if seat is None or not kinds or not self._will_dial(seat):
                    return
                server = self._server_for_seat(seat.device)
                if not server.usable:
                    return
                got = await self._claim_for_seat(seat, kinds, server, self.clock.now(), pre=True)
                if isinstance(got, str):
                    return
                live, _ = got
                if self._running and self._will_dial(seat):
                    self._preclaims[sid] = live
                    return
                await self._release(live, "seat paused or signed out before dialling")
        finally:
            self._preclaiming.pop(sid, None)

    async def _dial_preclaimed(self, sid: int) -> None:
        """The seat is ready and its next lead is already claimed: no database work before
        the Originate; the window is checked again at the moment of sending."""
        todo: tuple[_Live, CampaignInfo] | None = None
        try:
            task = self._preclaiming.get(sid)
            if task is not None:
                await asyncio.wait([task])  # ready before the pre-claim committed
            live = self._preclaims.pop(sid, None)
            seat = self.seats.get(sid)
            if live is None:  # nothing was pre-claimed: the ordinary claim
                if seat is not None and seat.available:
                    self._dialling.discard(sid)
                    self.wake(sid)
                return
            todo = await self._use_preclaim(seat, live)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("dialling the pre-claimed lead of specialist %s failed", sid)
            self._wake_later(sid, self.config.idle_recheck_seconds)
        finally:
            self._dialling.discard(sid)
        if todo is not None:
            await self._send(*todo)

    async def _use_preclaim(
        self, seat: Seat | None, live: _Live
    ) -> tuple[_Live, CampaignInfo] | None:
        if seat is None or not seat.available:
            if seat is not None and self._will_dial(seat):
                self._preclaims[seat.specialist_id] = live  # woken early: keep it
            else:
                await self._release(live, "seat paused or signed out before dialling")
            return None
        camp = self.registry.get(live.campaign_id or -1)
        reason = None
        retry_at = None
        now = self.clock.now()
        if camp is None or not camp.running or camp.mode != live.mode:
            reason = "campaign stopped or changed before dialling"
        elif not self._servers[live.server].usable:
            reason = "AMI link down or Asterisk shutting down: not dialled"
        elif not self.is_open(live.kind, live.tz, now):
            reason = "calling window closed before the seat was ready"
            retry_at = self.hours_for(live.kind).next_window_start(now, live.tz)
        if reason is not None or camp is None:
            await self._release(live, reason or "campaign stopped before dialling", retry_at)
            if seat.available:
                self.wake(seat.specialist_id)  # another lead may be callable
            return None
        self._record(seat, seat.dial(self.clock.now(), live.attempt_id))
        return live, camp

    async def _release(self, live: _Live, reason: str, retry_at: datetime | None = None) -> None:
        """End a pre-claimed attempt that was never dialled: its lead and number are free
        again at once (not_sent does not count as a call); the lead is due at `retry_at`
        (None: at once)."""
        self.stats["preclaim_released"] += 1
        log.info(
            "attempt %s (lead %s): pre-claim released: %s", live.attempt_id, live.lead_id, reason
        )
        await self._finish(
            live, Finished(live.attempt_id, NOT_SENT, reason=reason, retry_at=retry_at)
        )

    async def _drop_preclaim(self, sid: int, reason: str) -> None:
        """The seat will not dial (paused, signed out): release its pre-claimed lead now,
        after any pre-claim under way has committed."""
        task = self._preclaiming.get(sid)
        if task is not None:
            await asyncio.wait([task])
        seat = self.seats.get(sid)
        if seat is not None and self._will_dial(seat):
            return
        live = self._preclaims.pop(sid, None)
        if live is not None:
            await self._release(live, reason)

    async def _recheck_delay(self, sid: int, now: datetime) -> float:
        delay = self.config.idle_recheck_seconds
        async with self.sessions() as s:
            nxt = await s.scalar(
                select(func.min(Lead.next_attempt_at)).where(
                    queues.owned_by(sid),
                    Lead.status.in_(queues.SPECIALIST_STATUSES),
                    Lead.next_attempt_at > now,
                )
            )
        if nxt is not None:
            delay = min(delay, max(0.5, (nxt - now).total_seconds() + 0.01))
        return delay

    # -- preview ------------------------------------------------------------------------------

    async def confirm_preview(self, specialist_id: int) -> str:
        seat = self.seat_of(specialist_id)
        live = self._live.get(seat.attempt_id or "")
        if live is None or seat.state is not SeatState.READY:
            raise NoPreview(f"no lead is offered to specialist {specialist_id}")
        async with self.sessions() as s:
            n = (
                await s.execute(
                    update(CallAttempt)
                    .where(
                        CallAttempt.attempt_id == live.attempt_id,
                        CallAttempt.state == AttemptState.RESERVED.value,
                    )
                    .values(state=AttemptState.DIALING.value)
                )
            ).rowcount  # type: ignore[attr-defined]
            await s.commit()
        if n != 1:
            raise NoPreview(f"the preview {live.attempt_id} is no longer reserved")
        camp = self.registry.get(live.campaign_id or -1)
        self._record(seat, seat.dial(self.clock.now(), live.attempt_id))
        await self._send(live, camp)
        return live.attempt_id

    async def skip_preview(self, specialist_id: int, reason: str = "skipped in preview") -> None:
        seat = self.seat_of(specialist_id)
        live = self._live.get(seat.attempt_id or "")
        if live is None or seat.state is not SeatState.READY:
            raise NoPreview(f"no lead is offered to specialist {specialist_id}")
        # The result writer's `_after` lets the seat go of the attempt (a `withdraw`, a seat
        # change: the seat page hears it through `seat_listeners`).
        await self._finish(live, Finished(live.attempt_id, SKIPPED, reason=reason))

    # -- automatic campaigns ---------------------------------------------------------------------

    async def _campaign_loop(self, campaign_id: int) -> None:
        tick = self.config.automatic_tick_seconds
        while self._running:
            camp = self.registry.get(campaign_id)
            if camp is None or not camp.running:
                return
            wake = self._campaign_wake.setdefault(campaign_id, asyncio.Event())
            wake.clear()
            claimed = 0
            try:
                claimed = await self._campaign_round(camp)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("campaign %s: round failed", camp.name)
            if claimed:
                # More work is likely: claim again as soon as the trunk has room.
                await self.clock.sleep(min(tick, 1.0 / max(camp.trunk_max_cps, 0.1)))
                continue
            sleeper = asyncio.ensure_future(self.clock.sleep(tick))
            waiter = asyncio.ensure_future(wake.wait())
            try:
                await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waiter.cancel()

    async def _campaign_round(self, camp: CampaignInfo) -> int:
        """Claim and start a round of automatic calls; returns how many were claimed."""
        cap = campaign_capacity(camp.concurrency, self._campaign_active[camp.id])
        server = self._next_server()
        if cap <= 0 or server is None:
            return 0
        trunk = server.trunk(camp.trunk, camp.trunk_max_calls, camp.trunk_max_cps)
        cap = min(cap, trunk.max_calls - trunk.active)
        # Claim no more than the trunk can start in about one tick: an attempt committed
        # long before its turn would sit in flight, blocking its lead and number for nothing.
        cap = min(
            cap,
            int(camp.trunk_max_cps * self.config.automatic_tick_seconds)
            + 1
            - self._campaign_waiting[camp.id],
        )
        if cap <= 0:
            return 0
        now = self.clock.now()
        day_start, daily_cap = self.day_start(now), self.config.daily_calls_per_number
        if camp.kind == CampaignKind.REMINDER.value:
            today = self.plan.for_kind(camp.kind).local_date(now)
            query = queues.reminder_queue(
                now,
                today,
                self.timeline,
                day_start=day_start,
                daily_cap=daily_cap,
            )
        else:
            query = queues.callback_queue(now, day_start=day_start, daily_cap=daily_cap)
        lives: list[_Live] = []
        async with self._write_guard(locks.RESULTS), self.sessions() as s:
            cands = await queues.pick(
                s,
                query,
                now=now,
                window_kind=lambda _c: camp.kind,
                is_open=self.is_open,
                limit=max(self.config.claim_batch, cap * 2),
                want=cap,
                lock=self._pg,
            )
            if not cands:
                await s.rollback()
                return 0
            owners = await queues.customer_owners(s, cands)
            for c in cands:
                attempt_id = queues.new_attempt_id()
                s.add(
                    CallAttempt(
                        attempt_id=attempt_id,
                        lead_id=c.lead_id,
                        phone_id=c.phone_id,
                        number=c.number,
                        mode=DialMode.AUTOMATIC.value,
                        campaign_id=camp.id,
                        campaign_kind=camp.kind,
                        ami_server=server.spec.name,
                        state=AttemptState.DIALING.value,
                        created_at=now,
                    )
                )
                lives.append(
                    _Live(
                        attempt_id,
                        c.lead_id,
                        c.number,
                        c.tz,
                        camp.kind,
                        DialMode.AUTOMATIC.value,
                        server.spec.name,
                        camp.id,
                        trunk=camp.trunk,
                        owner_id=owners.get(c.lead_id),
                    )
                )
            try:
                await s.commit()
            except IntegrityError:
                await s.rollback()
                return 0
        for live in lives:
            self._live[live.attempt_id] = live
            self._campaign_active[camp.id] += 1
            self._campaign_waiting[camp.id] += 1
        self.stats["claimed"] += len(lives)
        # Sent in the background, spaced by the trunk limiter; the next round claims while
        # these wait for their turn (at most about one tick's worth wait at any time).
        for live in lives:
            self._spawn(self._send(live, camp))
        return len(lives)

    # -- sending -------------------------------------------------------------------------------

    def _headers(
        self, live: _Live, camp: CampaignInfo | None, plan: DialPlan, ring_ms: int | None = None
    ) -> dict[str, HeaderValue]:
        if ring_ms is not None and ring_ms < plan.ring_timeout_ms:
            plan = replace(plan, ring_timeout_ms=ring_ms)
        number = originate.dialable(live.number)
        cid = camp.caller_id if camp is not None else None
        trunk = camp.trunk if camp is not None else None
        if live.mode == DialMode.CUSTOMER_FIRST.value:
            assert live.seat is not None
            return originate.customer_first(
                plan,
                attempt_id=live.attempt_id,
                seat=live.seat,
                number=number,
                lead_id=live.lead_id,
                trunk=trunk,
                caller_id=cid,
            )
        if live.mode == DialMode.AUTOMATIC.value:
            if live.kind == CampaignKind.REMINDER.value:
                message = (
                    camp.message if camp is not None else None
                ) or self.config.reminder_message
                return originate.reminder(
                    plan,
                    attempt_id=live.attempt_id,
                    number=number,
                    lead_id=live.lead_id,
                    message=message,
                    trunk=trunk,
                    caller_id=cid,
                )
            return originate.callback(
                plan,
                attempt_id=live.attempt_id,
                number=number,
                lead_id=live.lead_id,
                trunk=trunk,
                caller_id=cid,
            )
        assert live.seat is not None
        return originate.seat_first(
            plan,
            attempt_id=live.attempt_id,
            seat=live.seat,
            number=number,
            lead_id=live.lead_id,
            caller_id=cid,
        )

    async def _send(self, live: _Live, camp: CampaignInfo | None) -> None:
        server = self._servers[live.server]
        # Pacing: a trunk slot and the trunk's rate (waits on the clock, never sleeps blind).
        if camp is not None:
            trunk = server.trunk(camp.trunk, camp.trunk_max_calls, camp.trunk_max_cps)
            while (wait := trunk.reserve(self.clock.monotonic())) is None:
                await self.clock.sleep(1.0)  # the trunk is full: look again
            live.admitted = True
            if wait > 0.0:  # this call's slot of the trunk's rate (seats ready together queue)
                await self.clock.sleep(wait)
        if live.mode == DialMode.AUTOMATIC.value and live.campaign_id is not None:
            self._campaign_waiting[live.campaign_id] -= 1
        now = self.clock.now()
        # The calling-window check happens here, at the moment of sending, and the ring time
        # is cut to what is left of the window.
        ring_ms = self.ring_ms(live.kind, live.tz, now, server.spec.plan)
        if ring_ms is None:
            self.stats["not_sent_window"] += 1
            await self._finish(
                live,
                Finished(
                    live.attempt_id,
                    NOT_SENT,
                    reason="calling window closed (or closing within the minimum ring time) "
                    "at send time",
                    retry_at=self.hours_for(live.kind).next_window_start(now, live.tz),
                ),
            )
            return
        # The CRM may have closed the lead or barred the number since the claim (inbound
        # changes, docs/crm.md): looked at here, at the moment of sending, like the window.
        async with self.sessions() as s:
            stop = await queues.not_callable_reason(s, live.lead_id, live.number)
        if stop is not None:
            self.stats["not_sent_closed"] += 1
            await self._finish(live, Finished(live.attempt_id, NOT_SENT, reason=stop))
            return
        link = server.link
        if link is None or not server.usable:
            self.stats["not_sent_link"] += 1
            await self._finish(
                live,
                Finished(
                    live.attempt_id,
                    NOT_SENT,
                    reason="AMI link down or Asterisk shutting down: not dialled",
                ),
            )
            return
        headers = self._headers(live, camp, server.spec.plan, ring_ms)
        mono = self.clock.monotonic()
        server.tracker.register(
            live.attempt_id,
            TRACKER_MODE[live.mode],
            seat=live.seat,
            number=originate.dialable(live.number),
            started_at=mono,
            channel=str(headers["Channel"]),
            channel_id=live.attempt_id,
        )
        ready_at = self._ready_at.pop(live.specialist_id or -1, None)
        sending = self.clock.monotonic()
        try:
            reply = await link.send(
                "Originate", headers, action_id=live.attempt_id, timeout=self.config.action_timeout
            )
        except AmiError as exc:
            # Fate unknown: maybe Asterisk got it. Never re-sent; resync/expiry settles it.
            self.stats["send_unknown"] += 1
            log.warning(
                "attempt %s: Originate fate unknown (%s); left for reconciliation",
                live.attempt_id,
                exc,
            )
            return
        self.stats["originates"] += 1
        if ready_at is not None and live.specialist_id is not None:
            self.latencies.append(
                (
                    live.specialist_id,
                    ready_at,
                    sending - ready_at,
                    self.clock.monotonic() - ready_at,
                )
            )
        if not reply.ok:
            message = reply.get("Message") or "Originate refused"
            results = server.tracker.originate_failed(
                live.attempt_id, message, self.clock.monotonic()
            )
            if shutdown.refused_for_shutdown(message):
                await self._refused_for_shutdown(server, live, message)
                return
            self._enqueue(live.server, results)
            return
        self.bus.publish(OriginateSent(live.attempt_id, now))

    async def _refused_for_shutdown(self, server: _Server, live: _Live, message: str) -> None:
        """Asterisk refused the Originate because it is stopping: nothing was dialled. The
        attempt is not sent (no call counted, the lead due again at once) and the server
        takes no new call until its link is back, so its seats wait instead of going through
        their queues one refused lead at a time."""
        if not server.refusing:
            log.warning(
                "AMI %s: %s: no new calls until the link is re-established",
                server.spec.name,
                message,
            )
        server.refusing = True
        self.stats["not_sent_shutdown"] += 1
        await self._finish(
            live, Finished(live.attempt_id, NOT_SENT, reason=f"Originate refused: {message}")
        )

    async def hang_up(self, attempt_id: str) -> bool:
        """Hang up one of this process's calls: an AMI Hangup of its originated channel. The
        tracker is told first, so the outcome is hung_up_by_action whichever arrives first,
        the Hangup's reply or the call's last events. False if no channel of the call is
        up (not dialled yet, already over) or the link failed."""
        live = self._live.get(attempt_id)
        if live is None:
            return False
        server = self._servers[live.server]
        channels = server.tracker.live_channels(attempt_id)
        link = server.link
        if not channels or link is None or not link.connected:
            return False
        server.tracker.note_hangup_action(attempt_id=attempt_id, channel=channels[0])
        try:
            reply = await link.send(
                "Hangup",
                {"Channel": channels[0], "Cause": "16"},
                timeout=self.config.action_timeout,
            )
        except AmiError as exc:
            log.warning("attempt %s: Hangup of %s failed: %s", attempt_id, channels[0], exc)
            return False
        if not reply.ok:
            log.info(
                "attempt %s: Hangup of %s refused: %s",
                attempt_id,
                channels[0],
                reply.get("Message"),
            )
        return reply.ok

    # -- events --------------------------------------------------------------------------------

    def _on_event(self, server_name: str, event: Any) -> None:
        """Every AMI event goes to the server's call tracker; what the engine needs while a
        call runs comes back as bus events (`_on_recording_named`, `_on_bridged`,
        `_on_pbx_shutdown`), the finished calls as results."""
        server = self._servers[server_name]
        results = server.tracker.handle(event, self.clock.monotonic())
        server.read_check.saw(event)
        if results:
            self._enqueue(server_name, results)

    def _on_pbx_shutdown(self, e: PbxShuttingDown) -> None:
        log.warning(
            "AMI %s: Asterisk is shutting down: no new calls until the link is back", e.server
        )
        server = self._servers[e.server]
        server.refusing = server.going = True

    def _on_recording_named(self, e: RecordingNamed) -> None:
        live = self._live.get(e.attempt_id)
        if live is not None:
            live.recording = e.file_name

    def _on_bridged(self, e: CallBridged) -> None:
        live = self._live.get(e.attempt_id)
        if live is None or live.answered:
            return
        live.answered = True
        seat = self.seats.get(live.specialist_id or -1)
        if (
            seat is not None
            and seat.attempt_id == live.attempt_id
            and seat.state is SeatState.RINGING
        ):
            self._record(seat, seat.answer(self.clock.now()))

    def _publish_key(self, server_name: str, press: KeyPress) -> None:
        self.bus.publish(
            CustomerPressedKey(server_name, press.attempt_id, press.channel, press.key)
        )

    def _enqueue(self, server_name: str, results: Sequence[CallResult]) -> None:
        server = self._servers[server_name]
        server.read_check.ended(results)
        for r in results:
            live = self._live.get(r.attempt_id or "")
            if live is None:
                if r.attempt_id is not None:
                    log.debug("result for an attempt not in flight here: %s", r.attempt_id)
                continue
            self.bus.publish(CallHungUp(server_name, live.attempt_id))
            fin = finished_from(r, live)
            if server.going and not fin.unknown and not shutdown.reached(r):
                fin = shutdown.ended_by_pbx(fin, "it ended while Asterisk shut down")
            elif shutdown.may_be_cut(r) and not fin.unknown:
                self._spawn(self._unless_cut(server, live, fin))
                continue
            self._results.put_nowait((live, fin))

    async def _unless_cut(self, server: _Server, live: _Live, fin: Finished) -> None:
        """A ringing call cancelled with cause 16: if the PBX goes down within the grace
        (`Event: Shutdown`, or the link drops), the PBX cut it; else it is what it was."""
        step, waited, links = 0.1, 0.0, server.links
        while waited < self.config.pbx_cut_grace_seconds and not self._pbx_went(server, links):
            await self.clock.sleep(step)
            waited += step
        if self._pbx_went(server, links):
            fin = shutdown.ended_by_pbx(fin, "cancelled as Asterisk shut down")
        self._results.put_nowait((live, fin))

    @staticmethod
    def _pbx_went(server: _Server, links: int) -> bool:
        """Shutdown seen, or the link is down or was re-established since `links`."""
        link = server.link
        return server.going or server.links != links or link is None or not link.connected

    async def _on_resync(self, server_name: str, channels: Sequence[Any]) -> None:
        server = self._servers[server_name]
        if server.refusing:
            log.info("AMI %s: link re-established after a shutdown: dialling again", server_name)
        server.refusing = server.going = False
        server.links += 1
        if self._running:  # the seats and campaigns that waited for this server
            for sid, seat in self.seats.items():
                if seat.available and self._server_for_seat(seat.device) is server:
                    self.wake(sid)
            for wake in self._campaign_wake.values():
                wake.set()
        chans = [c for c in channels if isinstance(c, ev.CoreShowChannel)]
        results = server.tracker.resync(chans, self.clock.monotonic())
        live_ids = {c.linkedid for c in chans}
        for r in results:
            live = self._live.get(r.attempt_id or "")
            if live is None:
                continue
            fin = finished_from(r, live)
            if fin.unknown:
                fin = replace(
                    fin,
                    reason="fate unknown after the AMI link was lost: not "
                    "redialled before the next window",
                )
                self.stats["unknown"] += 1
            await self._finish(live, fin)
        kept = sum(
            1 for a in self._live.values() if a.server == server_name and a.attempt_id in live_ids
        )
        log.info(
            "AMI %s resynced: %d calls re-attached, %d settled", server_name, kept, len(results)
        )

    # -- results -------------------------------------------------------------------------------

    async def _result_writer(self) -> None:
        """Writes results in batches: one transaction for whatever is queued (up to 100),
        falling back to one transaction per result if the batch fails."""
        while True:
            first = await self._results.get()
            if first is None:  # stop: everything queued before it is written
                return
            batch = [first]
            while len(batch) < self.config.result_batch and not self._results.empty():
                item = self._results.get_nowait()
                if item is None:
                    self._results.put_nowait(None)
                    break
                batch.append(item)
            self._writing += 1
            try:
                await self._finish_many(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning(
                    "a batch of %d results failed; writing them one by one",
                    len(batch),
                    exc_info=True,
                )
                for live, fin in batch:
                    try:
                        await self._finish(live, fin)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception(
                            "attempt %s: could not record the result; it stays in flight "
                            "for reconciliation",
                            live.attempt_id,
                        )
            finally:
                self._writing -= 1

    async def _apply(
        self, s: AsyncSession, live: _Live, fin: Finished, now: datetime
    ) -> Effects | None:
        q = select(CallAttempt).where(CallAttempt.attempt_id == live.attempt_id)
        if self._pg:
            q = q.with_for_update()
        attempt = (await s.scalars(q)).one_or_none()
        if attempt is None or attempt.ended_at is not None:
            return None
        return await record_result(
            s, attempt, fin, now=now, hours_for=self.hours_for, retry=self.retry
        )

    async def _finish_many(self, batch: Sequence[tuple[_Live, Finished]]) -> None:
        now = self.clock.now()
        done: list[tuple[_Live, Finished, Effects | None]] = []
        async with self._write_guard(locks.RESULTS), self.sessions() as s:
            for live, fin in batch:
                done.append((live, fin, await self._apply(s, live, fin, now)))
            await s.commit()
        for live, fin, eff in done:
            await self._after(live, fin, eff, now)

    async def _finish(self, live: _Live, fin: Finished) -> Effects | None:
        now = self.clock.now()
        eff: Effects | None = None
        for attempt_no in range(3):
            try:
                async with self._write_guard(locks.RESULTS), self.sessions() as s:
                    eff = await self._apply(s, live, fin, now)
                    await s.commit()
                break
            except IntegrityError:
                if attempt_no == 2:
                    raise
        await self._after(live, fin, eff, now)
        return eff

    async def _after(self, live: _Live, fin: Finished, eff: Effects | None, now: datetime) -> None:
        """What follows a committed result: pacing slots, the seat, the hook."""
        self._live.pop(live.attempt_id, None)
        self.bus.publish(CallEnded(live.server, live.attempt_id))
        if live.admitted and live.trunk is not None:
            limiter = self._servers[live.server].trunks.get(live.trunk)
            if limiter is not None:
                limiter.release()
            live.admitted = False
        if live.campaign_id is not None and live.mode == DialMode.AUTOMATIC.value:
            self._campaign_active[live.campaign_id] = max(
                0, self._campaign_active[live.campaign_id] - 1
            )
            wake = self._campaign_wake.get(live.campaign_id)
            if wake is not None:
                wake.set()
        if eff is None:
            return
        self.stats[f"outcome:{fin.outcome}"] += 1
        self.stats["results"] += 1
        seat = self.seats.get(live.specialist_id or -1)
        if seat is not None and seat.attempt_id == live.attempt_id:
            if seat.state in (SeatState.RINGING, SeatState.ON_CALL):
                talked = eff.talked or live.answered
                if talked:
                    seat.answered = True
                wrap = self.config.wrap_up_seconds if talked else 0.0
                self._record(seat, seat.call_end(now, wrap))
                if seat.state is SeatState.WRAP_UP:
                    self._wrap_up_later(seat.specialist_id, wrap)
                    if seat.pending_pause is None:
                        self._preclaim_later(seat.specialist_id)
            else:
                self._record(seat, seat.withdraw(now, f"attempt ended: {fin.outcome}"))
        if self.on_attempt_ended is not None and fin.outcome not in (NOT_SENT, SKIPPED):
            try:
                await self.on_attempt_ended(
                    AttemptEnded(
                        live.attempt_id,
                        live.lead_id,
                        live.specialist_id,
                        live.seat,
                        fin.outcome,
                        now,
                        fin.talk_seconds,
                        fin.recording,
                        live.server,
                    )
                )
            except Exception:
                log.exception("attempt %s: on_attempt_ended hook failed", live.attempt_id)

    # -- persistence of seats and "sent" marks --------------------------------------------------

    # -- housekeeping ----------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        while True:
            await self.clock.sleep(self.config.housekeeping_seconds)
            mono = self.clock.monotonic()
            for name, server in self._servers.items():
                try:
                    self._enqueue(
                        name,
                        server.tracker.expire(
                            mono, originate_timeout=self.config.originate_lost_seconds
                        ),
                    )
                except Exception:
                    log.exception("AMI %s: tracker expiry failed", name)
            try:
                await self._load_campaigns()
            except Exception:
                log.exception("could not reload campaigns")

    # -- views for the services ------------------------------------------------------------------

    def health(self) -> list[dict[str, Any]]:
        """Each AMI link: connected or not, and what its manager.conf user lacks (readcheck)."""
        return [
            {
                "server": name,
                "connected": server.link is not None and server.link.connected,
                "warnings": server.read_check.warnings(),
            }
            for name, server in self._servers.items()
        ]

    def live_calls(self) -> list[dict[str, Any]]:
        out = []
        for live in self._live.values():
            tracker = self._servers[live.server].tracker
            state = tracker.state_of(live.attempt_id)
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

    def live_attempt(self, attempt_id: str) -> _Live | None:
        return self._live.get(attempt_id)

    def pbx(self, name: str) -> PbxServer | None:
        """One AMI server's link, call tracker and trunks (the supervisors' actions, the board)."""
        return self._servers.get(name)

    def after_dispose(self, specialist_id: int) -> None:
        """A specialist logged a result: their wrap-up may end early."""
        seat = self.seats.get(specialist_id)
        if seat is not None and seat.state is SeatState.WRAP_UP:
            self.tasks.timer(specialist_id, None)
            self._record(seat, seat.ready(self.clock.now()))

    async def idle(self) -> bool:
        """True when nothing is in flight and no result waits to be written (for tests)."""
        return not self._live and self._results.empty()


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
