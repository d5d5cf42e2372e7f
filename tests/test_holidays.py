from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from schedules.holidays import HolidayCalendar, HolidayFileError, load_calendar, parse_holidays


@pytest.fixture(scope="module")
def cal() -> HolidayCalendar:
    return load_calendar()


def test_shipped_2026_spring_festival_is_off_and_its_makeup_saturdays_are_working(
    cal: HolidayCalendar,
) -> None:
    assert cal.holiday_name(date(2026, 2, 17)) == "春节 Spring Festival"
    assert not cal.is_working_day(date(2026, 2, 23))  # a Monday inside the break
    assert cal.is_working_day(date(2026, 2, 14))  # Saturday 调休上班
    assert cal.is_working_day(date(2026, 2, 28))


def test_shipped_2026_national_day_with_a_makeup_sunday(cal: HolidayCalendar) -> None:
    assert all(not cal.is_working_day(date(2026, 10, d)) for d in range(1, 8))
    assert cal.is_working_day(date(2026, 9, 20))  # Sunday
    assert cal.is_working_day(date(2026, 10, 10))  # Saturday


def test_ordinary_weekends_and_weekdays(cal: HolidayCalendar) -> None:
    assert not cal.is_working_day(date(2026, 3, 7))  # Saturday
    assert cal.is_working_day(date(2026, 3, 9))  # Monday


def test_2027_is_shipped_but_flagged_provisional_and_2026_official(cal: HolidayCalendar) -> None:
    assert not cal.is_provisional(2026)
    assert cal.is_provisional(2027)
    assert cal.is_holiday(date(2027, 10, 1))
    assert cal.is_provisional(2031)  # unknown years: weekdays only, and said so


def test_next_working_day_skips_a_holiday_week(cal: HolidayCalendar) -> None:
    assert cal.next_working_day(date(2026, 9, 30)) == date(2026, 10, 8)
    assert cal.next_working_day(date(2026, 2, 13)) == date(2026, 2, 14)  # make-up Saturday


def test_override_file_replaces_a_whole_year(tmp_path: Path) -> None:
    f = tmp_path / "h.toml"
    f.write_text(
        '[years.2027]\nstatus = "official"\n\n'
        '[[holiday]]\nyear = 2027\nname = "春节"\nfirst = 2027-02-05\nlast = 2027-02-13\n'
        "workdays = [2027-01-31]\n",
        "utf-8",
    )
    cal = load_calendar(f)
    assert not cal.is_provisional(2027)
    assert cal.is_working_day(date(2027, 1, 31))  # Sunday made a working day
    assert cal.is_holiday(date(2027, 2, 12))
    assert not cal.is_holiday(date(2027, 10, 1))  # the shipped 2027 entries are gone
    assert cal.is_holiday(date(2026, 10, 1))  # other years untouched


def test_missing_override_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(HolidayFileError, match=r"nope\.toml"):
        load_calendar(tmp_path / "nope.toml")


def test_a_bad_date_names_the_entry() -> None:
    with pytest.raises(HolidayFileError, match="国庆"):
        parse_holidays('[[holiday]]\nname = "国庆"\nfirst = "2026-13-01"\n')


def test_a_day_both_off_and_working_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "h.toml"
    f.write_text(
        '[[holiday]]\nyear = 2030\nname = "x"\nfirst = 2030-01-01\nlast = 2030-01-03\n'
        "workdays = [2030-01-02]\n",
        "utf-8",
    )
    with pytest.raises(HolidayFileError, match="both"):
        load_calendar(f)
