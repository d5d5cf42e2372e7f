"""From "the attempt ended" to a stored, verified, linked recording.

The dialer calls `await ingest.submit(RecordingJob(...))` when an attempt ends. `submit` writes
a `pending` row at once (so a crash loses nothing: pending rows are queued again at start) and
returns; asyncio worker tasks then find the file in the monitor folder, wait until it is stable
(MixMonitor sends no stop event), run `audio.process_wav` in the worker pool, store and verify
the compressed copy, and record it with its CRM outbox row in one transaction. The WAV is
removed only after that commit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.clock import Clock
from crm_sync.models import OutboxMessage
from recordings.audio import CONTENT_TYPES, AudioOptions, AudioResult, process_wav
from recordings.config import RecordingSettings
from recordings.exceptions import StoreError, UnsafePath
from recordings.ingest_rules import (
    TOPIC_STORED,
    mark_stored,
    recording_url,
    resolve_in_monitor,
    retry_after,
    storage_key,
)
from recordings.models import Recording, RecordingStatus
from recordings.store import RecordingStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecordingJob:
    """What the dialer knows when an attempt ends.

    `wav_path` is the MIXMONITOR_FILENAME the PBX reported (its own path, e.g.
    /var/spool/asterisk/monitor/1795779201.0.wav); only its name is looked up, in the
    configured monitor folder.
    """

    attempt_id: str
    lead_id: int | None
    specialist_id: int | None
    wav_path: str | PurePath
    outcome: str
    ended_at: datetime
    talk_seconds: float | None = None
    contact_result: str | None = None


class _AlreadyDone(Exception):
    """The row left `pending` while we worked on it."""


class Ingest:
    """The recording worker: a queue, asyncio tasks that wait on files, and a worker pool."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        store: RecordingStore,
        clock: Clock,
        settings: RecordingSettings,
        *,
        monitor_dir: Path,
        work_dir: Path,
        executor: Executor | None = None,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.clock = clock
        self.settings = settings
        self.monitor_dir = monitor_dir
        self.staging_dir = work_dir / "staging"
        self.quarantine_dir = work_dir / "quarantine"
        self.options = AudioOptions(
            format=settings.format,
            bitrate=settings.bitrate,
            silence_threshold_dbfs=settings.silence_threshold_dbfs,
            silence_window_ms=settings.silence_window_ms,
            waveform_points=settings.waveform_points,
        )
        self._executor = executor
        self._own_executor = executor is None
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._queued: set[int] = set()

    @property
    def pool_size(self) -> int:
        return self.settings.workers or os.cpu_count() or 1

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        for d in (self.monitor_dir, self.staging_dir, self.quarantine_dir):
            d.mkdir(parents=True, exist_ok=True)
        if self._executor is None:
            if self.settings.executor == "process":
                self._executor = ProcessPoolExecutor(self.pool_size)
            else:
                self._executor = ThreadPoolExecutor(self.pool_size, "recordings")
        # More waiting tasks than pool slots: a task that is only watching a file grow must
        # not hold back a finished file behind it.
        for i in range(self.pool_size * 4):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"recordings-{i}"))
        if self.settings.retry_delays:
            self._tasks.append(asyncio.create_task(self._retry_loop(), name="recordings-retry"))
        async with self.sessions() as s:
            pending = (
                await s.scalars(
                    select(Recording.id)
                    .where(Recording.status == RecordingStatus.PENDING.value)
                    .order_by(Recording.id)
                )
            ).all()
        for rid in pending:
            self._enqueue(rid)
        if pending:
            log.info("recordings: %s pending recordings queued again", len(pending))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    async def cleanup_ctx(self, _app: Any) -> AsyncIterator[None]:
        """For aiohttp `app.cleanup_ctx`: the app's lifecycle owns the worker."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def drain(self) -> None:
        """Wait until every queued recording has been processed."""
        await self._queue.join()

    # -- entry point -------------------------------------------------------------------------

    async def submit(self, job: RecordingJob) -> int:
        """Record that an attempt has (or should have) a recording and queue it; returns its id.

        Idempotent per attempt id: submitting the same attempt again returns the same row and
        queues it only if it is still pending.
        """
        if job.ended_at.tzinfo is None:
            raise ValueError("ended_at must be timezone-aware")
        name = PurePath(str(job.wav_path)).name
        async with self.sessions() as s:
            rec = Recording(
                attempt_id=job.attempt_id,
                lead_id=job.lead_id,
                specialist_id=job.specialist_id,
                outcome=job.outcome,
                contact_result=job.contact_result,
                source_name=name[:255],
                status=RecordingStatus.PENDING.value,
                ended_at=job.ended_at,
                talk_seconds=job.talk_seconds,
                created_at=self.clock.now(),
            )
            s.add(rec)
            try:
                await s.commit()
                rid, status = rec.id, rec.status
            except IntegrityError as exc:
                await s.rollback()
                row = (
                    await s.execute(
                        select(Recording.id, Recording.status).where(
                            Recording.attempt_id == job.attempt_id
                        )
                    )
                ).first()
                if row is None:  # not a duplicate: an unknown lead or specialist
                    raise ValueError(f"cannot record attempt {job.attempt_id}: {exc.orig}") from exc
                rid, status = row.id, row.status
        if status == RecordingStatus.PENDING.value:
            self._enqueue(rid)
        return rid

    def _enqueue(self, rid: int) -> None:
        if rid not in self._queued:
            self._queued.add(rid)
            self._queue.put_nowait(rid)

    async def _worker(self) -> None:
        while True:
            rid = await self._queue.get()
            try:
                await self.process(rid)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The row stays pending and is retried at the next start; the worker goes on.
                log.exception("recording %s: unexpected error", rid)
            finally:
                self._queued.discard(rid)
                self._queue.task_done()

    # -- one recording -----------------------------------------------------------------------

    async def process(self, rid: int) -> str:
        async with self.sessions() as s:
            rec = await s.get(Recording, rid)
            if rec is None or rec.status != RecordingStatus.PENDING.value:
                return rec.status if rec else "gone"
        try:
            # On a network share even a stat can stall: keep it off the event loop.
            src = await asyncio.to_thread(resolve_in_monitor, rec.source_name, self.monitor_dir)
        except UnsafePath as exc:
            log.warning("recording %s (%s): %s", rid, rec.attempt_id, exc)
            return await self._finish(rid, RecordingStatus.MISSING, error=str(exc))
        if not await self.wait_until_stable(src):
            return await self._finish(
                rid,
                RecordingStatus.MISSING,
                error=f"{src.name} did not appear in {self.monitor_dir} "
                f"within {self.settings.appear_timeout:g} s",
            )
        out = self.staging_dir / f"{rid}.{self.options.format}"
        loop = asyncio.get_running_loop()
        result: AudioResult = await loop.run_in_executor(
            self._executor, process_wav, str(src), str(out), self.options
        )
        if result.kind == "no_audio":
            status = await self._finish(rid, RecordingStatus.NO_AUDIO, error=result.error)
            await asyncio.to_thread(src.unlink, True)
            return status
        if result.kind == "corrupt":
            kept = await asyncio.to_thread(self._quarantine, src, rid)
            log.warning(
                "recording %s (%s) is corrupt, kept as %s: %s",
                rid,
                rec.attempt_id,
                kept,
                result.error,
            )
            return await self._finish(
                rid, RecordingStatus.CORRUPT, error=f"{result.error}; kept as {kept}"
            )
        if result.kind == "failed" or result.output is None or result.sha256 is None:
            log.error("recording %s (%s): processing failed: %s", rid, rec.attempt_id, result.error)
            await asyncio.to_thread(out.unlink, True)
            return await self._finish(rid, RecordingStatus.FAILED, error=result.error)
        return await self._store(rec, src, out, result)

    async def wait_until_stable(self, path: Path) -> bool:
        """True once size and mtime are unchanged over `stable_checks` looks; False if it never
        appears within `appear_timeout` (all waits on the project clock)."""
        interval = self.settings.stable_interval
        waited = 0.0
        last: tuple[int, int] | None = None
        same = 0
        while True:
            try:
                st = await asyncio.to_thread(path.stat)
                seen: tuple[int, int] | None = (st.st_size, st.st_mtime_ns)
            except FileNotFoundError:
                seen = None
            if seen is None:
                if waited >= self.settings.appear_timeout:
                    return False
                last, same = None, 0
            elif seen == last:
                same += 1
                if same >= self.settings.stable_checks:
                    return True
            else:
                last, same = seen, 0
            await self.clock.sleep(interval)
            waited += interval

    def _quarantine(self, src: Path, rid: int) -> Path:
        dest = self.quarantine_dir / f"{rid}-{src.name}"
        shutil.move(str(src), dest)
        return dest

    async def _store(self, rec: Recording, src: Path, out: Path, result: AudioResult) -> str:
        """Store and verify the copy, then record it with its CRM message; the WAV goes last."""
        key = storage_key(rec, self.options.format)
        failed = await self._put_verified(rec, key, out, result)
        if failed is not None:
            return failed
        try:
            await self._record_stored(rec.id, key, result)
        except _AlreadyDone as done:
            # Another instance finished this recording first (e.g. both picked it up at start):
            # the object under this key is theirs now, so it stays.
            log.info("recording %s was finished elsewhere (%s)", rec.id, done)
            await asyncio.to_thread(out.unlink, True)
            return str(done)
        except Exception:
            # Not recorded: the stored copy would be an orphan; the WAV stays for a retry.
            await self._delete_quietly(key)
            await asyncio.to_thread(out.unlink, True)
            raise
        # Only now is the original expendable.
        await asyncio.to_thread(src.unlink, True)
        await asyncio.to_thread(out.unlink, True)
        log.info("recording %s (%s) stored as %s", rec.id, rec.attempt_id, key)
        return RecordingStatus.STORED.value

    async def _put_verified(
        self, rec: Recording, key: str, out: Path, result: AudioResult
    ) -> str | None:
        """Put the copy under `key` and read its checksum back; None when it is there intact,
        else the row's status after the failure (the copy removed, a retry planned)."""
        try:
            await self.store.put(key, out, CONTENT_TYPES[self.options.format])
            again = await self.store.sha256(key)
            if again != result.sha256:
                raise StoreError(f"verification failed for {key}: {again} != {result.sha256}")
        except (StoreError, UnsafePath) as exc:
            log.error("recording %s (%s): %s", rec.id, rec.attempt_id, exc)
            await self._delete_quietly(key)
            await asyncio.to_thread(out.unlink, True)
            return await self._finish(rec.id, RecordingStatus.FAILED, error=str(exc))
        return None

    async def _record_stored(self, rid: int, key: str, result: AudioResult) -> None:
        """The row stored and its `recording.stored` message, in one transaction; _AlreadyDone
        if the row left `pending` meanwhile."""
        now = self.clock.now()
        url = recording_url(self.settings.url_template, rid)
        async with self.sessions() as s, s.begin():
            row = await s.get(Recording, rid, with_for_update=True)
            if row is None or row.status != RecordingStatus.PENDING.value:
                raise _AlreadyDone(row.status if row else "deleted")
            payload = mark_stored(row, result, self.options.format, key, url, now)
            s.add(
                OutboxMessage(
                    topic=TOPIC_STORED, key=f"lead:{row.lead_id}", payload=payload, created_at=now
                )
            )

    async def _delete_quietly(self, key: str) -> None:
        try:
            await self.store.delete(key)
        except Exception as exc:
            log.warning("could not remove %s from the store: %s", key, exc)

    async def _finish(self, rid: int, status: RecordingStatus, *, error: str | None) -> str:
        async with self.sessions() as s, s.begin():
            row = await s.get(Recording, rid, with_for_update=True)
            if row is None:
                return "deleted"
            if row.status != RecordingStatus.PENDING.value:
                return row.status  # finished elsewhere meanwhile: never overwrite a result
            row.status = status.value
            row.error = error
            if status is RecordingStatus.FAILED:
                row.tries += 1
                row.retry_at, note = retry_after(
                    self.clock.now(), row.tries, self.settings.retry_delays
                )
                row.error = f"{error}; {note}"
                log.warning("recording %s (%s): %s", rid, row.attempt_id, note)
        return status.value

    async def retry_due(self) -> int:
        """Queue again the failed recordings whose retry is due; returns how many."""
        now = self.clock.now()
        async with self.sessions() as s, s.begin():
            rows = (
                await s.scalars(
                    select(Recording)
                    .where(
                        Recording.status == RecordingStatus.FAILED.value,
                        Recording.retry_at <= now,
                    )
                    .order_by(Recording.retry_at, Recording.id)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                row.status = RecordingStatus.PENDING.value
                row.retry_at = None
            ids = [row.id for row in rows]
        for rid in ids:
            self._enqueue(rid)
        if ids:
            log.info("recordings: %s failed recordings tried again", len(ids))
        return len(ids)

    async def _retry_loop(self) -> None:
        while True:
            await self.clock.sleep(self.settings.retry_poll)
            try:
                await self.retry_due()
            except Exception:
                # The next look tries again: a database hiccup must not end the retries.
                log.exception("recordings: could not look for retries")
