"""What a reviewer sees of recordings: the list's filter and query, and the shapes of a
recording and a review in the API's answers.

Access is part of the query: a specialist's list holds only recordings of their own calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, select

from common.principal import Principal
from crm_sync.models import Lead
from recordings.models import Recording, RecordingReview


@dataclass(frozen=True, slots=True)
class RecordingFilter:
    specialist_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    outcome: str | None = None
    contact_result: str | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    reviewed: bool | None = None
    status: str | None = None
    campaign: str | None = None  # the campaign kind: the lead's kind (renewal, lapsed, …)
    limit: int = 50
    offset: int = 0


def _reviewed() -> Any:
    return exists().where(RecordingReview.recording_id == Recording.id)


def recordings_query(viewer: Principal, f: RecordingFilter) -> Select[Any]:
    """The recordings `viewer` may see that match `f`, each with whether it was reviewed."""
    result = func.coalesce(Recording.contact_result, Lead.contact_result)
    q = select(Recording, _reviewed().label("reviewed")).outerjoin(
        Lead, Lead.id == Recording.lead_id
    )
    conds = []
    if not viewer.is_supervisor:
        conds.append(Recording.specialist_id == viewer.user_id)
    if f.specialist_id is not None:
        conds.append(Recording.specialist_id == f.specialist_id)
    if f.since is not None:
        conds.append(Recording.ended_at >= f.since)
    if f.until is not None:
        conds.append(Recording.ended_at < f.until)
    if f.outcome:
        conds.append(Recording.outcome == f.outcome)
    if f.contact_result:
        conds.append(result == f.contact_result)
    if f.min_duration is not None:
        conds.append(Recording.duration_seconds >= f.min_duration)
    if f.max_duration is not None:
        conds.append(Recording.duration_seconds <= f.max_duration)
    if f.reviewed is not None:
        conds.append(_reviewed() if f.reviewed else ~_reviewed())
    if f.status:
        conds.append(Recording.status == f.status)
    if f.campaign:
        conds.append(Lead.kind == f.campaign)
    if conds:
        q = q.where(and_(*conds))
    return q


def summary(rec: Recording, reviewed: bool) -> dict[str, Any]:
    return {
        "id": rec.id,
        "attempt_id": rec.attempt_id,
        "lead_id": rec.lead_id,
        "specialist_id": rec.specialist_id,
        "outcome": rec.outcome,
        "contact_result": rec.contact_result,
        "status": rec.status,
        "ended_at": rec.ended_at.isoformat(),
        "duration_seconds": rec.duration_seconds,
        "talk_seconds": rec.talk_seconds,
        "speech_seconds": rec.speech_seconds,
        "silence_ratio": rec.silence_ratio,
        "format": rec.format,
        "keep": rec.keep,
        "reviewed": reviewed,
    }


def review_dict(r: RecordingReview) -> dict[str, Any]:
    return {
        "id": r.id,
        "reviewer_id": r.reviewer_id,
        "scores": r.scores,
        "total": r.total,
        "passed": r.passed,
        "comment": r.comment,
        "callback_at": r.callback_at.isoformat() if r.callback_at else None,
        "created_at": r.created_at.isoformat(),
    }
