"""Booking a callback: the one rule every path uses (schedules.callbacks)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from crm_sync.models import Lead
from schedules.callbacks import book_callback, callback_time
from schedules.windows import CallingHours

SH = ZoneInfo("Asia/Shanghai")
HOURS = CallingHours()
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=SH)  # a Tuesday, inside the morning window


def test_a_time_inside_the_calling_hours_is_kept() -> None:
    when, why = callback_time(datetime(2026, 12, 2, 16, 0, tzinfo=SH), now=NOW, hours=HOURS)
    assert when == datetime(2026, 12, 2, 16, 0, tzinfo=SH)
    assert "customer's time" in why


def test_a_time_between_the_windows_moves_to_the_next_window_start() -> None:
    when, why = callback_time(datetime(2026, 12, 2, 12, 0, tzinfo=SH), now=NOW, hours=HOURS)
    assert when == datetime(2026, 12, 2, 15, 30, tzinfo=SH)
    assert "outside calling hours" in why


@pytest.mark.parametrize("chosen", [None, datetime(2026, 12, 1, 9, 0, tzinfo=SH)])
def test_no_time_or_a_past_one_books_the_next_calling_slot(chosen: datetime | None) -> None:
    when, _ = callback_time(chosen, now=NOW, hours=HOURS)
    assert when == NOW  # the window is open now


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        callback_time(datetime(2026, 12, 2, 16, 0), now=NOW, hours=HOURS)


def test_an_owned_lead_is_scheduled_for_its_callback() -> None:
    lead = Lead(kind="renewal", status="assigned", owner_id=7, distributed_on=date(2026, 12, 1))
    when = datetime(2026, 12, 2, 16, 0, tzinfo=SH)
    book_callback(lead, when)
    assert (lead.status, lead.callback_at, lead.next_attempt_at) == ("scheduled", when, when)


def test_a_lead_nobody_owns_keeps_its_status_when_booked() -> None:
    """Nobody's queue dials a scheduled lead without an owner: it stays the campaign's."""
    lead = Lead(kind="callback", status="due", owner_id=None)
    when = datetime(2026, 12, 2, 16, 0, tzinfo=SH)
    book_callback(lead, when)
    assert (lead.status, lead.callback_at) == ("due", when)
