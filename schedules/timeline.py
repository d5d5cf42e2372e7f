"""The renewal timeline of one policy, as pure rules over dates.

| when                         | what                                                       |
|------------------------------|------------------------------------------------------------|
| expiry − 30 days             | the renewal reminder (automatic call) is due               |
| expiry − 25 days             | the renewal lead is due for distribution (NEW -> DUE)      |
| expiry − 1 month             | a trial-member conversion lead is due                      |
| the day after expiry, 00:00  | not renewed: the policy has lapsed (脱保) -> a lapsed lead   |
| lapsed + 48 h, still open    | handled centrally (Lead.central) and listed for the branch |
| underwritten (承保)           | a post-underwriting callback lead, dialled in a window     |

Policies already renewed are never made into work. The database job that applies these rules
is `schedules.timeline_run.run_timeline`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from schedules.windows import zone


def add_months(day: date, months: int) -> date:
    """Calendar months, clamped to the month's end (31 Mar − 1 month = 28/29 Feb)."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    for dom in (day.day, 30, 29, 28):
        try:
            return date(year, month, dom)
        except ValueError:
            continue
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class TimelineRules:
    reminder_days: int = 30
    distribution_days: int = 25
    trial_months: int = 1
    central_after: timedelta = timedelta(hours=48)
    # Only policies that lapsed this recently become lapsed leads (older ones are history).
    lapsed_lookback_days: int = 60
    # Only policies underwritten this recently get a callback (a first run on old data
    # must not call last year's customers).
    callback_lookback: timedelta = timedelta(days=14)


def reminder_day(expiry: date, rules: TimelineRules = TimelineRules()) -> date:
    """The day the renewal reminder call is owed from (T−30): owed until it is made."""
    return expiry - timedelta(days=rules.reminder_days)


def latest_expiry_reminded(day: date, rules: TimelineRules = TimelineRules()) -> date:
    """The latest expiry date whose reminder is owed on `day` (for SQL filters): exactly the
    policies with `reminder_day(expiry) <= day`."""
    return day + timedelta(days=rules.reminder_days)


def due_day(kind: str, expiry: date, rules: TimelineRules = TimelineRules()) -> date:
    """The day a lead of `kind` becomes work for a specialist."""
    if kind == "renewal":
        return expiry - timedelta(days=rules.distribution_days)
    if kind == "trial":
        return add_months(expiry, -rules.trial_months)
    if kind == "lapsed":
        return expiry + timedelta(days=1)
    raise ValueError(f"no due-day rule for {kind!r} leads")


def latest_expiry_due(kind: str, day: date, rules: TimelineRules = TimelineRules()) -> date:
    """The latest expiry date whose `kind` lead is due on or before `day` (for SQL filters)."""
    if kind == "renewal":
        return day + timedelta(days=rules.distribution_days)
    if kind == "trial":
        e = add_months(day, rules.trial_months)
        while due_day("trial", e + timedelta(days=1), rules) <= day:  # month-end clamping
            e += timedelta(days=1)
        return e
    if kind == "lapsed":
        return day - timedelta(days=1)
    raise ValueError(f"no due-day rule for {kind!r} leads")


def lapsed_at(expiry: date, tz: str) -> datetime:
    """A policy covers its expiry day (终保日期) to midnight; it lapses as the next day starts."""
    return datetime.combine(expiry + timedelta(days=1), time(0), tzinfo=zone(tz)).astimezone(UTC)


def is_lapsed(expiry: date, renewed: bool, now: datetime, tz: str) -> bool:
    return not renewed and now >= lapsed_at(expiry, tz)


def is_central(
    expiry: date, renewed: bool, now: datetime, tz: str, rules: TimelineRules = TimelineRules()
) -> bool:
    """Lapsed for more than 48 h (at the branch): handled centrally."""
    return not renewed and now - lapsed_at(expiry, tz) > rules.central_after


def central_cutoff(now: datetime, tz: str, rules: TimelineRules = TimelineRules()) -> date:
    """The latest expiry date that is central at `now` (for SQL filters)."""
    e = (now - rules.central_after).astimezone(zone(tz)).date()
    while not is_central(e, False, now, tz, rules):
        e -= timedelta(days=1)
    return e


def distribution_at(day: date, at: time, tz: str) -> datetime:
    """The instant of the daily distribution on `day` (default 08:30 local)."""
    return datetime.combine(day, at, tzinfo=zone(tz)).astimezone(UTC)
