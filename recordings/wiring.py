"""How the composition root plugs recordings in (it passes plain values; no callcenter import).

rec = build_recordings(settings.recordings, sessions=…, clock=…,
                       recordings_dir=settings.effective_recordings_dir,
                       monitor_dir=settings.effective_monitor_dir,
                       timezone=settings.timezone)
rec.install(container)      # route table, app keys, cleanup_ctx (the ingest workers)
await rec.ingest.submit(RecordingJob(...))   # the dialer, when an attempt ends
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
from recordings.config import RecordingSettings
from recordings.exceptions import StoreError
from recordings.http import RECORDINGS, routes
from recordings.ingest import Ingest, RecordingJob
from recordings.services import AttemptsLookup, FilesLookup, RecordingsService
from recordings.store import LocalStore, RecordingStore, S3Store
from schedules.windows import CallingHours

log = logging.getLogger(__name__)

INGEST = web.AppKey("recordings_ingest", Ingest)


class AttemptEndedLike(Protocol):
    """What the dialer's `on_attempt_ended` hook passes (dialer.engine.AttemptEnded)."""

    @property
    def attempt_id(self) -> str: ...
    @property
    def lead_id(self) -> int: ...
    @property
    def specialist_id(self) -> int | None: ...
    @property
    def outcome(self) -> str: ...
    @property
    def ended_at(self) -> datetime: ...
    @property
    def talk_seconds(self) -> float | None: ...
    @property
    def recording(self) -> str | None: ...


class ContainerLike(Protocol):
    route_tables: list[web.RouteTableDef]
    cleanup_contexts: list[Callable[[web.Application], AsyncIterator[None]]]
    app_values: dict[web.AppKey[Any], object]


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

    async def on_attempt_ended(self, ended: AttemptEndedLike) -> None:
        """The dialer's `on_attempt_ended` hook: queue the attempt's MixMonitor file.

        Attempts without a MIXMONITOR_FILENAME have nothing to ingest; an answered one among
        them is what the integrity check reports (through `attempts_lookup`).
        """
        if not ended.recording:
            log.debug("attempt %s ended without a recording", ended.attempt_id)
            return
        await self.ingest.submit(
            RecordingJob(
                attempt_id=ended.attempt_id,
                lead_id=ended.lead_id,
                specialist_id=ended.specialist_id,
                wav_path=ended.recording,
                outcome=ended.outcome,
                ended_at=ended.ended_at,
                talk_seconds=ended.talk_seconds,
            )
        )

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
