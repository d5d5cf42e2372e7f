"""Pooled campaigns: who takes an answered call, what happens to an abandoned one, and the
record of live answers and abandons per day behind the rolling 30-day abandon rate.

Pure parts (plain data in, a choice out): `pacing_limits` (a campaign's settings as the
pacer's limits, checked against the legal maximum), `choose_specialist` (the free pool
member who has waited longest, honouring each member's share), `abandoned_lead` (the lead of
an abandoned call: booked as an appointment in a pool specialist's queue through the one
booking rule, schedules/callbacks.py, and the one ownership rule, schedules/ownership.py; not
called by the pacer again that day). The rest reads and writes the tables.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.exceptions import DialerError
from dialer.models import Pacing, PoolAbandonDay, PoolMember, PoolShare
from dialer.predictive import ABANDON_DAYS, AbandonLedger, DayCount, PacingLimits
from schedules.callbacks import Bookable, book_callback, callback_time
from schedules.models import DistributionRun
from schedules.ownership import Owned, owner_change
from schedules.windows import CallingHours

log = logging.getLogger(__name__)

ABANDON_REASON = "pool_abandoned"  # the owner change's reason in the audit row
ANSWER_REASON = "pool_answered"


class PoolSettingError(DialerError):
    """A pooled campaign's pacing settings that the law or the supervisor's caps refuse."""


@dataclass(frozen=True, slots=True)
class PacingSettings:
    pooled: bool
    pacing: str
    pacing_ratio_cap: float
    target_abandon: float
    abandon_cap: float


def pacing_limits(c: PacingSettings, legal_max: float) -> PacingLimits:
    """The pacer's limits for a campaign; a setting the law or the caps refuse is an error
    that says what to change."""
    try:
        return PacingLimits(
            abandon_cap=c.abandon_cap,
            target_abandon=c.target_abandon,
            ratio_cap=c.pacing_ratio_cap,
            legal_max=legal_max,
            predictive=c.pooled and c.pacing == Pacing.PREDICTIVE.value,
        )
    except ValueError as e:
        raise PoolSettingError(str(e)) from e


@dataclass(frozen=True, slots=True)
class FreeSeat:
    specialist_id: int
    idle_since: datetime


def choose_specialist(
    free: Sequence[FreeSeat], members: Mapping[int, str], own_queue_empty: Iterable[int]
) -> int | None:
    """Who takes an answered call of the pool: of the free members who may take pool work
    now (share `always`, or `after_own_queue` with nothing left to call in their own queue
    this window), the one who has waited longest. None: nobody (the call is abandoned
    unless someone frees up within the 2 s grace)."""
    empty = set(own_queue_empty)
    able = [
        s
        for s in free
        if s.specialist_id in members
        and (members[s.specialist_id] == PoolShare.ALWAYS.value or s.specialist_id in empty)
    ]
    if not able:
        return None
    return min(able, key=lambda s: (s.idle_since, s.specialist_id)).specialist_id


class PoolLead(Owned, Bookable, Protocol):
    """A lead (or its plain copy) as the pool handles it."""


def answered_lead(
    lead: Owned, specialist_id: int, *, day: date, now: datetime
) -> DistributionRun | None:
    """A pool call answered and connected: the lead now belongs to the specialist who took
    it; the audit row to add (None: it was theirs already)."""
    return owner_change(lead, specialist_id, day=day, reason=ANSWER_REASON, now=now)


def abandon_appointment(now: datetime, hours: CallingHours, tz: str | None = None) -> datetime:
    """When an abandoned customer is called back: the first calling slot of a later day (the
    pacer does not call the lead again the same day), by the one booking rule."""
    tomorrow = hours.day_start(now + timedelta(days=1), tz)
    when, _ = callback_time(tomorrow, now=now, hours=hours, tz=tz)
    return when


def abandoned_lead(
    lead: PoolLead, specialist_id: int, *, when: datetime, day: date, now: datetime
) -> DistributionRun | None:
    """An abandoned pool call: the lead goes to `specialist_id`'s queue as an appointment at
    `when` (`abandon_appointment`); the audit row of the owner change, if any."""
    run = owner_change(lead, specialist_id, day=day, reason=ABANDON_REASON, now=now)
    book_callback(lead, when)
    return run


# -- the tables ------------------------------------------------------------------------------


async def record_answer(
    session: AsyncSession, campaign_id: int, day: date, *, abandoned: bool
) -> None:
    """Count one live answer (and an abandon) of a pooled campaign; the caller commits."""
    row = await session.get(PoolAbandonDay, (campaign_id, day), with_for_update=True)
    if row is None:
        session.add(
            PoolAbandonDay(campaign_id=campaign_id, day=day, answered=1, abandoned=int(abandoned))
        )
        return
    await session.execute(
        update(PoolAbandonDay)
        .where(PoolAbandonDay.campaign_id == campaign_id, PoolAbandonDay.day == day)
        .values(
            answered=PoolAbandonDay.answered + 1,
            abandoned=PoolAbandonDay.abandoned + int(abandoned),
        )
    )


async def load_ledger(session: AsyncSession, campaign_id: int, today: date) -> AbandonLedger:
    """The campaign's last 30 days, for its pacer (a restart keeps today's budget)."""
    first = today - timedelta(days=ABANDON_DAYS - 1)
    rows = await session.scalars(
        select(PoolAbandonDay).where(
            PoolAbandonDay.campaign_id == campaign_id, PoolAbandonDay.day >= first
        )
    )
    return AbandonLedger({r.day: DayCount(r.answered, r.abandoned) for r in rows})


async def abandon_rates(
    session: AsyncSession, campaign_id: int, today: date
) -> dict[str, float | int]:
    """Today's and the rolling 30 days' live answers, abandons and rates."""
    ledger = await load_ledger(session, campaign_id, today)
    day, month = ledger.day(today), ledger.window(today)
    return {
        "answered_today": day.answered,
        "abandoned_today": day.abandoned,
        "abandon_rate_today": day.rate,
        "answered_30d": month.answered,
        "abandoned_30d": month.abandoned,
        "abandon_rate_30d": month.rate,
    }


async def pool_members(session: AsyncSession, campaign_id: int) -> dict[int, str]:
    rows = await session.scalars(select(PoolMember).where(PoolMember.campaign_id == campaign_id))
    return {m.specialist_id: m.share for m in rows}


async def set_pool_members(
    session: AsyncSession, campaign_id: int, members: Mapping[int, str]
) -> None:
    """Replace the pool of a campaign; the caller commits."""
    await session.execute(delete(PoolMember).where(PoolMember.campaign_id == campaign_id))
    for sid, share in members.items():
        session.add(
            PoolMember(campaign_id=campaign_id, specialist_id=sid, share=PoolShare(share).value)
        )
    log.info("pool of campaign %s: %s specialists", campaign_id, len(members))


__all__ = [
    "ABANDON_REASON",
    "ANSWER_REASON",
    "FreeSeat",
    "PacingSettings",
    "PoolSettingError",
    "abandon_appointment",
    "abandon_rates",
    "abandoned_lead",
    "answered_lead",
    "choose_specialist",
    "load_ledger",
    "pacing_limits",
    "pool_members",
    "record_answer",
    "set_pool_members",
]
