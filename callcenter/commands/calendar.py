"""`callcenter calendar day|slots`: the desk's calendar as the dialer and the pickers see it."""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta

from callcenter.settings import load_settings
from common.clock import SystemClock
from schedules.config import DeskCalendar
from schedules.holidays import HolidayFileError
from schedules.windows import fmt_local


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("calendar", help="calling days, holidays (调休) and calling windows")
    csub = p.add_subparsers(dest="calendar_command", required=True)
    d = csub.add_parser("days", help="list days with calling day / holiday / make-up working day")
    d.add_argument("--from", dest="start", help="first day, YYYY-MM-DD (default today)")
    d.add_argument("--days", type=int, default=14, help="how many days (default %(default)s)")
    d.set_defaults(func=_days)
    s = csub.add_parser("slots", help="the next calling-window openings (callback picker)")
    s.add_argument("-n", type=int, default=6, help="how many (default %(default)s)")
    s.add_argument("--kind", default="renewal", help="campaign kind (default %(default)s)")
    s.add_argument("--tz", help="the customer's time zone (default: the desk's)")
    s.set_defaults(func=_slots)


def _desk() -> DeskCalendar | None:
    try:
        return DeskCalendar.from_settings(load_settings())
    except (HolidayFileError, ValueError) as exc:
        print(f"bad settings: {exc}", file=sys.stderr)
        return None


def _days(args: argparse.Namespace) -> int:
    desk = _desk()
    if desk is None:
        return 2
    try:
        day = date.fromisoformat(args.start) if args.start else None
    except ValueError:
        print(f"--from {args.start!r} is not YYYY-MM-DD", file=sys.stderr)
        return 2
    hours = desk.hours()
    day = day or hours.local_date(SystemClock().now())
    for _ in range(max(args.days, 0)):
        cal = desk.calendar
        what = "calling day" if hours.is_calling_day(day) else "closed"
        if cal.is_makeup_workday(day):
            what += " (调休上班 make-up working day)"
        elif cal.holiday_name(day):
            what += f" ({cal.holiday_name(day)})"
        if cal.is_provisional(day.year):
            what += " [calendar provisional for this year]"
        print(f"{day} {day:%a}  {what}")
        day += timedelta(days=1)
    return 0


def _slots(args: argparse.Namespace) -> int:
    desk = _desk()
    if desk is None:
        return 2
    hours = desk.hours(args.kind)
    tz = args.tz or hours.tz
    try:
        slots = hours.next_slots(SystemClock().now(), args.n, tz)
    except (ValueError, KeyError) as exc:
        print(f"cannot list slots: {exc}", file=sys.stderr)
        return 2
    for slot in slots:
        print(f"{fmt_local(slot.start, tz)} – {fmt_local(slot.end, tz, '%H:%M')} ({tz})")
    return 0
