"""The calendar's services: the morning's day of work, and the calendar for people.

`run_day` is the daily job: the timeline (`schedules.timeline_run`), then the distribution
(`schedules.distribution_run`), in one transaction. `DeskService` answers the command line and
the supervisors' API: when calls may be made, and the day's distribution on demand. The
lapsed lists for the branches are `schedules.lapsed`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.clock import Clock
from crm_sync.models import CampaignKind
from schedules.config import DeskCalendar
from schedules.distribution import far_day_reason
from schedules.distribution_run import DistributionReport, distribute_in, run_distribution
from schedules.exceptions import DistributionDayRefused
from schedules.models import DistributionRun
from schedules.timeline import distribution_at
from schedules.timeline_run import TimelineReport, timeline_in
from schedules.windows import fmt_local, zone


async def run_day(
    sessions: async_sessionmaker[AsyncSession],
    *,
    day: date,
    now: datetime,
    desk: DeskCalendar,
    seed: int | None = None,
    dry_run: bool = False,
) -> tuple[TimelineReport, DistributionReport]:
    """The daily job: the timeline, then the distribution, in one transaction (what the
    service's scheduler runs at `distribution_time` on each calling day). With `dry_run` both
    are computed and rolled back: the report shows what the day would deal."""
    async with sessions() as session:
        timeline = await timeline_in(session, day=day, now=now, desk=desk)
        report = await distribute_in(
            session, day=day, now=now, desk=desk, seed=seed, dry_run=dry_run
        )
        if not dry_run:
            await session.commit()
    return timeline, report


# ---------------------------------------------------------------------------------------------
# What the CLI and the API ask of the calendar
# ---------------------------------------------------------------------------------------------

# Calling hours exist per lead kind, and for the reminder campaign (its own window setting).
CAMPAIGN_KINDS = tuple(k.value for k in CampaignKind)
MAX_SLOTS = 50


@dataclass(frozen=True)
class DayWork:
    """One run of the day's work as asked for: the timeline (unless skipped), the deal, and
    notes for the person who asked (another day's deadlines, a closed day)."""

    day: date
    distribution: DistributionReport
    timeline: TimelineReport | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.timeline is not None:
            out["timeline"] = self.timeline.to_dict()
        out["distribution"] = self.distribution.to_dict()
        out["notes"] = list(self.notes)
        return out


class DeskService:
    """The calendar for people: when calls may be made, and the day's distribution on demand
    (the command line and the supervisors' API share it; the service's morning job calls
    `run_day` directly)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], desk: DeskCalendar, clock: Clock
    ) -> None:
        self.sessions = sessions
        self.desk = desk
        self.clock = clock

    def calendar(self, kind: str, tz: str | None = None, slots: int = 5) -> dict[str, Any]:
        """Is `kind`'s window open now in `tz`, how long until it closes, when it next opens,
        and its next `slots` openings (the callback picker's choices)."""
        if kind not in CAMPAIGN_KINDS:
            raise ValueError(f"unknown campaign kind {kind!r}: one of {', '.join(CAMPAIGN_KINDS)}")
        if not 1 <= slots <= MAX_SLOTS:
            raise ValueError(f"slots must be between 1 and {MAX_SLOTS}")
        hours = self.desk.hours(kind)
        zone_name = tz or hours.tz
        try:
            zone(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {zone_name!r} (an IANA name such as Asia/Shanghai)"
            ) from None
        now = self.clock.now()
        closes_in = hours.closes_in(now, zone_name)
        return {
            "kind": kind,
            "tz": zone_name,
            "now": now.astimezone(UTC).isoformat(),
            "calling_day": hours.is_calling_day(hours.local_date(now, zone_name)),
            "open": closes_in is not None,
            "closes_in_seconds": None if closes_in is None else int(closes_in.total_seconds()),
            "next_open": hours.next_open(now, zone_name).isoformat(),
            "slots": [
                {
                    "start": s.start.isoformat(),
                    "end": s.end.isoformat(),
                    "local": fmt_local(s.start, zone_name) + fmt_local(s.end, zone_name, "–%H:%M"),
                }
                for s in hours.next_slots(now, slots, zone_name)
            ],
        }

    async def distribute(
        self,
        day: date | None = None,
        *,
        dry_run: bool = False,
        seed: int | None = None,
        timeline: bool = True,
        force: bool = False,
    ) -> DayWork:
        """The timeline and the distribution for `day` (default: today, local), as the morning
        job runs them. Another day's result deadlines are judged as at that day's distribution
        time, so a rerun for yesterday skips the same specialists it skipped then.

        A day further than `NEAR_DAYS` from today needs `force`; without it a dry run is made
        and `DistributionDayRefused` carries it, so the refusal says what the run would close.
        """
        now = self.clock.now()
        today = self.desk.hours().local_date(now)
        day = day or today
        far = far_day_reason(day, today)
        if far is not None and not force and not dry_run:
            preview = await self._run(day, now, today, dry_run=True, seed=seed, timeline=timeline)
            raise DistributionDayRefused(far, preview)
        work = await self._run(day, now, today, dry_run=dry_run, seed=seed, timeline=timeline)
        if far is not None:
            forced = "forced: " if force else "a real run needs force: "
            work = DayWork(work.day, work.distribution, work.timeline, (*work.notes, forced + far))
        return work

    async def _run(
        self,
        day: date,
        now: datetime,
        today: date,
        *,
        dry_run: bool,
        seed: int | None,
        timeline: bool,
    ) -> DayWork:
        if day != today:
            now = distribution_at(day, self.desk.distribution_time, self.desk.tz)
        notes: list[str] = []
        if not self.desk.is_calling_day(day):
            notes.append(f"note: {day} is not a calling day")
        if not timeline:
            notes.append("timeline not applied")
            report = await run_distribution(
                self.sessions, day=day, now=now, desk=self.desk, seed=seed, dry_run=dry_run
            )
            return DayWork(day, report, None, tuple(notes))
        tl, report = await run_day(
            self.sessions, day=day, now=now, desk=self.desk, seed=seed, dry_run=dry_run
        )
        return DayWork(day, report, tl, tuple(notes))

    async def runs(self, day: date) -> list[dict[str, Any]]:
        """The recorded (non-dry) distribution runs of `day`, for audit: seed, counts, who was
        skipped and why. The whole allocation stays in the database (it can be a million ids)."""
        async with self.sessions() as s:
            rows = (
                await s.scalars(
                    select(DistributionRun)
                    .where(DistributionRun.day == day)
                    .order_by(DistributionRun.id)
                )
            ).all()
        return [
            {
                "id": r.id,
                "day": r.day.isoformat(),
                "seed": r.seed,
                "instance": r.instance,
                "started_at": r.started_at.isoformat(),
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                "due": r.due_count,
                "dealt": r.dealt_count,
                "counts": r.counts,
                "skipped": r.skipped,
            }
            for r in rows
        ]
