"""Calling windows: when a number may be called.

Pure. Windows are wall-clock times in the customer's time zone (default Asia/Shanghai) on
calling days; a calling day is a weekday of the campaign that is not a public holiday, or a
make-up working day (调休上班, e.g. a Saturday). Windows are half-open: [start, end), so with the
default 9:30–11:00, 10:59:59 is open and 11:00:00 is closed.

All inputs and outputs are aware datetimes; results are in UTC. Local times are turned into
instants with `zoneinfo`, so daylight-saving changes move the instant, never the wall time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo

from schedules.holidays import HolidayCalendar

DEFAULT_TZ = "Asia/Shanghai"
WEEKDAYS = frozenset(range(5))  # Monday..Friday
_SEARCH_DAYS = 400
# A call that may ring for less than this is not worth starting: most customers answer
# within 15 s, and a shorter ring reads to them as a missed call from a stranger.
MIN_RING = timedelta(seconds=15)


@dataclass(frozen=True, order=True)
class Window:
    """A daily window of wall-clock time, [start, end)."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError(f"window {self.start}-{self.end} ends before it starts")

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


DEFAULT_WINDOWS = (Window(time(9, 30), time(11, 0)), Window(time(15, 30), time(17, 0)))


def parse_windows(spec: str) -> tuple[Window, ...]:
    """'09:30-11:00,15:30-17:00' -> windows."""
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            a, b = part.split("-")
            out.append(Window(time.fromisoformat(a.strip()), time.fromisoformat(b.strip())))
        except ValueError as exc:
            raise ValueError(f"bad calling window {part!r} (want HH:MM-HH:MM)") from exc
    if not out:
        raise ValueError("no calling window given")
    return tuple(sorted(out))


@dataclass(frozen=True)
class Slot:
    """One opening of a window on one day, as UTC instants [start, end)."""

    start: datetime
    end: datetime

    def __contains__(self, when: datetime) -> bool:
        return self.start <= when < self.end


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def fmt_local(when: datetime, tz: str, fmt: str = "%a %Y-%m-%d %H:%M") -> str:
    """An instant as the desk reads it, in the given zone."""
    return when.astimezone(zone(tz)).strftime(fmt)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC)")
    return now


def ring_time(
    left: timedelta | None, ring: timedelta, minimum: timedelta = MIN_RING
) -> timedelta | None:
    """How long a call started now may ring so that no phone rings after its window closes.

    `left` is what is left of the open window (None: closed). The full `ring` if that much is
    left, else what is left, but never under `minimum`: None means "do not start the call".
    """
    if left is None or left < minimum or left <= timedelta(0):
        return None
    return min(ring, left)


@dataclass(frozen=True)
class CallingHours:
    """The calling windows of one campaign kind."""

    windows: tuple[Window, ...] = DEFAULT_WINDOWS
    weekdays: frozenset[int] = WEEKDAYS
    calendar: HolidayCalendar = field(default_factory=HolidayCalendar)
    tz: str = DEFAULT_TZ

    def __post_init__(self) -> None:
        ws = tuple(sorted(self.windows))
        if not ws:
            raise ValueError("calling hours need at least one window")
        for a, b in pairwise(ws):
            if b.start < a.end:
                raise ValueError(f"calling windows {a} and {b} overlap")
        object.__setattr__(self, "windows", ws)
        zone(self.tz)  # fail early on an unknown zone name

    # -- days -------------------------------------------------------------------------------
    def is_calling_day(self, d: date) -> bool:
        return self.calendar.is_working_day(d, self.weekdays)

    def local_date(self, now: datetime, tz: str | None = None) -> date:
        return _aware(now).astimezone(zone(tz or self.tz)).date()

    def day_start(self, now: datetime, tz: str | None = None) -> datetime:
        """The instant `now`'s local day began (UTC): where "calls today" are counted from."""
        d = self.local_date(now, tz)
        return datetime.combine(d, time(0), tzinfo=zone(tz or self.tz)).astimezone(UTC)

    def slots_on(self, d: date, tz: str | None = None) -> list[Slot]:
        if not self.is_calling_day(d):
            return []
        z = zone(tz or self.tz)
        out = []
        for w in self.windows:
            start = datetime.combine(d, w.start, tzinfo=z).astimezone(UTC)
            end = datetime.combine(d, w.end, tzinfo=z).astimezone(UTC)
            if start < end:  # a window swallowed by a DST gap is skipped, not inverted
                out.append(Slot(start, end))
        return out

    def _slots_from(self, now: datetime, tz: str | None) -> Iterator[Slot]:
        """Every slot that has not ended at `now`, in order."""
        d = self.local_date(now, tz) - timedelta(days=1)  # a slot may straddle UTC midnight
        for _ in range(_SEARCH_DAYS):
            for s in self.slots_on(d, tz):
                if s.end > now:
                    yield s
            d += timedelta(days=1)
        raise ValueError(f"no calling window within {_SEARCH_DAYS} days")

    # -- the questions the dialer and the UI ask ---------------------------------------------
    def current_slot(self, now: datetime, tz: str | None = None) -> Slot | None:
        s = next(self._slots_from(_aware(now), tz))
        return s if now in s else None

    def is_open(self, now: datetime, tz: str | None = None) -> bool:
        return self.current_slot(now, tz) is not None

    def next_open(self, now: datetime, tz: str | None = None) -> datetime:
        """`now` if a window is open, else the start of the next window."""
        s = next(self._slots_from(_aware(now), tz))
        return max(s.start, now).astimezone(UTC)

    def next_window_start(self, now: datetime, tz: str | None = None) -> datetime:
        """The start of the next window that opens strictly after `now` (never the current one)."""
        for s in self._slots_from(_aware(now), tz):
            if s.start > now:
                return s.start
        raise AssertionError("unreachable")  # pragma: no cover

    def next_day_start(self, now: datetime, tz: str | None = None) -> datetime:
        """The first window of the next calling day after `now`'s local date."""
        today = self.local_date(now, tz)
        for s in self._slots_from(_aware(now), tz):
            if s.start > now and self.local_date(s.start, tz) > today:
                return s.start
        raise AssertionError("unreachable")  # pragma: no cover

    def closes_in(self, now: datetime, tz: str | None = None) -> timedelta | None:
        """Time left in the open window, or None when closed."""
        s = self.current_slot(now, tz)
        return None if s is None else s.end - now

    def ring_time(
        self,
        now: datetime,
        ring: timedelta,
        tz: str | None = None,
        minimum: timedelta = MIN_RING,
    ) -> timedelta | None:
        """`ring_time` of the window open at `now` (None: do not start a call now)."""
        return ring_time(self.closes_in(now, tz), ring, minimum)

    def next_slots(self, now: datetime, n: int, tz: str | None = None) -> list[Slot]:
        """The next `n` openings; an open window counts, from `now` (for the callback picker)."""
        out: list[Slot] = []
        if n <= 0:
            return out
        for s in self._slots_from(_aware(now), tz):
            out.append(Slot(max(s.start, now.astimezone(UTC)), s.end))
            if len(out) >= n:
                break
        return out

    def clamp(self, when: datetime, tz: str | None = None) -> datetime:
        """`when` if a call may be placed then, else the next window's start."""
        return self.next_open(when, tz)


@dataclass(frozen=True)
class CallingPlan:
    """Calling hours per campaign kind (renewal, lapsed, trial, callback, reminder…)."""

    default: CallingHours = field(default_factory=CallingHours)
    by_kind: Mapping[str, CallingHours] = field(default_factory=dict)

    def for_kind(self, kind: str) -> CallingHours:
        return self.by_kind.get(kind, self.default)
