"""The holiday calendar: public holidays and make-up working days (调休上班).

Pure: the calendar is built from TOML text (the shipped `data/holidays.toml`, plus an optional
override file whose years replace the shipped ones) and answers questions about dates only.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any


class HolidayFileError(ValueError):
    """A holiday file that cannot be understood; the message names the entry."""


@dataclass(frozen=True)
class Holiday:
    year: int
    name: str
    first: date
    last: date
    workdays: tuple[date, ...] = ()

    def days_off(self) -> Iterable[date]:
        d = self.first
        while d <= self.last:
            yield d
            d += timedelta(days=1)


@dataclass(frozen=True)
class YearInfo:
    year: int
    status: str = "official"  # or "provisional"
    source: str = ""


@dataclass(frozen=True)
class HolidayCalendar:
    """Which dates are working days. Outside the years it knows: Monday to Friday."""

    holidays: tuple[Holiday, ...] = ()
    years: Mapping[int, YearInfo] = field(default_factory=dict)
    _off: Mapping[date, str] = field(default_factory=dict, repr=False, compare=False)
    _work: frozenset[date] = field(default_factory=frozenset, repr=False, compare=False)

    @classmethod
    def build(
        cls, holidays: Iterable[Holiday], years: Mapping[int, YearInfo] | None = None
    ) -> HolidayCalendar:
        hs = tuple(sorted(holidays, key=lambda h: h.first))
        off: dict[date, str] = {}
        work: set[date] = set()
        for h in hs:
            for d in h.days_off():
                off[d] = h.name
            work.update(h.workdays)
        clash = work & off.keys()
        if clash:
            raise HolidayFileError(f"dates both off and make-up working days: {sorted(clash)[:5]}")
        known = dict(years or {})
        for h in hs:
            known.setdefault(h.year, YearInfo(h.year))
        return cls(hs, known, off, frozenset(work))

    def holiday_name(self, d: date) -> str | None:
        return self._off.get(d)

    def is_holiday(self, d: date) -> bool:
        return d in self._off

    def is_makeup_workday(self, d: date) -> bool:
        """A weekend day worked instead of a holiday (调休上班)."""
        return d in self._work

    def is_working_day(self, d: date, weekdays: frozenset[int] = frozenset(range(5))) -> bool:
        if d in self._work:
            return True
        if d in self._off:
            return False
        return d.weekday() in weekdays

    def next_working_day(self, d: date, weekdays: frozenset[int] = frozenset(range(5))) -> date:
        """The first working day strictly after `d`."""
        if not weekdays and not self._work:
            raise ValueError("no weekday is a working day")
        for _ in range(400):
            d += timedelta(days=1)
            if self.is_working_day(d, weekdays):
                return d
        raise ValueError("no working day within 400 days")

    def is_provisional(self, year: int) -> bool:
        info = self.years.get(year)
        return info is None or info.status != "official"


def _as_date(value: Any, where: str) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise HolidayFileError(f"{where}: {value!r} is not a date (YYYY-MM-DD)")


def parse_holidays(
    text: str, source: str = "holidays"
) -> tuple[list[Holiday], dict[int, YearInfo]]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HolidayFileError(f"{source}: {exc}") from exc
    years: dict[int, YearInfo] = {}
    for key, info in (doc.get("years") or {}).items():
        try:
            y = int(key)
        except ValueError as exc:
            raise HolidayFileError(f"{source}: [years.{key}] is not a year") from exc
        years[y] = YearInfo(y, str(info.get("status", "official")), str(info.get("source", "")))
    holidays: list[Holiday] = []
    for i, entry in enumerate(doc.get("holiday") or []):
        where = f"{source}: holiday #{i + 1} ({entry.get('name', '?')})"
        first = _as_date(entry.get("first"), f"{where} first")
        last = _as_date(entry.get("last", entry.get("first")), f"{where} last")
        if last < first:
            raise HolidayFileError(f"{where}: last {last} is before first {first}")
        year = int(entry.get("year", first.year))
        workdays = tuple(_as_date(w, f"{where} workdays") for w in entry.get("workdays", []))
        holidays.append(Holiday(year, str(entry.get("name", "")), first, last, workdays))
        years.setdefault(year, YearInfo(year))
    return holidays, years


def default_holidays_text() -> str:
    return resources.files("schedules").joinpath("data/holidays.toml").read_text("utf-8")


def load_calendar(override: Path | str | None = None) -> HolidayCalendar:
    """The shipped calendar; every year named in `override` replaces that year's entries."""
    holidays, years = parse_holidays(default_holidays_text(), "schedules/data/holidays.toml")
    if override is not None:
        path = Path(override)
        if not path.is_file():
            raise HolidayFileError(f"holiday override file {path} does not exist")
        o_holidays, o_years = parse_holidays(path.read_text("utf-8"), str(path))
        replaced = set(o_years)
        holidays = [h for h in holidays if h.year not in replaced] + o_holidays
        years = {y: i for y, i in years.items() if y not in replaced} | o_years
    return HolidayCalendar.build(holidays, years)
