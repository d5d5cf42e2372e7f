"""The recordings' integrity check: everything that should be there and is not, and everything
that is there and should not be.

Compares the recording rows of the retention period with the dialer's attempts (an answered
call without a recording, a recording of no call), the store's files (orphans, checksums) and
the monitor folder (WAVs nobody will ever submit). `callcenter recordings check` prints it;
the daily job (`RecordingsService.daily_once`) logs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recordings.config import RecordingSettings
from recordings.exceptions import StoreError
from recordings.models import Recording, RecordingStatus
from recordings.store import RecordingStore

# attempt id -> outcome for every attempt that ended in [since, until); the dialer provides it.
AttemptsLookup = Callable[[datetime, datetime], Awaitable[Mapping[str, str]]]
# Of these file names in the monitor folder, those an attempt of the dialer names as its
# recording (a call in progress, or one whose recording is still to be submitted).
FilesLookup = Callable[[Collection[str]], Awaitable[set[str]]]
FileRows = list[dict[str, Any]]
UNLINKED_ADVICE = (
    "each file is named after the call's Uniqueid: find the call (the PBX's CDR) and ingest "
    "it with `callcenter recordings ingest FILE --attempt ATTEMPT_ID`, or move it out of "
    "the monitor folder if it belongs to no call of this desk"
)


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


@dataclass(frozen=True)
class IntegrityCheck:
    sessions: async_sessionmaker[AsyncSession]
    store: RecordingStore
    settings: RecordingSettings
    attempts_lookup: AttemptsLookup | None = None
    monitor_dir: Path | None = None
    files_lookup: FilesLookup | None = None

    async def check(
        self, now: datetime, *, verify_checksums: bool = True, stale_after: float = 3600
    ) -> CheckReport:
        """Everything that should be there and is not, and everything that is and should not be."""
        since = now - timedelta(days=self.settings.retention_days)
        report = CheckReport(checked_at=now.isoformat())
        answered = set(self.settings.answered_outcomes)
        recs, older_keys = await self._recordings_since(since)
        _check_rows(report, recs, answered, now, stale_after)
        if self.attempts_lookup is not None:
            # Up to the latest recording too: a simulated day may run ahead of this clock.
            until = max([now, *(r.ended_at for r in recs)]) + timedelta(seconds=1)
            attempts = await self.attempts_lookup(since, until)
            _check_against_attempts(report, recs, attempts, answered)
        known = {r.storage_key for r in recs if r.storage_key} | older_keys
        report.orphan_files = [k for k in await self.store.keys() if k not in known]
        report.unlinked_monitor_files = await self.unlinked_monitor_files()
        if verify_checksums:
            await self._verify_checksums(report, recs)
        return report

    async def _recordings_since(
        self, since: datetime
    ) -> tuple[Sequence[Recording], set[str | None]]:
        """The recordings that ended since `since`, and the store keys of the older ones."""
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
        return recs, older_keys

    async def _verify_checksums(self, report: CheckReport, recs: Sequence[Recording]) -> None:
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


def _check_rows(
    report: CheckReport,
    recs: Sequence[Recording],
    answered: set[str],
    now: datetime,
    stale_after: float,
) -> None:
    """What the rows say on their own: empty or lost audio of answered calls, recordings of
    no lead, and recordings still pending after `stale_after` seconds."""
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


def _check_against_attempts(
    report: CheckReport,
    recs: Sequence[Recording],
    attempts: Mapping[str, str],
    answered: set[str],
) -> None:
    """Answered attempts of the dialer without a recording, and recordings of attempts the
    dialer does not know."""
    by_attempt = {r.attempt_id: r for r in recs}
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
