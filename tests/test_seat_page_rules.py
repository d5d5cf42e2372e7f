"""The seat page's plain rules: which callback times may be booked (and why not), the
openings the picker offers, and that every text has its Chinese translation."""

from __future__ import annotations

from datetime import UTC, date, datetime

from babel.messages.pofile import read_po

from callcenter.pages.appointments import (
    appointment_refusal,
    appointment_slots,
    previous_working_day,
)
from callcenter.pages.i18n import LOCALE_DIR
from schedules.holidays import load_calendar
from schedules.windows import CallingHours

HOURS = CallingHours(calendar=load_calendar())
MONDAY_0930 = datetime(2026, 1, 5, 1, 30, tzinfo=UTC)


def at(local: str) -> datetime:
    return datetime.fromisoformat(local + "+08:00")


def test_a_callback_inside_a_window_on_a_working_day_is_accepted() -> None:
    assert appointment_refusal(HOURS, at("2026-01-06T10:00"), MONDAY_0930) is None
    assert appointment_refusal(HOURS, at("2026-01-05T16:45"), MONDAY_0930) is None


def test_a_callback_between_the_windows_is_refused_naming_the_windows() -> None:
    refusal = appointment_refusal(HOURS, at("2026-01-05T12:30"), MONDAY_0930)
    assert refusal is not None and refusal.code == "outside"
    assert refusal.params == {"time": "12:30", "windows": "09:30-11:00, 15:30-17:00"}
    # The window's end is not inside it.
    assert appointment_refusal(HOURS, at("2026-01-05T17:00"), MONDAY_0930) is not None


def test_a_callback_on_a_weekend_or_public_holiday_is_refused_as_a_day_off() -> None:
    saturday = appointment_refusal(HOURS, at("2026-01-10T10:00"), MONDAY_0930)
    assert saturday is not None and saturday.code == "day_off"
    spring_festival = appointment_refusal(HOURS, at("2026-02-16T10:00"), MONDAY_0930)
    assert spring_festival is not None and spring_festival.params == {"day": "2026-02-16"}
    # A make-up working Saturday (调休) may be booked.
    assert appointment_refusal(HOURS, at("2026-02-14T10:00"), MONDAY_0930) is None


def test_a_callback_in_the_past_is_refused() -> None:
    refusal = appointment_refusal(HOURS, at("2026-01-05T09:29"), MONDAY_0930)
    assert refusal is not None and refusal.code == "past"


def test_the_picker_offers_only_working_days_from_now_on() -> None:
    slots = appointment_slots(HOURS, MONDAY_0930, days=6)
    days = sorted({s["day"] for s in slots})
    # Monday 5 Jan to Friday 9 Jan, then Monday 12 Jan: no weekend.
    assert days == [
        "2026-01-05",
        "2026-01-06",
        "2026-01-07",
        "2026-01-08",
        "2026-01-09",
        "2026-01-12",
    ]
    assert slots[0] == {"day": "2026-01-05", "start": "09:30", "end": "11:00"}
    late = appointment_slots(HOURS, at("2026-01-05T16:10"), days=1)
    assert late == [{"day": "2026-01-05", "start": "16:10", "end": "17:00"}]


def test_node_three_looks_back_to_the_last_working_day() -> None:
    assert previous_working_day(HOURS, date(2026, 1, 6)) == date(2026, 1, 5)
    # Monday 5 Jan 2026: Sunday 4 Jan is the make-up working day after New Year.
    assert previous_working_day(HOURS, date(2026, 1, 5)) == date(2026, 1, 4)
    assert previous_working_day(HOURS, date(2026, 1, 12)) == date(2026, 1, 9)


def test_every_page_text_has_a_chinese_translation_and_english_ships_too() -> None:
    with (LOCALE_DIR / "messages.pot").open("rb") as f:
        template = {m.id for m in read_po(f) if m.id}
    for lang in ("zh_CN", "en"):
        with (LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
            catalog = read_po(f, locale=lang)
        translated = {m.id for m in catalog if m.id and m.string}
        assert template <= translated, f"{lang} lacks {sorted(template - translated)}"
