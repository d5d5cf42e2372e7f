"""Queries and actions on recordings: review listing, reviews, keep, integrity check, retention.

Access rules live here, not in the handlers: a specialist sees only recordings of their own
calls (another's is "not found"), supervisors see all. Files are reached only through a row's
`storage_key` and the store, never through anything a request supplies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Select, and_, delete, exists, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.clock import Clock
from common.principal import Principal
from common.web import ApiError, require_own, require_supervisor
from crm_sync.models import Lead, OutboxMessage
from crm_sync.outbox import lead_message, status_message
from recordings.audio import CONTENT_TYPES
from recordings.config import RecordingSettings
from recordings.exceptions import StoreError, UnsafePath
from recordings.ingest import recording_url
from recordings.models import Recording, RecordingReview, RecordingStatus
from recordings.store import RecordingStore
from schedules.callbacks import book_callback, callback_time, lead_time_zone
from schedules.config import DeskCalendar
from schedules.windows import CallingHours

log = logging.getLogger(__name__)

# attempt id -> outcome for every attempt that ended in [since, until); the dialer provides it.
AttemptsLookup = Callable[[datetime, datetime], Awaitable[Mapping[str, str]]]
# Of these file names in the monitor folder, those an attempt of the dialer names as its
# recording (a call in progress, or one whose recording is still to be submitted).
FilesLookup = Callable[[Collection[str]], Awaitable[set[str]]]
FileRows = list[dict[str, Any]]  # an alias: the service has a method named `list`
UNLINKED_ADVICE = (
    "each file is named after the call's Uniqueid: find the call (the PBX's CDR) and ingest "
    "it with `callcenter recordings ingest FILE --attempt ATTEMPT_ID`, or move it out of "
    "the monitor folder if it belongs to no call of this desk"
)
TOPIC_DELETED = "recording.deleted"
TOPIC_CALLBACK = "lead.callback"
_DAILY_LOCK = 0x5EC0_0D1A  # PostgreSQL advisory lock id of the daily job


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


@dataclass(frozen=True, slots=True)
class AudioRef:
    key: str
    size: int
    content_type: str
    sha256: str


@dataclass
class CheckReport:
    checked_at: str
    answered_without_recording: list[dict[str, Any]] = field(default_factory=list)
    recordings_without_call: list[dict[str, Any]] = field(default_factory=list)
    header_only: list[dict[str, Any]] = field(default_factory=list)
    checksum_mismatches: list[dict[str, Any]] = field(default_factory=list)
    orphan_files: list[str] = field(default_factory=list)
    stale_pending: list[dict[str, Any]] = field(default_factory=list)
    # WAVs in the monitor folder that no recording row and no call attempt names: left by
    # a call nobody will ever submit (e.g. the service was killed before it knew the name).
    unlinked_monitor_files: list[dict[str, Any]] = field(default_factory=list)
    # Header-only files of calls that were never bridged: expected, counted for information.
    header_only_expected: int = 0

    @property
    def ok(self) -> bool:
        return not any(
            (
                self.answered_without_recording,
                self.recordings_without_call,
                self.header_only,
                self.checksum_mismatches,
                self.orphan_files,
                self.stale_pending,
                self.unlinked_monitor_files,
            )
        )

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}


@dataclass
class RetentionReport:
    cutoff: str
    dry_run: bool
    deleted: list[dict[str, Any]] = field(default_factory=list)
    kept: int = 0


def _summary(rec: Recording, reviewed: bool) -> dict[str, Any]:
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


def _review_dict(r: RecordingReview) -> dict[str, Any]:
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
        self.attempts_lookup = attempts_lookup
        self.monitor_dir = monitor_dir
        self.files_lookup = files_lookup

    # -- review listing ----------------------------------------------------------------------

    def _reviewed(self) -> Any:
        return exists().where(RecordingReview.recording_id == Recording.id)

    def _query(self, viewer: Principal, f: RecordingFilter) -> Select[Any]:
        result = func.coalesce(Recording.contact_result, Lead.contact_result)
        q = select(Recording, self._reviewed().label("reviewed")).outerjoin(
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
            conds.append(self._reviewed() if f.reviewed else ~self._reviewed())
        if f.status:
            conds.append(Recording.status == f.status)
        if f.campaign:
            conds.append(Lead.kind == f.campaign)
        if conds:
            q = q.where(and_(*conds))
        return q

    async def list(self, viewer: Principal, f: RecordingFilter) -> dict[str, Any]:
        q = self._query(viewer, f)
        async with self.sessions() as s:
            total = await s.scalar(select(func.count()).select_from(q.subquery()))
            rows = (
                await s.execute(
                    q.order_by(Recording.ended_at.desc(), Recording.id.desc())
                    .limit(min(max(f.limit, 1), 500))
                    .offset(max(f.offset, 0))
                )
            ).all()
        return {"total": total or 0, "items": [_summary(r[0], bool(r[1])) for r in rows]}

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
        out = _summary(rec, bool(reviews))
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
                "reviews": [_review_dict(r) for r in reviews],
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
        items = self.settings.rubric
        if set(scores) != set(items):
            raise ApiError(400, "scores must have exactly the rubric items", rubric=items)
        clean: dict[str, int] = {}
        for item in items:
            v = scores[item]
            if (
                isinstance(v, bool)
                or not isinstance(v, int)
                or not 0 <= v <= self.settings.score_max
            ):
                raise ApiError(
                    400, f"score {item!r} must be an integer 0..{self.settings.score_max}"
                )
            clean[item] = v
        now = self.clock.now()
        if callback_at is not None:
            if passed:
                raise ApiError(400, "a callback is booked only by a failed review")
            if callback_at.tzinfo is None:
                raise ApiError(400, "callback_at needs a time zone offset")
            if callback_at <= now:
                raise ApiError(400, "callback_at must be in the future")
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
                if rec.lead_id is None:
                    raise ApiError(409, "this recording's lead no longer exists")
                lead = await s.get(Lead, rec.lead_id, with_for_update=True)
                if lead is None:
                    raise ApiError(409, "this recording's lead no longer exists")
                tz = await lead_time_zone(s, lead)
                when, why = callback_time(
                    callback_at, now=now, hours=self.hours_for(lead.kind), tz=tz
                )
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
            await s.flush()
            out = _review_dict(review)
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

    # -- integrity ---------------------------------------------------------------------------

    async def check(
        self, *, verify_checksums: bool = True, stale_after: float = 3600
    ) -> CheckReport:
        """Everything that should be there and is not, and everything that is and should not be."""
        now = self.clock.now()
        since = now - timedelta(days=self.settings.retention_days)
        report = CheckReport(checked_at=now.isoformat())
        answered = set(self.settings.answered_outcomes)
        async with self.sessions() as s:
            recs = (
                await s.scalars(
                    select(Recording).where(Recording.ended_at >= since).order_by(Recording.id)
                )
            ).all()
            older_keys = set(
                (
                    await s.scalars(
                        select(Recording.storage_key).where(
                            Recording.ended_at < since, Recording.storage_key.is_not(None)
                        )
                    )
                ).all()
            )
        by_attempt = {r.attempt_id: r for r in recs}
        for r in recs:
            if r.status == RecordingStatus.NO_AUDIO.value:
                # Never-bridged calls (busy, no answer, …) leave a header-only file by design;
                # only an answered call with an empty recording is a problem.
                if r.outcome in answered:
                    report.header_only.append(
                        {"recording_id": r.id, "attempt_id": r.attempt_id, "outcome": r.outcome}
                    )
                else:
                    report.header_only_expected += 1
            elif r.outcome in answered and r.status in (
                RecordingStatus.MISSING.value,
                RecordingStatus.CORRUPT.value,
                RecordingStatus.FAILED.value,
            ):
                report.answered_without_recording.append(
                    {
                        "attempt_id": r.attempt_id,
                        "lead_id": r.lead_id,
                        "recording_id": r.id,
                        "reason": r.status,
                        "error": r.error,
                    }
                )
            if r.lead_id is None:
                report.recordings_without_call.append(
                    {"recording_id": r.id, "attempt_id": r.attempt_id, "reason": "no lead"}
                )
            if (
                r.status == RecordingStatus.PENDING.value
                and (now - r.created_at).total_seconds() > stale_after
            ):
                report.stale_pending.append({"recording_id": r.id, "attempt_id": r.attempt_id})
        if self.attempts_lookup is not None:
            # Up to the latest recording too: a simulated day may run ahead of this clock.
            until = max([now, *(r.ended_at for r in recs)]) + timedelta(seconds=1)
            attempts = await self.attempts_lookup(since, until)
            for attempt_id, outcome in sorted(attempts.items()):
                if outcome in answered and attempt_id not in by_attempt:
                    report.answered_without_recording.append(
                        {
                            "attempt_id": attempt_id,
                            "lead_id": None,
                            "recording_id": None,
                            "reason": "no recording submitted",
                            "error": None,
                        }
                    )
            for r in recs:
                if r.attempt_id not in attempts and r.lead_id is not None:
                    report.recordings_without_call.append(
                        {
                            "recording_id": r.id,
                            "attempt_id": r.attempt_id,
                            "reason": "attempt unknown to the dialer",
                        }
                    )
        known = {r.storage_key for r in recs if r.storage_key} | older_keys
        report.orphan_files = [k for k in await self.store.keys() if k not in known]
        report.unlinked_monitor_files = await self.unlinked_monitor_files()
        if verify_checksums:
            for r in recs:
                if r.status != RecordingStatus.STORED.value or not r.storage_key:
                    continue
                try:
                    actual: str | None = await self.store.sha256(r.storage_key)
                except StoreError:
                    actual = None
                if actual != r.sha256:
                    report.checksum_mismatches.append(
                        {
                            "recording_id": r.id,
                            "key": r.storage_key,
                            "expected": r.sha256,
                            "actual": actual or "missing",
                        }
                    )
        return report

    async def unlinked_monitor_files(self) -> FileRows:
        """WAVs in the monitor folder that belong to nothing: no recording row (of any status:
        a failed one keeps its WAV there for the retry) and no call attempt names them."""
        if self.monitor_dir is None:
            return []
        found = await asyncio.to_thread(_wavs_in, self.monitor_dir)
        if not found:
            return []
        async with self.sessions() as s:
            rows = await s.scalars(
                select(Recording.source_name).where(Recording.source_name.in_(list(found)))
            )
            claimed = set(rows.all())
        rest = [name for name in found if name not in claimed]
        if rest and self.files_lookup is not None:
            claimed |= await self.files_lookup(rest)
        return [
            {"file": name, "size_bytes": size, "modified": modified}
            for name, (size, modified) in sorted(found.items())
            if name not in claimed
        ]

    # -- retention ---------------------------------------------------------------------------

    async def retention(self, *, dry_run: bool = False) -> RetentionReport:
        """Delete recordings older than `retention_days`, except those a supervisor kept."""
        now = self.clock.now()
        cutoff = now - timedelta(days=self.settings.retention_days)
        report = RetentionReport(cutoff=cutoff.isoformat(), dry_run=dry_run)
        async with self.sessions() as s:
            old = (
                await s.scalars(
                    select(Recording).where(Recording.ended_at < cutoff).order_by(Recording.id)
                )
            ).all()
        for rec in old:
            if rec.keep:
                report.kept += 1
                continue
            item = {
                "recording_id": rec.id,
                "attempt_id": rec.attempt_id,
                "lead_id": rec.lead_id,
                "ended_at": rec.ended_at.isoformat(),
                "key": rec.storage_key,
            }
            report.deleted.append(item)
            if dry_run:
                continue
            async with self.sessions() as s, s.begin():
                gone = await s.execute(
                    delete(Recording).where(Recording.id == rec.id, Recording.keep.is_(False))
                )
                if not gone.rowcount:  # type: ignore[attr-defined]
                    report.deleted.pop()  # kept meanwhile
                    continue
                if rec.storage_key:
                    s.add(
                        OutboxMessage(
                            topic=TOPIC_DELETED,
                            key=f"lead:{rec.lead_id}",
                            payload={**item, "reason": "retention", "deleted_at": now.isoformat()},
                            created_at=now,
                        )
                    )
            # After the commit: a failure here leaves an orphan the check reports, never a row
            # pointing at nothing.
            if rec.storage_key:
                try:
                    await self.store.delete(rec.storage_key)
                except Exception as exc:
                    log.warning("retention: could not delete %s: %s", rec.storage_key, exc)
            log.info(
                "retention: deleted recording %s (attempt %s, lead %s, ended %s, %s)",
                rec.id,
                rec.attempt_id,
                rec.lead_id,
                item["ended_at"],
                rec.storage_key,
            )
        return report

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


def _wavs_in(folder: Path) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    if not folder.is_dir():
        return out
    for p in folder.iterdir():
        if p.suffix.lower() != ".wav" or not p.is_file() or p.is_symlink():
            continue
        st = p.stat()
        out[p.name] = (st.st_size, datetime.fromtimestamp(st.st_mtime, UTC).isoformat())
    return out
