"""How the composition root plugs recordings in (it passes plain values; no callcenter import).

rec = build_recordings(settings.recordings, sessions=…, clock=…,
                       recordings_dir=settings.effective_recordings_dir,
                       monitor_dir=settings.effective_monitor_dir,
                       timezone=settings.timezone)
rec.install(container)      # route table, app keys, cleanup_ctx (the ingest workers)
build_crm_link(..., consumers={"attempt.recording": rec.consumer()})
# the dialer commits an `attempt.recording` outbox message with the attempt's result; the
# outbox relay hands it to the consumer, which queues the file for ingest
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.clock import Clock
from crm_sync.sinks import Outgoing, Verdict, VerdictKind
from recordings.config import RecordingSettings
from recordings.exceptions import StoreError
from recordings.http import RECORDINGS, routes
from recordings.ingest import Ingest, RecordingJob
from recordings.integrity import AttemptsLookup, FilesLookup
from recordings.services import RecordingsService
from recordings.store import LocalStore, RecordingStore, S3Store
from schedules.windows import CallingHours

log = logging.getLogger(__name__)

INGEST = web.AppKey("recordings_ingest", Ingest)


class ContainerLike(Protocol):
    route_tables: list[web.RouteTableDef]
    cleanup_contexts: list[Callable[[web.Application], AsyncIterator[None]]]
    app_values: dict[web.AppKey[Any], object]


class RecordingsConsumer:
    """The recordings worker's end of the outbox: each durable `attempt.recording` message
    (written with the attempt's result) becomes a `pending` recording row, queued for ingest.
    The message counts as delivered only once that row is committed; `submit` is idempotent
    per attempt, so the relay's "at least once" queues a recording once."""

    name = "recordings"

    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest

    async def deliver(self, message: Outgoing) -> Verdict:
        p = message.payload
        try:
            job = RecordingJob(
                attempt_id=p["attempt_id"],
                lead_id=p.get("lead_id"),
                specialist_id=p.get("specialist_id"),
                wav_path=p["recording"],
                outcome=p.get("outcome") or "unknown",
                ended_at=datetime.fromisoformat(p["ended_at"]),
                talk_seconds=p.get("talk_seconds"),
            )
            rid = await self.ingest.submit(job)
        except (KeyError, TypeError, ValueError) as exc:
            # A message this worker can never take (e.g. its lead is gone): parked with the
            # reason, for `callcenter outbox list --state parked`.
            return Verdict(VerdictKind.PARK, f"cannot ingest: {type(exc).__name__}: {exc}")
        log.debug(
            "attempt %s: recording %s queued from outbox %s", p["attempt_id"], rid, message.id
        )
        return Verdict(VerdictKind.DELIVERED)

    async def close(self) -> None:
        return None


def build_store(settings: RecordingSettings, recordings_dir: Path) -> RecordingStore:
    if settings.store == "s3":
        if not settings.s3_bucket:
            raise StoreError("recordings.store = 's3' needs recordings.s3_bucket")
        return S3Store.connect(
            settings.s3_bucket, settings.s3_prefix, settings.s3_endpoint_url, settings.s3_region
        )
    return LocalStore(recordings_dir / "store")


@dataclass
class Recordings:
    service: RecordingsService
    ingest: Ingest
    timezone: str

    async def cleanup_ctx(self, _app: web.Application) -> AsyncIterator[None]:
        # The daily check and retention (`service.daily_once`) run on the service's one
        # daily-job runner (callcenter.jobs), with its retries and catch-up.
        await self.ingest.start()
        try:
            yield
        finally:
            await self.ingest.stop()

    def consumer(self) -> RecordingsConsumer:
        """What the outbox relay hands `attempt.recording` messages to."""
        return RecordingsConsumer(self.ingest)

    def install(self, container: ContainerLike) -> None:
        container.route_tables.append(routes)
        container.app_values[RECORDINGS] = self.service
        container.app_values[INGEST] = self.ingest
        container.cleanup_contexts.append(self.cleanup_ctx)


def build_recordings(
    settings: RecordingSettings,
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    recordings_dir: Path,
    monitor_dir: Path,
    timezone: str = "Asia/Shanghai",
    attempts_lookup: AttemptsLookup | None = None,
    files_lookup: FilesLookup | None = None,
    store: RecordingStore | None = None,
    hours_for: Callable[[str], CallingHours] | None = None,
) -> Recordings:
    store = store or build_store(settings, recordings_dir)
    service = RecordingsService(
        sessions,
        store,
        clock,
        settings,
        attempts_lookup=attempts_lookup,
        monitor_dir=monitor_dir,
        files_lookup=files_lookup,
        hours_for=hours_for,
    )
    ingest = Ingest(
        sessions, store, clock, settings, monitor_dir=monitor_dir, work_dir=recordings_dir
    )
    return Recordings(service=service, ingest=ingest, timezone=timezone)
