"""Daily jobs of the service (distribution, branch e-mails, recording checks, retention).

Each job runs once a day at a local time, on calling days only when it says so. The loop
only decides *when*; each job is idempotent on its own (distribution deals nothing twice,
branch mails are logged per day), so a restart at the wrong moment does no harm.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from common.clock import Clock

log = logging.getLogger(__name__)


def parse_time(text: str) -> time:
    """'17:30' -> time(17, 30), with an error that names the bad value."""
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a time of day (HH:MM): {text!r}") from None


@dataclass
class DailyJob:
    name: str
    at: time
    run: Callable[[date], Awaitable[object]]
    calling_days_only: bool = True
    last_day: date | None = field(default=None)
    retry_at: datetime | None = field(default=None)


def next_run(
    now: datetime,
    at: time,
    tz: ZoneInfo,
    last_day: date | None,
    is_calling_day: Callable[[date], bool] | None,
) -> datetime:
    """The next moment (aware) the job is due: today at `at` if not yet run and not past the
    day, else the next (calling) day. A job started late on a day still runs that day."""
    local = now.astimezone(tz)
    day = local.date()
    for _ in range(400):
        if (last_day is None or day > last_day) and (is_calling_day is None or is_calling_day(day)):
            return max(datetime.combine(day, at, tzinfo=tz), now)
        day += timedelta(days=1)
    raise RuntimeError("no calling day in the next 400 days: check the holiday calendar")


class DailyJobRunner:
    def __init__(
        self,
        clock: Clock,
        tz: ZoneInfo,
        jobs: list[DailyJob],
        is_calling_day: Callable[[date], bool],
        max_sleep: float = 300.0,
        retry_after: float = 300.0,
    ) -> None:
        self._retry_after = retry_after
        self._clock = clock
        self._tz = tz
        self._jobs = jobs
        self._is_calling_day = is_calling_day
        self._max_sleep = max_sleep

    def _due_at(self, job: DailyJob, now: datetime) -> datetime:
        due = next_run(
            now,
            job.at,
            self._tz,
            job.last_day,
            self._is_calling_day if job.calling_days_only else None,
        )
        return max(due, job.retry_at) if job.retry_at is not None else due

    async def run_due(self) -> list[str]:
        """Run every job that is due now; return their names."""
        now = self._clock.now()
        ran: list[str] = []
        for job in self._jobs:
            if self._due_at(job, now) <= now:
                day = now.astimezone(self._tz).date()
                try:
                    await job.run(day)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    job.retry_at = now + timedelta(seconds=self._retry_after)
                    log.exception(
                        "daily job %s failed for %s; retrying at %s", job.name, day, job.retry_at
                    )
                else:
                    job.last_day, job.retry_at = day, None
                    log.info("daily job %s done for %s", job.name, day)
                ran.append(job.name)
        return ran

    async def run_forever(self) -> None:
        while True:
            await self.run_due()
            now = self._clock.now()
            wake = min((self._due_at(j, now) for j in self._jobs), default=now + timedelta(hours=1))
            # Wake at least every few minutes: a clock jump or a changed calendar is noticed.
            await self._clock.sleep(min(max((wake - now).total_seconds(), 0.001), self._max_sleep))
