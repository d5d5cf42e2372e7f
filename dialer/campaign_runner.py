"""The campaign runner unit: automatic campaigns (reminders, callbacks) call on their own,
and pooled campaigns are paced by their pacer (`dialer.pool_dialer.PoolDialer`, which the
runner owns and lends its claims).

One loop per running automatic campaign (owned by the task owner): each round claims as many
leads as the campaign's concurrency and its trunk allow, commits their attempts (write before
dial) and hands them to the originator (`SendCall`), which spaces them by the trunk's rate.
The loop sleeps a tick, or less when the campaign is woken: a call of it settled
(`AttemptSettled`), the campaign changed (`CampaignChanged`), a link came back
(`PbxLinkBack`)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from dialer import locks, queues
from dialer.campaigns import CampaignInfo, CampaignRegistry
from dialer.claims import claimed
from dialer.domain import (
    AttemptRestored,
    AttemptSettled,
    CallPaced,
    CampaignChanged,
    PbxLinkBack,
)
from dialer.models import CampaignKind, DialMode
from dialer.pacing import campaign_capacity
from dialer.pool_dialer import PoolDialer
from dialer.runtime import DialerRuntime
from dialer.state import LiveCall, PbxServer
from dialer.tasks import nap
from schedules.timeline import TimelineRules
from schedules.windows import CallingPlan

log = logging.getLogger(__name__)


class CampaignRunner:
    def __init__(
        self,
        rt: DialerRuntime,
        registry: CampaignRegistry,
        plan: CallingPlan,
        timeline: TimelineRules,
    ) -> None:
        self.rt = rt
        self.registry = registry
        self.plan = plan
        self.timeline = timeline  # the reminder's T−30 (schedules.timeline)
        self.active: Counter[int] = Counter()
        self.waiting: Counter[int] = Counter()  # claimed, not yet past the trunk
        self._wake: dict[int, asyncio.Event] = {}
        # Rebuilt at start for the database (`reset`).
        self.queues = queues.AutomaticQueues(lock=False, daily_cap=rt.config.daily_calls_per_number)
        # Pooled campaigns: the pacer's loops, on this runner's claims.
        self.pool = PoolDialer(rt, registry, self.claim, self.queues)
        bus = rt.bus
        bus.subscribe(CampaignChanged, self._on_campaign_changed)
        bus.subscribe(AttemptSettled, self._on_settled)
        bus.subscribe(AttemptRestored, self._on_restored)
        bus.subscribe(CallPaced, self._on_paced)
        bus.subscribe(PbxLinkBack, self._on_link_back)

    def _on_campaign_changed(self, e: CampaignChanged) -> None:
        c = e.campaign
        if not self.rt.running or c.mode != DialMode.AUTOMATIC.value or not c.running:
            return
        task = self.rt.tasks.campaigns.get(c.id)
        if task is None or task.done():
            self._wake[c.id] = asyncio.Event()
            self.rt.tasks.campaign(c.id, self._loop(c.id))
        else:
            self._wake[c.id].set()

    def _on_settled(self, e: AttemptSettled) -> None:
        live = e.live
        if live.campaign_id is None or live.mode != DialMode.AUTOMATIC.value:
            return
        self.active[live.campaign_id] = max(0, self.active[live.campaign_id] - 1)
        wake = self._wake.get(live.campaign_id)
        if wake is not None:
            wake.set()

    def _on_restored(self, e: AttemptRestored) -> None:
        if e.live.campaign_id is not None:
            self.active[e.live.campaign_id] += 1

    def _on_paced(self, e: CallPaced) -> None:
        self.waiting[e.campaign_id] -= 1

    def _on_link_back(self, e: PbxLinkBack) -> None:
        self.wake_all()

    def wake_all(self) -> None:
        """Every loop looks again now (a link came back; at stop, they see it and return)."""
        for wake in self._wake.values():
            wake.set()
        for cid in list(self.pool.pacers):
            self.pool.wake(cid)

    async def _loop(self, campaign_id: int) -> None:
        tick = self.rt.config.automatic_tick_seconds
        clock = self.rt.clock
        while self.rt.running:
            camp = self.registry.get(campaign_id)
            if camp is None or not camp.running:
                return
            wake = self._wake.setdefault(campaign_id, asyncio.Event())
            wake.clear()
            claimed = 0
            try:
                claimed = await self._round(camp)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("campaign %s: round failed", camp.name)
            if claimed:
                # More work is likely: claim again as soon as the trunk has room.
                await clock.sleep(min(tick, 1.0 / max(camp.trunk_max_cps, 0.1)))
                continue
            await nap(clock, tick, wake)

    def _room(self, camp: CampaignInfo) -> tuple[int, PbxServer | None]:
        """How many calls this round may claim, and on which server."""
        cap = campaign_capacity(camp.concurrency, self.active[camp.id])
        server = self.rt.next_server()
        if cap <= 0 or server is None:
            return 0, None
        trunk = server.trunk(camp.trunk, camp.trunk_max_calls, camp.trunk_max_cps)
        cap = min(cap, trunk.max_calls - trunk.active)
        # Claim no more than the trunk can start in about one tick: an attempt committed
        # long before its turn would sit in flight, blocking its lead and number for nothing.
        cap = min(
            cap,
            int(camp.trunk_max_cps * self.rt.config.automatic_tick_seconds)
            + 1
            - self.waiting[camp.id],
        )
        return cap, server

    def reset(self) -> None:
        self.queues.reset(lock=self.rt.pg)

    def _queue(self, camp: CampaignInfo, now: datetime) -> queues.Fetch:
        day_start = self.rt.windows.day_start(now)
        if camp.kind == CampaignKind.REMINDER.value:
            today = self.plan.for_kind(camp.kind).local_date(now)
            return self.queues.reminder(now, today, self.timeline, day_start)
        return self.queues.callback(now, day_start)

    async def _round(self, camp: CampaignInfo) -> int:
        """Claim and start a round of automatic calls; returns how many were claimed."""
        cap, server = self._room(camp)
        if cap <= 0 or server is None:
            return 0
        lives = await self.claim(camp, server, cap, self._queue(camp, self.rt.clock.now()))
        for live in lives:
            self.rt.live[live.attempt_id] = live
            self.active[camp.id] += 1
            self.waiting[camp.id] += 1
        self.rt.stats["claimed"] += len(lives)
        # Sent in the background, spaced by the trunk limiter; the next round claims while
        # these wait for their turn (at most about one tick's worth wait at any time).
        for live in lives:
            self.rt.spawn(self.rt.send(live, camp))
        return len(lives)

    async def claim(
        self, camp: CampaignInfo, server: PbxServer, cap: int, queue: queues.Fetch
    ) -> list[LiveCall]:
        """Up to `cap` leads of `queue` whose window is open, their attempts committed (write
        before you dial); the automatic rounds and the pooled campaigns' rounds."""
        rt = self.rt
        now = rt.clock.now()
        lives: list[LiveCall] = []
        async with rt.write_guard(locks.RESULTS), rt.sessions() as s:
            cands = await queues.pick(
                s,
                queue,
                now=now,
                window_kind=lambda _c: camp.kind,
                is_open=rt.windows.is_open,
                limit=max(rt.config.claim_batch, cap * 2),
                want=cap,
            )
            if not cands:
                await s.rollback()
                return []
            owners = await queues.customer_owners(s, cands)
            for c in cands:
                row, live = claimed(
                    c, camp, server, now, kind=camp.kind, owner_id=owners.get(c.lead_id)
                )
                s.add(row)
                lives.append(live)
            try:
                await s.commit()
            except IntegrityError:
                await s.rollback()
                return []
        return lives


__all__ = ["CampaignRunner"]
