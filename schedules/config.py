"""Everything the calendar code needs to know about the desk, in one plain object.

Built from the service settings by `DeskCalendar.from_settings` (duck-typed, so this package
never imports the composition root), or directly in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any

from schedules.holidays import HolidayCalendar, load_calendar
from schedules.retry import RetryConfig
from schedules.timeline import TimelineRules
from schedules.windows import DEFAULT_TZ, CallingHours, CallingPlan

# Lead kinds the daily distribution hands to specialists (callbacks are an automatic campaign).
DISTRIBUTED_KINDS = ("renewal", "lapsed", "trial")


def _time(value: str | time) -> time:
    return value if isinstance(value, time) else time.fromisoformat(value)


@dataclass(frozen=True)
class DeskCalendar:
    calendar: HolidayCalendar = field(default_factory=load_calendar)
    tz: str = DEFAULT_TZ
    result_deadline: time = time(17, 0)
    distribution_time: time = time(8, 30)
    rules: TimelineRules = field(default_factory=TimelineRules)
    retry: RetryConfig = field(default_factory=RetryConfig)
    plan: CallingPlan | None = None
    distributed_kinds: tuple[str, ...] = DISTRIBUTED_KINDS

    def __post_init__(self) -> None:
        if self.plan is None:
            hours = CallingHours(calendar=self.calendar, tz=self.tz)
            object.__setattr__(self, "plan", CallingPlan(default=hours))

    @property
    def calling_plan(self) -> CallingPlan:
        assert self.plan is not None
        return self.plan

    def hours(self, kind: str = "renewal") -> CallingHours:
        return self.calling_plan.for_kind(kind)

    def is_calling_day(self, day: Any) -> bool:
        return self.hours().is_calling_day(day)

    @classmethod
    def from_settings(cls, settings: Any) -> DeskCalendar:
        """From `callcenter.settings.Settings` (timezone, holidays_file, distribution_time,
        result_deadline)."""
        holidays_file: Path | None = getattr(settings, "holidays_file", None)
        return cls(
            calendar=load_calendar(holidays_file),
            tz=getattr(settings, "timezone", DEFAULT_TZ),
            result_deadline=_time(getattr(settings, "result_deadline", "17:00")),
            distribution_time=_time(getattr(settings, "distribution_time", "08:30")),
        )
