"""The appointment picker's rules (pure): only times inside the calling windows, the openings of
the next working days, and the working day before a given one."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from callcenter.pages.exceptions import AppointmentRefused, PagesError
from schedules.windows import CallingHours


def appointment_refusal(hours: CallingHours, when: datetime, now: datetime) -> PagesError | None:
    """Why a callback time cannot be booked (None when it can): the past, a day off, or
    outside the day's calling windows (the reason names the windows)."""
    if when.tzinfo is None:
        return AppointmentRefused("the time needs a time zone", "no_zone")
    if when <= now:
        return AppointmentRefused("this time is in the past; choose a later one", "past")
    local = when.astimezone(ZoneInfo(hours.tz))
    day = f"{local:%Y-%m-%d}"
    if not hours.is_calling_day(local.date()):
        return AppointmentRefused(
            f"{day} is not a working day (weekend or public holiday); choose another day",
            "day_off",
            day=day,
        )
    if not any(when in slot for slot in hours.slots_on(local.date())):
        windows = ", ".join(str(w) for w in hours.windows)
        return AppointmentRefused(
            f"{local:%H:%M} is outside the calling windows ({windows}); choose a time inside",
            "outside",
            time=f"{local:%H:%M}",
            windows=windows,
        )
    return None


def check_appointment(hours: CallingHours, when: datetime, now: datetime) -> None:
    refusal = appointment_refusal(hours, when, now)
    if refusal is not None:
        raise refusal


def appointment_slots(hours: CallingHours, now: datetime, days: int = 10) -> list[dict[str, str]]:
    """The openings of the next working days, for the picker (local wall-clock times)."""
    tz = ZoneInfo(hours.tz)
    out = []
    day = now.astimezone(tz).date()
    seen = 0
    while seen < days:
        slots = hours.slots_on(day)
        if slots:
            seen += 1
            for slot in slots:
                if slot.end > now:
                    start = max(slot.start, now)
                    out.append(
                        {
                            "day": day.isoformat(),
                            "start": start.astimezone(tz).strftime("%H:%M"),
                            "end": slot.end.astimezone(tz).strftime("%H:%M"),
                        }
                    )
        day += timedelta(days=1)
    return out


def previous_working_day(hours: CallingHours, today: date) -> date:
    day = today - timedelta(days=1)
    for _ in range(30):
        if hours.is_calling_day(day):
            return day
        day -= timedelta(days=1)
    return today - timedelta(days=1)
