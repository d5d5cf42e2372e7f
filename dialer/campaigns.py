"""The campaign registry and the calling windows as the dialer applies them.

`CampaignRegistry` keeps the campaigns as this process knows them (reloaded by the
housekeeping, changed by a supervisor) and publishes `CampaignChanged` on the bus for each
one that changed; the campaign runner and the seat dialer react to it. `CallingWindows`
answers "may a call of this kind start now, and how long may it ring" (pure over `now`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.domain import CampaignChanged
from dialer.exceptions import UnknownCampaign
from dialer.messagebus import MessageBus
from dialer.models import Campaign, CampaignKind, DialMode
from dialer.originate import DialPlan
from schedules.windows import CallingHours, CallingPlan, ring_time

if TYPE_CHECKING:
    from dialer.engine import DialerConfig

SPECIALIST_MODES = frozenset({DialMode.SEAT_FIRST, DialMode.CUSTOMER_FIRST, DialMode.PREVIEW})
DEFAULT_MODES = {
    CampaignKind.RENEWAL: DialMode.SEAT_FIRST,
    CampaignKind.LAPSED: DialMode.SEAT_FIRST,
    CampaignKind.TRIAL: DialMode.SEAT_FIRST,
    CampaignKind.CALLBACK: DialMode.AUTOMATIC,
    CampaignKind.REMINDER: DialMode.AUTOMATIC,
}


@dataclass(slots=True)
class CampaignInfo:
    id: int
    name: str
    kind: str
    mode: str
    running: bool
    concurrency: int
    trunk: str
    trunk_max_calls: int
    trunk_max_cps: float
    caller_id: str | None
    message: str | None
    # Pooled predictive pacing (dialer/pool.py, dialer/predictive.py).
    pooled: bool = False
    pacing: str = "progressive"
    pacing_ratio_cap: float = 3.0
    target_abandon: float = 0.02
    abandon_cap: float = 0.03

    @classmethod
    def of(cls, c: Campaign) -> CampaignInfo:
        return cls(
            c.id,
            c.name,
            c.kind,
            c.mode,
            c.running,
            c.concurrency,
            c.trunk,
            c.trunk_max_calls,
            c.trunk_max_cps,
            c.caller_id,
            c.message,
            c.pooled,
            c.pacing,
            c.pacing_ratio_cap,
            c.target_abandon,
            c.abandon_cap,
        )


def campaign_for(kind: str, kinds: Mapping[str, CampaignInfo]) -> CampaignInfo:
    """The campaign a specialist's call of `kind` runs under (`kinds` is not empty). A
    callback booked to a specialist (key 2) has no specialist campaign of its own: it takes
    the renewal campaign's mode, trunk and caller id (else any running one's)."""
    return kinds.get(kind) or kinds.get(CampaignKind.RENEWAL.value) or next(iter(kinds.values()))


class CampaignRegistry:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bus: MessageBus,
        reminder_message: str | None,
    ) -> None:
        self.sessions = sessions
        self.bus = bus
        self.reminder_message = reminder_message
        self._campaigns: dict[int, CampaignInfo] = {}

    def all(self) -> list[CampaignInfo]:
        return list(self._campaigns.values())

    def get(self, campaign_id: int) -> CampaignInfo | None:
        return self._campaigns.get(campaign_id)

    async def ensure_defaults(self) -> None:
        """One campaign per kind, stopped, unless the database has them already."""
        async with self.sessions() as s:
            have = set((await s.scalars(select(Campaign.kind))).all())
            for kind, mode in DEFAULT_MODES.items():
                if kind.value not in have:
                    s.add(
                        Campaign(
                            name=kind.value,
                            kind=kind.value,
                            mode=mode.value,
                            running=False,
                            message=self.reminder_message
                            if kind is CampaignKind.REMINDER
                            else None,
                        )
                    )
            try:
                await s.commit()
            except IntegrityError:  # another process seeded them first
                await s.rollback()

    async def load(self) -> None:
        async with self.sessions() as s:
            rows = (await s.scalars(select(Campaign).order_by(Campaign.id))).all()
        fresh = {c.id: CampaignInfo.of(c) for c in rows}
        changed = [c for cid, c in fresh.items() if self._campaigns.get(cid) != c]
        self._campaigns = fresh
        for c in changed:
            self.bus.publish(CampaignChanged(c))

    async def set(self, name_or_id: str | int, **changes: Any) -> CampaignInfo:
        async with self.sessions() as s:
            q = select(Campaign)
            q = (
                q.where(Campaign.id == name_or_id)
                if isinstance(name_or_id, int)
                else q.where(Campaign.name == name_or_id)
            )
            camp = (await s.scalars(q)).one_or_none()
            if camp is None:
                raise UnknownCampaign(f"no campaign {name_or_id!r}")
            for k, v in changes.items():
                if v is not None:
                    setattr(camp, k, v)
            await s.commit()
            info = CampaignInfo.of(camp)
        self._campaigns[info.id] = info
        self.bus.publish(CampaignChanged(info))
        return info

    def specialist_kinds(self) -> dict[str, CampaignInfo]:
        out: dict[str, CampaignInfo] = {}
        for c in self._campaigns.values():
            if c.running and c.mode in SPECIALIST_MODES and c.kind not in out:
                out[c.kind] = c
        return out


class CallingWindows:
    """The calling windows per campaign kind, with the dialer's margins."""

    def __init__(self, plan: CallingPlan, config: DialerConfig) -> None:
        self.plan = plan
        self.config = config

    def hours_for(self, kind: str) -> CallingHours:
        return self.plan.for_kind(kind)

    def day_start(self, now: datetime) -> datetime:
        """Where the daily cap per number counts from: the start of the desk's day (its time
        zone's; calls happen only inside windows, so for a customer within a few hours of
        it that is the customer's day too)."""
        return self.plan.default.day_start(now)

    def ringable(self, kind: str, tz: str, now: datetime) -> timedelta | None:
        """How long a phone may ring for a call sent now: what is left of the window, less
        the time the call takes to reach the phone (None: closed)."""
        left = self.plan.for_kind(kind).closes_in(now, tz)
        return None if left is None else left - timedelta(seconds=self.config.last_call_margin)

    def is_open(self, kind: str, tz: str, now: datetime) -> bool:
        """Open, with at least the minimum ring time left: a call started later would either
        ring after the window has closed or ring too briefly to be answered."""
        left = self.ringable(kind, tz, now)
        return left is not None and left >= timedelta(seconds=self.config.min_ring_seconds)

    def ring_ms(self, kind: str, tz: str, now: datetime, plan: DialPlan) -> int | None:
        """The ring time (ms) of a call sent at `now`: the dial plan's, cut to what is left of
        the window so that no phone rings after it closes; None: too little left to send."""
        ring = ring_time(
            self.ringable(kind, tz, now),
            timedelta(milliseconds=plan.ring_timeout_ms),
            timedelta(seconds=self.config.min_ring_seconds),
        )
        return None if ring is None else int(ring.total_seconds() * 1000)


__all__ = [
    "SPECIALIST_MODES",
    "CallingWindows",
    "CampaignInfo",
    "CampaignRegistry",
    "campaign_for",
]
