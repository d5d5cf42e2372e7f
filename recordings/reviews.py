"""A supervisor's review of a recording: the scores checked against the rubric, and the
callback a failed review may book for the lead.

The booking is the desk's one rule (`schedules.callbacks`): the time snapped into the lead's
calling hours, the lead `scheduled`; the CRM hears of it through the outbox (`lead.callback`
and the lead's status change) in the review's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from common.web import ApiError
from crm_sync.models import Lead
from crm_sync.outbox import lead_message, status_message
from recordings.config import RecordingSettings
from recordings.models import Recording, RecordingReview
from schedules.callbacks import book_callback, callback_time, lead_time_zone
from schedules.windows import CallingHours

TOPIC_CALLBACK = "lead.callback"


def checked_scores(settings: RecordingSettings, scores: Mapping[str, Any]) -> dict[str, int]:
    """The scores, one integer 0..score_max per rubric item, or a 400 that says which is wrong."""
    items = settings.rubric
    if set(scores) != set(items):
        raise ApiError(400, "scores must have exactly the rubric items", rubric=items)
    clean: dict[str, int] = {}
    for item in items:
        v = scores[item]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= settings.score_max:
            raise ApiError(400, f"score {item!r} must be an integer 0..{settings.score_max}")
        clean[item] = v
    return clean


def check_callback_request(passed: bool, callback_at: datetime | None, now: datetime) -> None:
    """A callback is asked only by a failed review, for an aware time in the future."""
    if callback_at is None:
        return
    if passed:
        raise ApiError(400, "a callback is booked only by a failed review")
    if callback_at.tzinfo is None:
        raise ApiError(400, "callback_at needs a time zone offset")
    if callback_at <= now:
        raise ApiError(400, "callback_at must be in the future")


async def book_review_callback(
    s: AsyncSession,
    rec: Recording,
    review: RecordingReview,
    callback_at: datetime,
    now: datetime,
    hours_for: Callable[[str], CallingHours],
) -> None:
    """Book the callback a failed review asks for on the recording's lead, and tell the CRM."""
    if rec.lead_id is None:
        raise ApiError(409, "this recording's lead no longer exists")
    lead = await s.get(Lead, rec.lead_id, with_for_update=True)
    if lead is None:
        raise ApiError(409, "this recording's lead no longer exists")
    tz = await lead_time_zone(s, lead)
    when, why = callback_time(callback_at, now=now, hours=hours_for(lead.kind), tz=tz)
    review.callback_at = when
    old_status = lead.status
    book_callback(lead, when)
    lead.updated_at = now
    reason = f"failed call review: {why}"
    lead_message(
        s,
        TOPIC_CALLBACK,
        lead.id,
        {
            "lead_id": lead.id,
            "callback_at": when.isoformat(),
            "reason": reason,
            "recording_id": rec.id,
            "attempt_id": rec.attempt_id,
        },
        now,
    )
    status_message(s, lead, old_status, reason, now)
