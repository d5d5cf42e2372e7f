"""Queries and actions on recordings: review listing, reviews, keep, integrity check, retention.

`RecordingsService` is what the handlers, the desk pages and the commands call. Access rules
live here, not in the handlers: a specialist sees only recordings of their own calls
(another's is "not found"), supervisors see all. Files are reached only through a row's
`storage_key` and the store, never through anything a request supplies. The jobs behind it
have their own modules: the list's query (`listing.py`), a review and its callback
(`reviews.py`), the integrity check (`integrity.py`) and retention (`retention.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.clock import Clock
from common.principal import Principal
from common.web import ApiError, require_own, require_supervisor
from crm_sync.models import Lead
from recordings.audio import CONTENT_TYPES
from recordings.config import RecordingSettings
from recordings.exceptions import StoreError, UnsafePath
from recordings.ingest_rules import recording_url
from recordings.integrity import (
    AttemptsLookup,
    CheckReport,
    FileRows,
    FilesLookup,
    IntegrityCheck,
)
from recordings.listing import RecordingFilter, recordings_query, review_dict, summary
from recordings.models import Recording, RecordingReview, RecordingStatus
from recordings.retention import RetentionReport, run_retention
from recordings.reviews import book_review_callback, check_callback_request, checked_scores
from recordings.store import RecordingStore
from schedules.config import DeskCalendar
from schedules.windows import CallingHours

log = logging.getLogger(__name__)

_DAILY_LOCK = 0x5EC0_0D1A  # PostgreSQL advisory lock id of the daily job


@dataclass(frozen=True, slots=True)
class AudioRef:
    key: str
    size: int
    content_type: str
    sha256: str


class RecordingsService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        store: RecordingStore,
        clock: Clock,
        settings: RecordingSettings,
        *,
        attempts_lookup: AttemptsLookup | None = None,
        monitor_dir: Path | None = None,
        files_lookup: FilesLookup | None = None,
        hours_for: Callable[[str], CallingHours] | None = None,
    ) -> None:
        self.sessions = sessions
        # The calling hours per lead kind, into which a failed review's callback is booked.
        self.hours_for = hours_for or DeskCalendar().hours
        self.store = store
        self.clock = clock
        self.settings = settings
        self._integrity = IntegrityCheck(
            sessions, store, settings, attempts_lookup, monitor_dir, files_lookup
        )

    # -- review listing ----------------------------------------------------------------------

    async def list(self, viewer: Principal, f: RecordingFilter) -> dict[str, Any]:
        q = recordings_query(viewer, f)
        async with self.sessions() as s:
            total = await s.scalar(select(func.count()).select_from(q.subquery()))
            rows = (
                await s.execute(
                    q.order_by(Recording.ended_at.desc(), Recording.id.desc())
                    .limit(min(max(f.limit, 1), 500))
                    .offset(max(f.offset, 0))
                )
            ).all()
        return {"total": total or 0, "items": [summary(r[0], bool(r[1])) for r in rows]}

    async def _visible(self, s: AsyncSession, viewer: Principal, rid: int) -> Recording:
        rec = await s.get(Recording, rid)
        if rec is None:
            raise ApiError(404, "no such recording")
        require_own(viewer, rec.specialist_id, "recording")
        return rec

    async def get(self, viewer: Principal, rid: int) -> dict[str, Any]:
        async with self.sessions() as s:
            rec = await self._visible(s, viewer, rid)
            reviews = (
                await s.scalars(
                    select(RecordingReview)
                    .where(RecordingReview.recording_id == rid)
                    .order_by(RecordingReview.id)
                )
            ).all()
            lead = await s.get(Lead, rec.lead_id) if rec.lead_id else None
        out = summary(rec, bool(reviews))
        out.update(
            {
                "source_name": rec.source_name,
                "stored_at": rec.stored_at.isoformat() if rec.stored_at else None,
                "size_bytes": rec.size_bytes,
                "sha256": rec.sha256,
                "error": rec.error,
                "waveform": rec.waveform or [],
                "audio_url": recording_url(self.settings.url_template, rec.id)
                if rec.status == RecordingStatus.STORED.value
                else None,
                "lead": None
                if lead is None
                else {
                    "id": lead.id,
                    "kind": lead.kind,
                    "status": lead.status,
                    "contact_result": lead.contact_result,
                    "callback_at": lead.callback_at.isoformat() if lead.callback_at else None,
                },
                "reviews": [review_dict(r) for r in reviews],
                "rubric": {"items": self.settings.rubric, "score_max": self.settings.score_max},
            }
        )
        return out

    async def audio(self, viewer: Principal, rid: int) -> AudioRef:
        async with self.sessions() as s:
            rec = await self._visible(s, viewer, rid)
        if (
            rec.status != RecordingStatus.STORED.value
            or not rec.storage_key
            or rec.size_bytes is None
            or rec.sha256 is None
        ):
            raise ApiError(404, "this recording has no audio", status_detail=rec.status)
        # Checked before any header goes out: once a 200 is sent, a missing or short file can
        # only break the connection, never become a clean error.
        try:
            actual = await self.store.size(rec.storage_key)
        except (StoreError, UnsafePath, OSError) as exc:
            log.error("recording %s: the store cannot be read: %s", rid, exc)
            raise ApiError(
                503,
                "the recordings store cannot be read right now; try again later, and if it "
                "lasts ask an operator to run `callcenter recordings check`",
            ) from None
        if actual != rec.size_bytes:
            found = "missing" if actual is None else f"{actual} bytes, not {rec.size_bytes}"
            log.error("recording %s: stored file %s is %s", rid, rec.storage_key, found)
            raise ApiError(
                410,
                f"the audio of recording {rid} is missing or damaged in the store; an operator "
                "should run `callcenter recordings check`, which lists it",
                status_detail="file_missing" if actual is None else "file_damaged",
            )
        return AudioRef(
            key=rec.storage_key,
            size=rec.size_bytes,
            content_type=CONTENT_TYPES.get(rec.format or "", "application/octet-stream"),
            sha256=rec.sha256,
        )

    # -- supervisor actions ------------------------------------------------------------------

    def rubric(self) -> dict[str, Any]:
        return {"items": self.settings.rubric, "score_max": self.settings.score_max}

    async def review(
        self,
        viewer: Principal,
        rid: int,
        *,
        scores: Mapping[str, Any],
        passed: bool,
        comment: str | None = None,
        callback_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Record a review. A failed review may book a callback for the lead (and tell the CRM)."""
        require_supervisor(viewer)
        clean = checked_scores(self.settings, scores)
        now = self.clock.now()
        check_callback_request(passed, callback_at, now)
        async with self.sessions() as s, s.begin():
            rec = await self._visible(s, viewer, rid)
            review = RecordingReview(
                recording_id=rec.id,
                reviewer_id=viewer.user_id,
                scores=clean,
                total=sum(clean.values()),
                passed=passed,
                comment=comment,
                callback_at=callback_at,
                created_at=now,
            )
            s.add(review)
            if callback_at is not None:
                await book_review_callback(s, rec, review, callback_at, now, self.hours_for)
            await s.flush()
            out = review_dict(review)
        log.info("recording %s reviewed by %s: passed=%s", rid, viewer.user_id, passed)
        return out

    async def set_keep(self, viewer: Principal, rid: int, keep: bool) -> dict[str, Any]:
        require_supervisor(viewer)
        async with self.sessions() as s, s.begin():
            rec = await self._visible(s, viewer, rid)
            rec.keep = keep
            rec.keep_by = viewer.user_id if keep else None
            rec.keep_at = self.clock.now() if keep else None
        return {"id": rid, "keep": keep}

    async def set_contact_result(self, attempt_id: str, code: str | None) -> bool:
        """The disposition the specialist gave after the call (the dialer or CRM calls this)."""
        async with self.sessions() as s, s.begin():
            rec = (
                await s.scalars(select(Recording).where(Recording.attempt_id == attempt_id))
            ).first()
            if rec is None:
                return False
            rec.contact_result = code
            return True

    # -- integrity and retention -------------------------------------------------------------

    async def check(
        self, *, verify_checksums: bool = True, stale_after: float = 3600
    ) -> CheckReport:
        """Everything that should be there and is not, and everything that is and should not be."""
        return await self._integrity.check(
            self.clock.now(), verify_checksums=verify_checksums, stale_after=stale_after
        )

    async def unlinked_monitor_files(self) -> FileRows:
        """WAVs in the monitor folder that belong to nothing (`IntegrityCheck`)."""
        return await self._integrity.unlinked_monitor_files()

    async def retention(self, *, dry_run: bool = False) -> RetentionReport:
        """Delete recordings older than `retention_days`, except those a supervisor kept."""
        return await run_retention(
            self.sessions,
            self.store,
            now=self.clock.now(),
            retention_days=self.settings.retention_days,
            dry_run=dry_run,
        )

    # -- the daily job -----------------------------------------------------------------------

    async def daily_once(self) -> tuple[CheckReport, RetentionReport] | None:
        """Check and retention, under an advisory lock on PostgreSQL (one instance runs it)."""
        async with self.sessions() as lock_session:
            pg = lock_session.get_bind().dialect.name == "postgresql"
            if pg and not await lock_session.scalar(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": _DAILY_LOCK}
            ):
                log.info("recordings daily job: another instance holds the lock")
                return None
            try:
                report = await self.check()
                if not report.ok:
                    log.warning("recordings integrity check found problems: %s", report.as_dict())
                kept = await self.retention()
                log.info("recordings retention: %s deleted, %s kept", len(kept.deleted), kept.kept)
                return report, kept
            finally:
                if pg:
                    await lock_session.execute(
                        text("SELECT pg_advisory_unlock(:k)"), {"k": _DAILY_LOCK}
                    )
