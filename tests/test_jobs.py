from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from callcenter.jobs import DailyJob, DailyJobRunner, next_run
from schedules.clock import VirtualClock

SH = ZoneInfo("Asia/Shanghai")


def weekdays(d: date) -> bool:
    return d.weekday() < 5


def test_job_not_yet_run_today_is_due_at_its_time() -> None:
    now = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai, a Tuesday
    assert next_run(now, time(8, 30), SH, None, weekdays) == datetime(2026, 12, 1, 8, 30, tzinfo=SH)


def test_job_started_late_still_runs_today() -> None:
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # 11:00 Shanghai
    assert next_run(now, time(8, 30), SH, None, weekdays) == now


def test_job_already_run_today_waits_for_the_next_calling_day() -> None:
    now = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)  # Friday 11:00
    due = next_run(now, time(8, 30), SH, date(2026, 12, 4), weekdays)
    assert due == datetime(2026, 12, 7, 8, 30, tzinfo=SH)  # Monday


async def test_runner_runs_each_job_once_per_calling_day_in_virtual_time() -> None:
    clock = VirtualClock(datetime(2026, 12, 4, 0, 0, tzinfo=UTC))  # Friday 08:00 Shanghai
    days: list[date] = []

    async def job(day: date) -> None:
        days.append(day)

    runner = DailyJobRunner(clock, SH, [DailyJob("distribute", time(8, 30), job)], weekdays)
    task = asyncio.create_task(runner.run_forever())
    try:
        for _ in range(4 * 24 * 12):  # four days in five-minute steps
            await clock.advance(300)
    finally:
        task.cancel()
    assert days == [date(2026, 12, 4), date(2026, 12, 7)]


async def test_a_failing_job_does_not_stop_the_others() -> None:
    clock = VirtualClock(datetime(2026, 12, 1, 1, 0, tzinfo=UTC))
    ran: list[str] = []

    async def broken(day: date) -> None:
        raise RuntimeError("mail server down")

    async def fine(day: date) -> None:
        ran.append("fine")

    runner = DailyJobRunner(
        clock,
        SH,
        [DailyJob("mail", time(8, 0), broken), DailyJob("check", time(8, 0), fine)],
        weekdays,
    )
    assert await runner.run_due() == ["mail", "check"]
    assert ran == ["fine"]


async def test_a_failed_job_is_retried_later_the_same_day_until_it_succeeds() -> None:
    clock = VirtualClock(datetime(2026, 12, 1, 9, 35, tzinfo=UTC))  # 17:35 Shanghai
    calls: list[datetime] = []

    async def flaky(day: date) -> None:
        calls.append(clock.now())
        if len(calls) < 3:
            raise OSError("SMTP server unreachable")

    runner = DailyJobRunner(
        clock, SH, [DailyJob("mail", time(17, 30), flaky)], weekdays, retry_after=300
    )
    task = asyncio.create_task(runner.run_forever())
    try:
        for _ in range(12 * 6):  # six hours in five-minute steps
            await clock.advance(300)
    finally:
        task.cancel()
    assert len(calls) == 3  # two failures, then once more and done for the day
    assert (calls[1] - calls[0]).total_seconds() == 300
