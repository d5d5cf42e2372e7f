"""The pooled campaigns' unit: the pacer decides how many customer-first calls to have in
flight, and an answered call goes to whichever specialist of the pool is free.

One loop per running pooled campaign (started by the campaign runner, owned by the task
owner). Each round, inside the campaign's calling window:

1. the pool as it is (`dialer.pool_state.pool_state`: the members' seats, the pool's calls
   ringing and answered-waiting);
2. the campaign's `Pacer` (`dialer.predictive`, one per campaign, its estimates started
   afresh at each window, so progressive until they are certain) decides how many calls;
3. `dialer.pool_state.allowed_calls` holds that within the pacing-ratio cap and the
   abandon budget (the rolling 30 days and the day) whatever the pacer said, and the trunk's
   room;
4. that many leads of `dialer.queues.pool_queue` are claimed (attempt rows committed: write
   before you dial; the claim checks the window, do-not-call and the daily cap per number)
   and sent (`SendCall`: the Originate to `pool-wait`, `dialer.originate.pooled`; the
   window is checked again at sending, and the ring time is never under 15 s).

The estimates come from the campaign's real attempts (`AttemptSettled`: answered or not, ring
time, talk time) and the members' real wrap-ups (`SeatChanged`); the abandon ledger from
`pool_abandon_days` (every process's answers, read every few seconds) plus this process's
answers in between.

An answered call (`CustomerWaiting`, the dialplan's UserEvent PoolAnswered) is given the free
member who has waited longest (`dialer.pool.choose_specialist`): the seat is moved to ringing
and the customer's channel is Setvar'd and Redirected to connect-seat
(`dialer.transfer.connect_now`). With nobody free, it waits for a member who frees up within
the 2 s grace (`SeatChanged`); after that the dialplan plays the pool's message naming the
caller and the call ends abandoned: the result writer counts it and books the lead as an
appointment of a pool member on a later day (`dialer.decisions`, `dialer.pool`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date

from dialer import queues
from dialer.campaigns import CampaignInfo, CampaignRegistry
from dialer.domain import (
    AttemptSettled,
    CampaignChanged,
    CustomerWaiting,
    OriginateSent,
    SeatChanged,
)
from dialer.handover import hand_over
from dialer.models import DialMode, SeatState
from dialer.outcomes import ABANDONED, ENDED_BY_PBX, NOT_SENT, SKIPPED
from dialer.pool import (
    FreeSeat,
    PacingSettings,
    choose_specialist,
    load_ledger,
    pacing_limits,
    pool_members,
)
from dialer.pool_state import PoolView, allowed_calls, pool_state
from dialer.predictive import CONNECT_GRACE, Decision, Pacer
from dialer.runtime import DialerRuntime
from dialer.seats import Seat
from dialer.state import LiveCall, PbxServer
from dialer.tasks import nap

log = logging.getLogger(__name__)

MEMBERS_REFRESH_SECONDS = 10.0  # the pool's members are read again this often
LEDGER_REFRESH_SECONDS = 5.0  # and the day's answers and abandons (every process's)
NOT_ATTEMPTS = frozenset({NOT_SENT, SKIPPED, ENDED_BY_PBX})

Claim = Callable[[CampaignInfo, PbxServer, int, queues.Fetch], Awaitable[list[LiveCall]]]


def is_pooled(c: CampaignInfo) -> bool:
    """A campaign whose unowned leads the pool dials (automatic campaigns have no seats)."""
    return c.pooled and c.mode != DialMode.AUTOMATIC.value


@dataclass(slots=True)
class Waiting:
    campaign_id: int
    server: str
    channel: str
    since: float  # clock.monotonic() of the answer


class PoolDialer:
    def __init__(
        self,
        rt: DialerRuntime,
        registry: CampaignRegistry,
        claim: Claim,
        prepared: queues.AutomaticQueues,
    ) -> None:
        self.rt = rt
        self.registry = registry
        self._claim = claim
        self.queues = prepared
        self.pacers: dict[int, Pacer] = {}
        self.members: dict[int, dict[int, str]] = {}
        self._members_at: dict[int, float] = {}
        self._ledger_at: dict[int, float] = {}
        self.mine: dict[str, int] = {}  # the pool's calls in flight -> campaign
        self.sent: dict[str, float] = {}  # attempt -> clock.monotonic() of its Originate
        self.waiting: dict[str, Waiting] = {}  # answered, no specialist yet
        self.decisions: dict[int, Decision] = {}  # the last, for the supervisor and tests
        self._open: dict[int, bool] = {}
        self._empty: set[int] = set()  # campaigns whose last claim found nothing
        self._wake: dict[int, asyncio.Event] = {}
        self._wrap_from: dict[int, float] = {}
        bus = rt.bus
        bus.subscribe(CampaignChanged, self._on_campaign_changed)
        bus.subscribe(OriginateSent, self._on_sent)
        bus.subscribe(CustomerWaiting, self._on_waiting)
        bus.subscribe(SeatChanged, self._on_seat)
        bus.subscribe(AttemptSettled, self._on_settled)

    # -- the loop ----------------------------------------------------------------------------

    def _on_campaign_changed(self, e: CampaignChanged) -> None:
        c = e.campaign
        if not self.rt.running or not is_pooled(c) or not c.running:
            return
        limits = pacing_limits(_settings(c), self.rt.config.legal_max_abandon)
        pacer = self.pacers.get(c.id)
        if pacer is None:
            self.pacers[c.id] = Pacer(limits)
        else:
            pacer.limits = limits
        self._members_at.pop(c.id, None)
        # Keyed apart from the automatic loops (a campaign switched from automatic to pooled
        # while running must not be taken for its old loop).
        task = self.rt.tasks.campaigns.get(-c.id)
        if task is None or task.done():
            self._wake[c.id] = asyncio.Event()
            self.rt.tasks.campaign(-c.id, self._loop(c.id))
        else:
            self.wake(c.id)

    def wake(self, campaign_id: int) -> None:
        wake = self._wake.get(campaign_id)
        if wake is not None:
            wake.set()

    async def _loop(self, campaign_id: int) -> None:
        tick = self.rt.config.automatic_tick_seconds
        clock = self.rt.clock
        while self.rt.running:
            camp = self.registry.get(campaign_id)
            if camp is None or not camp.running or not is_pooled(camp):
                return
            wake = self._wake.setdefault(campaign_id, asyncio.Event())
            wake.clear()
            try:
                await self.round(camp)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pooled campaign %s: round failed", camp.name)
            # Nothing to call now: look again later, or when a call or a member wakes us.
            wait = self.rt.config.idle_recheck_seconds if camp.id in self._empty else tick
            await nap(clock, wait, wake)

    async def round(self, camp: CampaignInfo) -> int:
        """Ask the pacer, claim and send; returns the calls started."""
        rt = self.rt
        now = rt.clock.now()
        hours = rt.windows.hours_for(camp.kind)
        if not rt.windows.is_open(camp.kind, hours.tz, now):
            self._open[camp.id] = False
            return 0
        today = hours.local_date(now)
        pacer = self.pacers.setdefault(
            camp.id, Pacer(pacing_limits(_settings(camp), rt.config.legal_max_abandon))
        )
        mono = rt.clock.monotonic()
        if not self._open.get(camp.id):
            # A new window: fresh estimates (progressive until certain).
            self._open[camp.id] = True
            pacer.new_window()
            self._ledger_at.pop(camp.id, None)
        at = self._ledger_at.get(camp.id)
        if at is None or mono - at >= LEDGER_REFRESH_SECONDS:
            # The day's record as every process wrote it (the abandon budget is shared).
            async with rt.sessions() as s:
                pacer.ledger = await load_ledger(s, camp.id, today)
            self._ledger_at[camp.id] = mono
        await self._members(camp.id)
        self.release_held()
        view = self._view(camp.id, today)
        decision = pacer.decide(view.state)
        self.decisions[camp.id] = decision
        calls = allowed_calls(decision.calls, view, pacer.limits, pacer.ledger)
        server = rt.next_server()
        if calls <= 0 or server is None:
            return 0
        trunk = server.trunk(camp.trunk, camp.trunk_max_calls, camp.trunk_max_cps)
        calls = min(calls, trunk.max_calls - trunk.active)
        if calls <= 0:
            return 0
        queue = self.queues.pool(camp.kind, now, rt.windows.day_start(now))
        # The attempt is a customer-first call whatever the campaign's mode for its owned
        # leads: no seat is reserved, one is chosen on answer.
        as_pool = replace(camp, mode=DialMode.CUSTOMER_FIRST.value)
        lives = await self._claim(as_pool, server, calls, queue)
        if lives:
            self._empty.discard(camp.id)
        else:
            self._empty.add(camp.id)
        for live in lives:
            rt.live[live.attempt_id] = live
            self.mine[live.attempt_id] = camp.id
        rt.stats["pool_claimed"] += len(lives)
        for live in lives:
            rt.spawn(rt.send(live, as_pool))
        if lives:
            log.debug(
                "pooled campaign %s: %d calls (%s, %s)",
                camp.name,
                len(lives),
                decision.mode.value,
                decision.reason,
            )
        return len(lives)

    def _view(self, campaign_id: int, today: date, without: int | None = None) -> PoolView:
        """The campaign's pool now (less the member `without`)."""
        rt = self.rt
        mono = rt.clock.monotonic()
        ringing = [
            mono - self.sent.get(a, mono)
            for a, c in self.mine.items()
            if c == campaign_id and a not in self.waiting and not self._connected(a)
        ]
        waiting = sum(1 for w in self.waiting.values() if w.campaign_id == campaign_id)
        seats = (s for s in rt.seats.values() if s.specialist_id != without)
        members = self.members.get(campaign_id, {})
        return pool_state(today, rt.clock.now(), seats, members, ringing, waiting)

    # -- pauses that wait --------------------------------------------------------------------

    def may_pause(self, seat: Seat) -> bool:
        """May this free member leave now? Only when the calls of every pool they are in
        that they would leave uncovered stay within the abandon budget
        (`Pacer.may_release`): the pacer's hard guard counts on the free specialists it
        placed calls for. Else the pause waits (`SeatCommands.pause` holds it) and the
        member takes the next answer first."""
        if not seat.available:
            return True
        now = self.rt.clock.now()
        for cid, members in self.members.items():
            camp = self.registry.get(cid)
            pacer = self.pacers.get(cid)
            if seat.specialist_id not in members or camp is None or pacer is None:
                continue
            today = self.rt.windows.hours_for(camp.kind).local_date(now)
            if not pacer.may_release(self._view(cid, today, without=seat.specialist_id).state):
                return False
        return True

    def release_held(self) -> None:
        """Held pauses and sign-outs whose calls have settled take effect."""
        rt = self.rt
        for seat in list(rt.seats.values()):
            if seat.available and seat.pending_pause is not None and self.may_pause(seat):
                rt.record(seat, seat.release(rt.clock.now()))

    def _connected(self, attempt_id: str) -> bool:
        live = self.rt.live.get(attempt_id)
        return live is not None and live.specialist_id is not None

    async def _members(self, campaign_id: int) -> dict[int, str]:
        mono = self.rt.clock.monotonic()
        at = self._members_at.get(campaign_id)
        if at is None or mono - at >= MEMBERS_REFRESH_SECONDS:
            async with self.rt.sessions() as s:
                self.members[campaign_id] = await pool_members(s, campaign_id)
            self._members_at[campaign_id] = mono
        return self.members.get(campaign_id, {})

    # -- what the calls tell ---------------------------------------------------------------

    def _on_sent(self, e: OriginateSent) -> None:
        if e.attempt_id in self.mine:
            self.sent[e.attempt_id] = self.rt.clock.monotonic()

    def _on_waiting(self, e: CustomerWaiting) -> None:
        cid = self.mine.get(e.attempt_id)
        live = self.rt.live.get(e.attempt_id)
        if cid is None or live is None or live.specialist_id is not None:
            return
        self.waiting[e.attempt_id] = Waiting(cid, e.server, e.channel, self.rt.clock.monotonic())
        self._connect_waiting(cid)

    def _on_seat(self, e: SeatChanged) -> None:
        t = e.transition
        mono = self.rt.clock.monotonic()
        if t.to_state is SeatState.WRAP_UP:
            self._wrap_from[e.specialist_id] = mono
        elif t.from_state is SeatState.WRAP_UP and t.to_state is not SeatState.WRAP_UP:
            began = self._wrap_from.pop(e.specialist_id, None)
            if began is not None:
                for cid, members in self.members.items():
                    if e.specialist_id in members and cid in self.pacers:
                        self.pacers[cid].estimates.wrap_ended(mono - began)
        seat = self.rt.seats.get(e.specialist_id)
        if seat is None or not seat.available:
            return
        for cid, members in self.members.items():
            if e.specialist_id in members:
                if any(w.campaign_id == cid for w in self.waiting.values()):
                    self._connect_waiting(cid)
                self.wake(cid)

    def _on_settled(self, e: AttemptSettled) -> None:
        attempt = e.live.attempt_id
        cid = self.mine.pop(attempt, None)
        if cid is None:
            return
        self.sent.pop(attempt, None)
        self.waiting.pop(attempt, None)
        fin = e.finished
        pacer = self.pacers.get(cid)
        if pacer is not None and fin.outcome not in NOT_ATTEMPTS and not fin.unknown:
            est = pacer.estimates
            est.attempt_ended(answered=fin.answered, ring_seconds=fin.ring_seconds or 0.0)
            if fin.answered:
                today = self.rt.windows.hours_for(e.live.kind).local_date(e.at)
                # The same count the result writer added to pool_abandon_days.
                pacer.answered(today, abandoned=fin.outcome == ABANDONED)
            if fin.bridged and fin.talk_seconds:
                est.talk_ended(fin.talk_seconds)
        self.release_held()
        self.wake(cid)

    # -- connecting an answered call -------------------------------------------------------

    def _connect_waiting(self, campaign_id: int) -> None:
        """Give each waiting call of the campaign, oldest first, a free member (within the
        grace; later the dialplan has already abandoned it)."""
        rt = self.rt
        mono = rt.clock.monotonic()
        members = self.members.get(campaign_id, {})
        queue = sorted(
            ((a, w) for a, w in self.waiting.items() if w.campaign_id == campaign_id),
            key=lambda aw: aw[1].since,
        )
        for attempt_id, w in queue:
            if mono - w.since > CONNECT_GRACE:
                continue  # the dialplan abandons it; its result clears it
            server = rt.servers[w.server]
            seats = {
                s.specialist_id: s
                for s in rt.seats.values()
                if s.available and rt.server_for_seat(s.device) is server
            }
            # A free seat has nothing of its own to dial now (the seat dialer would have
            # taken it), so `after_own_queue` members are free for the pool too.
            free = [FreeSeat(sid, s.since or rt.clock.now()) for sid, s in seats.items()]
            sid = choose_specialist(free, members, seats)
            if sid is None:
                return
            live = rt.live.get(attempt_id)
            del self.waiting[attempt_id]
            if live is None:
                continue
            self._give(live, seats[sid], server, w.channel)

    def _give(self, live: LiveCall, seat: Seat, server: PbxServer, channel: str) -> None:
        rt = self.rt
        rt.record(seat, seat.dial(rt.clock.now(), live.attempt_id))
        live.specialist_id, live.seat = seat.specialist_id, seat.device
        log.info("attempt %s: pooled call answered, given to %s", live.attempt_id, seat.device)
        rt.spawn(self._connect(server, live, seat, channel))

    async def _connect(self, server: PbxServer, live: LiveCall, seat: Seat, channel: str) -> None:
        await hand_over(
            server,
            live,
            seat,
            channel,
            clock=self.rt.clock,
            record=self.rt.record,
            action_timeout=self.rt.config.action_timeout,
            seat_timeout=server.spec.plan.seat_answer_seconds,
        )


def _settings(c: CampaignInfo) -> PacingSettings:
    return PacingSettings(c.pooled, c.pacing, c.pacing_ratio_cap, c.target_abandon, c.abandon_cap)


__all__ = ["PoolDialer", "Waiting", "is_pooled"]
