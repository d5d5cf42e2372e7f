"""Daily distribution, random equal allocation (随机等额分配): the pure part.

Today's due leads are dealt at random (a seeded shuffle, the seed recorded) so that every eligible
specialist's count for the day (what they already got today included) differs by at most one.
When earlier runs of the same day left the counts uneven by more than the new leads can mend,
the new leads go to the lowest counts first ("water-filling"), which is the closest to equal
that can be reached without taking leads back.

Deterministic: the same seed, lead ids, specialists and prior counts give the same allocation
(ids are sorted first, so the order they were fetched in does not matter).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from schedules.holidays import HolidayCalendar
from schedules.windows import zone


@dataclass(frozen=True)
class Allocation:
    seed: int
    lead_ids: list[int]  # in id order
    owners: list[int]  # parallel to lead_ids: the shuffled deal
    new: dict[int, int]  # specialist -> leads dealt by this allocation
    totals: dict[int, int]  # specialist -> today's count afterwards (earlier runs included)

    def by_specialist(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {s: [] for s in self.new}
        for lead, owner in zip(self.lead_ids, self.owners, strict=True):
            out[owner].append(lead)
        return out

    @property
    def spread(self) -> int:
        """max - min of today's totals over the eligible specialists."""
        return max(self.totals.values()) - min(self.totals.values()) if self.totals else 0


def new_seed() -> int:
    return random.SystemRandom().getrandbits(62)


def allocate(
    lead_ids: Sequence[int],
    specialists: Sequence[int],
    seed: int,
    already: Mapping[int, int] | None = None,
) -> Allocation:
    """Deal `lead_ids` to `specialists` as evenly as possible, on top of `already`."""
    rng = random.Random(seed)
    ids = sorted(lead_ids)
    specs = sorted(set(specialists))
    rng.shuffle(specs)  # who gets the odd lead is part of the draw
    base = {s: (already or {}).get(s, 0) for s in specs}
    if not specs:
        return Allocation(seed, [], [], {}, {})

    rank = {s: i for i, s in enumerate(specs)}
    order = sorted(specs, key=lambda s: (base[s], rank[s]))
    remaining = len(ids)
    level = base[order[0]]
    group = 1
    while True:
        while group < len(order) and base[order[group]] <= level:
            group += 1
        if group == len(order):
            break
        need = group * (base[order[group]] - level)
        if need > remaining:
            break
        remaining -= need
        level = base[order[group]]
    each, extra = divmod(remaining, group)
    lowest = sorted(order[:group], key=lambda s: rank[s])
    target = {s: level + each + (1 if i < extra else 0) for i, s in enumerate(lowest)}

    new: dict[int, int] = {}
    owners: list[int] = []
    for s in specs:
        n = target.get(s, base[s]) - base[s]
        new[s] = n
        owners.extend([s] * n)
    # Shuffling the deal instead of the leads is the same draw (a uniformly random assignment
    # with these counts) and keeps the leads in id order, which the bulk write wants.
    rng.shuffle(owners)
    totals = {s: base[s] + new[s] for s in specs}
    return Allocation(seed, ids, owners, new, totals)


def result_deadline(
    distributed_on: date, calendar: HolidayCalendar, deadline: time, tz: str
) -> datetime:
    """When a lead handed out on `distributed_on` must carry a contact result: `deadline`
    (17:00 by default) on the next working day, in the desk's time zone (UTC result).

    "The day after" is taken as the next *working* day, so Friday's leads are due Monday
    17:00, not Saturday, when nobody is at the desk.
    """
    nxt = calendar.next_working_day(distributed_on)
    return datetime.combine(nxt, deadline, tzinfo=zone(tz)).astimezone(UTC)


def overdue_cutoff(now: datetime, calendar: HolidayCalendar, deadline: time, tz: str) -> date:
    """The latest distribution date whose result deadline has passed at `now`: a lead handed
    out on or before it, still without a contact result, blocks its specialist."""
    d = now.astimezone(zone(tz)).date()
    for _ in range(400):
        if result_deadline(d, calendar, deadline, tz) <= now:
            return d
        d -= timedelta(days=1)
    raise ValueError("no result deadline within 400 days")  # pragma: no cover


# A distribution for a day further than this from today needs `force`: its timeline would
# close leads by that day's dates (policies "lapsed" that have not yet, renewal leads taken
# back from their specialists), and its deal would stamp leads with a day whose result
# deadline is long past or far away.
NEAR_DAYS = 3


def far_day_reason(day: date, today: date, near_days: int = NEAR_DAYS) -> str | None:
    """Why a run for `day` needs `force` (None when `day` is within `near_days` of today)."""
    away = (day - today).days
    if abs(away) <= near_days:
        return None
    when = f"{away} days after" if away > 0 else f"{-away} days before"
    return (
        f"{day} is {when} today ({today}); a distribution runs for today or a day within "
        f"{near_days} days of it. Check what it would close with --dry-run (API: "
        '"dry_run": true), then repeat with --force (API: "force": true) if it is meant'
    )
