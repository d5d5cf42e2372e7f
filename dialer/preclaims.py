"""Pre-claims: a seat's next lead claimed while it wraps up, so that "ready" goes straight to
the Originate with no database work in between.

A pre-claim is a claim like any other (committed before anything is dialled, lead and number
in flight). It is kept until the seat is ready, and released (not_sent, which does not count
as a call) if the seat pauses or signs out first, if the campaign changed, or if the calling
window closed meanwhile. Part of the seat dialer (`dialer.seat_dialer`), which wakes it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from dialer.campaigns import CampaignInfo, CampaignRegistry
from dialer.claims import Claims
from dialer.outcomes import NOT_SENT
from dialer.results import Finished
from dialer.runtime import DialerRuntime
from dialer.seats import Seat
from dialer.state import LiveCall

log = logging.getLogger(__name__)


class PreClaims:
    def __init__(
        self,
        rt: DialerRuntime,
        registry: CampaignRegistry,
        claims: Claims,
        *,
        wake: Callable[[int], None],
        wake_later: Callable[[int, float], None],
    ) -> None:
        self.rt = rt
        self.registry = registry
        self.claims = claims
        self._wake = wake
        self._wake_later = wake_later
        # Next leads claimed during wrap-up (seat -> attempt), claims under way, and seats
        # whose pre-claimed lead is being dialled.
        self.held: dict[int, LiveCall] = {}
        self.claiming: dict[int, asyncio.Task[None]] = {}
        self.dialling: set[int] = set()
        self._slots = asyncio.Semaphore(rt.config.claim_parallelism)

    def has(self, sid: int) -> bool:
        """The seat's next lead is claimed, or being claimed."""
        return sid in self.held or sid in self.claiming

    def later(self, sid: int) -> None:
        """The seat started its wrap-up: claim its next lead in the background."""
        if not self.rt.config.preclaim or not self.rt.running or self.has(sid):
            return
        self.claiming[sid] = self.rt.tasks.job(self._preclaim(sid))

    async def _preclaim(self, sid: int) -> None:
        rt = self.rt
        try:
            async with self._slots:
                seat = rt.seats.get(sid)
                kinds = self.registry.specialist_kinds()
                if seat is None or not kinds or not rt.will_dial(seat):
                    return
                server = rt.server_for_seat(seat.device)
                if not server.usable:
                    return
                got = await self.claims.claim(seat, kinds, server, rt.clock.now(), pre=True)
                if isinstance(got, str):
                    return
                live, _ = got
                if rt.running and rt.will_dial(seat):
                    self.held[sid] = live
                    return
                await self.release(live, "seat paused or signed out before dialling")
        finally:
            self.claiming.pop(sid, None)

    def dial_soon(self, sid: int) -> None:
        """The seat is ready: dial its pre-claimed lead (no queue, no claim slot to wait
        for behind other seats' claims)."""
        if sid not in self.dialling:
            self.dialling.add(sid)
            self.rt.spawn(self._dial(sid))

    async def _dial(self, sid: int) -> None:
        """No database work before the Originate; the window is checked again at the moment
        of sending."""
        todo: tuple[LiveCall, CampaignInfo] | None = None
        try:
            task = self.claiming.get(sid)
            if task is not None:
                await asyncio.wait([task])  # ready before the pre-claim committed
            live = self.held.pop(sid, None)
            seat = self.rt.seats.get(sid)
            if live is None:  # nothing was pre-claimed: the ordinary claim
                if seat is not None and seat.available:
                    self.dialling.discard(sid)
                    self._wake(sid)
                return
            todo = await self._use(seat, live)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("dialling the pre-claimed lead of specialist %s failed", sid)
            self._wake_later(sid, self.rt.config.idle_recheck_seconds)
        finally:
            self.dialling.discard(sid)
        if todo is not None:
            await self.rt.send(*todo)

    def _stale(self, live: LiveCall, now: datetime) -> tuple[str | None, datetime | None]:
        """Why a pre-claimed lead may no longer be dialled (None: it may), and when it is
        due again."""
        camp = self.registry.get(live.campaign_id or -1)
        windows = self.rt.windows
        if camp is None or not camp.running or camp.mode != live.mode:
            return "campaign stopped or changed before dialling", None
        if not self.rt.servers[live.server].usable:
            return "AMI link down or Asterisk shutting down: not dialled", None
        if not windows.is_open(live.kind, live.tz, now):
            retry_at = windows.hours_for(live.kind).next_window_start(now, live.tz)
            return "calling window closed before the seat was ready", retry_at
        return None, None

    async def _use(self, seat: Seat | None, live: LiveCall) -> tuple[LiveCall, CampaignInfo] | None:
        if seat is None or not seat.available:
            if seat is not None and self.rt.will_dial(seat):
                self.held[seat.specialist_id] = live  # woken early: keep it
            else:
                await self.release(live, "seat paused or signed out before dialling")
            return None
        camp = self.registry.get(live.campaign_id or -1)
        reason, retry_at = self._stale(live, self.rt.clock.now())
        if reason is not None or camp is None:
            await self.release(live, reason or "campaign stopped before dialling", retry_at)
            if seat.available:
                self._wake(seat.specialist_id)  # another lead may be callable
            return None
        self.rt.record(seat, seat.dial(self.rt.clock.now(), live.attempt_id))
        return live, camp

    async def release(self, live: LiveCall, reason: str, retry_at: datetime | None = None) -> None:
        """End a pre-claimed attempt that was never dialled: its lead and number are free
        again at once (not_sent does not count as a call); the lead is due at `retry_at`
        (None: at once)."""
        self.rt.stats["preclaim_released"] += 1
        log.info(
            "attempt %s (lead %s): pre-claim released: %s", live.attempt_id, live.lead_id, reason
        )
        await self.rt.finish(
            live, Finished(live.attempt_id, NOT_SENT, reason=reason, retry_at=retry_at)
        )

    async def drop(self, sid: int, reason: str) -> None:
        """The seat will not dial (paused, signed out): release its pre-claimed lead now,
        after any pre-claim under way has committed."""
        task = self.claiming.get(sid)
        if task is not None:
            await asyncio.wait([task])
        seat = self.rt.seats.get(sid)
        if seat is not None and self.rt.will_dial(seat):
            return
        live = self.held.pop(sid, None)
        if live is not None:
            await self.release(live, reason)

    async def release_all(self, reason: str) -> None:
        """The dialer stops: the leads never dialled are free for the next start."""
        for sid in list(self.held):
            try:
                await self.release(self.held.pop(sid), reason)
            except Exception:
                log.debug("pre-claim of specialist %s not released", sid, exc_info=True)


__all__ = ["PreClaims"]
