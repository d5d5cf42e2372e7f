from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from schedules.holidays import load_calendar
from schedules.windows import CallingHours, CallingPlan, Window, parse_windows

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")


def sh(*a: int) -> datetime:
    return datetime(*a, tzinfo=SH)  # type: ignore[misc]


@pytest.fixture(scope="module")
def hours() -> CallingHours:
    return CallingHours(calendar=load_calendar())


def test_half_open_window_10_59_59_open_11_00_00_closed(hours: CallingHours) -> None:
    assert hours.is_open(sh(2026, 3, 9, 10, 59, 59))
    assert not hours.is_open(sh(2026, 3, 9, 11, 0, 0))
    assert hours.is_open(sh(2026, 3, 9, 9, 30))
    assert not hours.is_open(sh(2026, 3, 9, 9, 29, 59))


def test_closes_in_counts_down_to_the_window_end(hours: CallingHours) -> None:
    assert hours.closes_in(sh(2026, 3, 9, 10, 59, 59)) == timedelta(seconds=1)
    assert hours.closes_in(sh(2026, 3, 9, 16, 0)) == timedelta(hours=1)
    assert hours.closes_in(sh(2026, 3, 9, 12, 0)) is None


def test_next_open_between_windows_is_the_afternoon_window(hours: CallingHours) -> None:
    assert hours.next_open(sh(2026, 3, 9, 12, 0)) == sh(2026, 3, 9, 15, 30)
    assert hours.next_open(sh(2026, 3, 9, 10, 0)) == sh(2026, 3, 9, 10, 0)  # already open


def test_results_are_utc(hours: CallingHours) -> None:
    got = hours.next_open(sh(2026, 3, 9, 12, 0))
    assert got.tzinfo is UTC and got == datetime(2026, 3, 9, 7, 30, tzinfo=UTC)


def test_holiday_monday_is_not_a_calling_day(hours: CallingHours) -> None:
    # 2026-04-06 is Monday of the Qingming break.
    assert not hours.is_open(sh(2026, 4, 6, 10, 0))
    assert hours.next_open(sh(2026, 4, 6, 10, 0)) == sh(2026, 4, 7, 9, 30)


def test_makeup_saturday_is_a_calling_day(hours: CallingHours) -> None:
    assert hours.is_open(sh(2026, 5, 9, 10, 0))  # Saturday 调休上班
    assert not hours.is_open(sh(2026, 5, 16, 10, 0))  # an ordinary Saturday


def test_friday_evening_next_open_is_monday_morning(hours: CallingHours) -> None:
    assert hours.next_open(sh(2026, 3, 13, 17, 0)) == sh(2026, 3, 16, 9, 30)


def test_next_open_skips_the_national_day_week(hours: CallingHours) -> None:
    assert hours.next_open(sh(2026, 9, 30, 17, 0)) == sh(2026, 10, 8, 9, 30)


def test_next_slots_for_the_callback_picker_start_with_the_open_window(
    hours: CallingHours,
) -> None:
    slots = hours.next_slots(sh(2026, 3, 13, 16, 0), 3)
    assert [(s.start, s.end) for s in slots] == [
        (sh(2026, 3, 13, 16, 0), sh(2026, 3, 13, 17, 0)),
        (sh(2026, 3, 16, 9, 30), sh(2026, 3, 16, 11, 0)),
        (sh(2026, 3, 16, 15, 30), sh(2026, 3, 16, 17, 0)),
    ]


def test_next_window_start_never_returns_the_open_window(hours: CallingHours) -> None:
    assert hours.next_window_start(sh(2026, 3, 9, 9, 30)) == sh(2026, 3, 9, 15, 30)
    assert hours.next_day_start(sh(2026, 3, 9, 9, 30)) == sh(2026, 3, 10, 9, 30)


def test_dst_zone_keeps_wall_clock_windows_across_the_change() -> None:
    ny = CallingHours(tz="America/New_York")
    # 2026-03-08 US clocks spring forward; Friday 6th and Monday 9th differ by an hour in UTC.
    fri = ny.next_open(datetime(2026, 3, 6, 12, 0, tzinfo=UTC))
    mon = ny.next_open(datetime(2026, 3, 7, 12, 0, tzinfo=UTC))
    assert fri.astimezone(NY).time() == time(9, 30) and fri.hour == 14
    assert mon.astimezone(NY).time() == time(9, 30) and mon.hour == 13
    assert mon.astimezone(NY).date().isoformat() == "2026-03-09"
    # 10:59:59 EDT open, 11:00 EDT closed, on the first Monday after the change.
    assert ny.is_open(datetime(2026, 3, 9, 10, 59, 59, tzinfo=NY))
    assert not ny.is_open(datetime(2026, 3, 9, 11, 0, tzinfo=NY))


def test_lead_time_zone_overrides_the_campaign_zone(hours: CallingHours) -> None:
    when = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)  # 22:00 Shanghai, 10:00 New York
    assert not hours.is_open(when)
    assert hours.is_open(when, tz="America/New_York")


def test_windows_per_campaign_kind() -> None:
    plan = CallingPlan(
        by_kind={"callback": CallingHours(windows=parse_windows("09:00-12:00,14:00-18:00"))}
    )
    noon_minus = sh(2026, 3, 9, 11, 30)
    assert plan.for_kind("callback").is_open(noon_minus)
    assert not plan.for_kind("renewal").is_open(noon_minus)


def test_overlapping_or_inverted_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        CallingHours(windows=parse_windows("09:00-12:00,11:00-13:00"))
    with pytest.raises(ValueError):
        Window(time(11), time(9))
    with pytest.raises(ValueError, match="HH:MM"):
        parse_windows("9-10-11")


def test_naive_datetimes_are_refused(hours: CallingHours) -> None:
    with pytest.raises(ValueError, match="naive"):
        hours.is_open(datetime(2026, 3, 9, 10, 0))
