"""Changing a lead's owner (所属人员): the one function every single owner change goes through.

The daily distribution (随机等额分配) writes owners in bulk and records the deal as one
`DistributionRun` row. Every other change (a customer who pressed 2 and was connected to a
specialist, a callback booked to the least-loaded specialist) hands one lead to one
specialist; `change_owner` records it the same way, as a one-lead deal on that day (seed 0:
not shuffled), with the reason in the specialist's counts, so that "who got this lead, when
and why" has one answer in one table.
"""

from __future__ import annotations

import os
import socket
from datetime import date, datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from schedules.models import DistributionRun


class Owned(Protocol):
    """A lead, or the plain copy of one a pure decision works on (dialer.decisions)."""

    id: int
    owner_id: int | None
    distributed_on: date | None


def instance() -> str:
    """Which worker wrote an audit row."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_change(
    lead: Owned, owner_id: int, *, day: date, reason: str, now: datetime
) -> DistributionRun | None:
    """Make `owner_id` the lead's owner from `day` (its 发放日期); the audit row to add, or
    None (nothing changed) when the lead is already theirs. Pure: the caller adds the row."""
    if lead.owner_id == owner_id:
        return None
    previous = lead.owner_id
    lead.owner_id = owner_id
    lead.distributed_on = day
    return DistributionRun(
        day=day,
        started_at=now,
        finished_at=now,
        seed=0,
        instance=instance(),
        due_count=1,
        dealt_count=1,
        counts={str(owner_id): {"new": 1, "reason": reason, "previous_owner": previous}},
        skipped=[],
        allocation={str(owner_id): [lead.id]},
    )


def change_owner(
    session: AsyncSession, lead: Owned, owner_id: int, *, day: date, reason: str, now: datetime
) -> bool:
    """Make `owner_id` the lead's owner from `day` (its 发放日期) and record the change.

    Returns False, and records nothing, when the lead is already theirs."""
    run = owner_change(lead, owner_id, day=day, reason=reason, now=now)
    if run is None:
        return False
    session.add(run)
    return True


__all__ = ["Owned", "change_owner", "instance", "owner_change"]
