"""Recording and review tables.

A recording row is written when the dialer submits the attempt (status `pending`), so a crash
between hang-up and storage loses nothing: pending rows are picked up again at start.
`attempt_id` is the dialer's own attempt id string; recordings/ never imports the dialer.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_sync.models import Base


class RecordingStatus(enum.StrEnum):
    PENDING = "pending"  # submitted, not yet processed
    STORED = "stored"  # compressed copy written, verified and linked
    NO_AUDIO = "no_audio"  # header-only WAV (never bridged): nothing to transcode
    CORRUPT = "corrupt"  # truncated/unreadable: the WAV is in the quarantine folder
    MISSING = "missing"  # the reported file never appeared (or left the monitor folder)
    FAILED = "failed"  # transcoding or storing failed; the WAV is left where it was


def _status_check() -> str:
    return "status IN (" + ", ".join(repr(s.value) for s in RecordingStatus) + ")"


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[str] = mapped_column(String(64), unique=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    specialist_id: Mapped[int | None] = mapped_column(
        ForeignKey("specialists.id", ondelete="SET NULL")
    )
    outcome: Mapped[str] = mapped_column(String(32))  # the dialer's attempt outcome
    contact_result: Mapped[str | None] = mapped_column(String(32))  # code, set later too
    source_name: Mapped[str] = mapped_column(String(255))  # the WAV name as reported
    status: Mapped[str] = mapped_column(String(16), default=RecordingStatus.PENDING.value)
    ended_at: Mapped[datetime]  # hang-up
    talk_seconds: Mapped[float | None] = mapped_column(Float)  # the dialer's bridged time
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))
    stored_at: Mapped[datetime | None]
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    speech_seconds: Mapped[float | None] = mapped_column(Float)  # audio above the threshold
    silence_ratio: Mapped[float | None] = mapped_column(Float)
    waveform: Mapped[list[float] | None] = mapped_column(JSON)
    format: Mapped[str | None] = mapped_column(String(8))
    storage_key: Mapped[str | None] = mapped_column(String(500))
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    # A failed transcode or store is tried again (settings `retry_delays`): how many tries
    # failed so far, and when the next one is due (None: no retry left, or not failed).
    tries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retry_at: Mapped[datetime | None]
    keep: Mapped[bool] = mapped_column(Boolean, default=False)
    keep_by: Mapped[int | None] = mapped_column(ForeignKey("specialists.id", ondelete="SET NULL"))
    keep_at: Mapped[datetime | None]

    reviews: Mapped[list[RecordingReview]] = relationship(
        back_populates="recording",
        order_by="RecordingReview.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    __table_args__ = (
        CheckConstraint(_status_check(), name="status"),
        Index("ix_recordings_ended_at", "ended_at"),
        Index("ix_recordings_specialist_ended", "specialist_id", "ended_at"),
        Index("ix_recordings_lead_id", "lead_id"),
        Index("ix_recordings_retry_at", "retry_at"),
    )


class RecordingReview(Base):
    """A supervisor's review: a score per rubric item, a comment, pass/fail."""

    __tablename__ = "recording_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"))
    reviewer_id: Mapped[int | None] = mapped_column(
        ForeignKey("specialists.id", ondelete="SET NULL")
    )
    scores: Mapped[dict[str, Any]] = mapped_column(JSON)
    total: Mapped[int] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column(Boolean)
    comment: Mapped[str | None] = mapped_column(Text)
    callback_at: Mapped[datetime | None]  # a callback booked for the lead by a failed review
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))

    recording: Mapped[Recording] = relationship(back_populates="reviews")

    __table_args__ = (Index("ix_recording_reviews_recording_id", "recording_id"),)
