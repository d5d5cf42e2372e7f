"""Putting the CRM link together (called by the composition root, callcenter.service): the
outbox relay and its sink, the monitor that purges delivered messages and raises the alarm,
and the HTTP routes (`GET /api/outbox`, `POST /api/crm/changes`). Each background task is
owned by an aiohttp `cleanup_ctx`, so stopping the app stops it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm_sync import link_http
from crm_sync import outbox as ops
from crm_sync.config import CrmSettings
from crm_sync.export import export_day, hand_over, run_daily_export
from crm_sync.http import CRM_SESSIONS
from crm_sync.relay import OutboxRelay, RelayOptions
from crm_sync.sinks import Sink, TopicRouter, WebhookSink, build_sink
from schedules.clock import Clock

log = logging.getLogger(__name__)


class ContainerLike(Protocol):
    route_tables: list[web.RouteTableDef]
    cleanup_contexts: list[Callable[[web.Application], AsyncIterator[None]]]
    app_values: dict[web.AppKey[Any], object]


def relay_options(settings: CrmSettings) -> RelayOptions:
    return RelayOptions(
        batch=settings.relay_batch,
        key_batch=settings.relay_key_batch,
        concurrency=settings.relay_concurrency,
        lease=settings.relay_lease,
        poll=settings.relay_poll,
        workers=settings.relay_workers,
        retry_base=settings.retry_base,
        retry_max=settings.retry_max,
    )


async def upload_files(settings: CrmSettings, clock: Clock, files: list[Path]) -> list[str]:
    """Hand exported files to `crm.webhook_url` (see `crm_sync.export.hand_over`)."""
    if not settings.webhook_url:
        raise ValueError(
            "crm.export_upload is set but crm.webhook_url is not: set the URL "
            "(CALLCENTER_CRM__WEBHOOK_URL) or turn the upload off"
        )
    sink = WebhookSink(
        settings.webhook_url, settings.webhook_secrets, clock, timeout=settings.webhook_timeout
    )
    try:
        return await hand_over(sink, files)
    finally:
        await sink.close()


def build_relay(
    settings: CrmSettings,
    engine: AsyncEngine,
    clock: Clock,
    consumers: Mapping[str, Sink] | None = None,
) -> OutboxRelay:
    """The relay to the CRM sink; `consumers` take the internal topics (e.g. the recordings
    worker takes `attempt.recording`)."""
    sink = build_sink(
        settings.webhook_url,
        settings.webhook_secrets,
        clock,
        settings.webhook_timeout,
        settings.relay_concurrency,
    )
    router = TopicRouter(sink, consumers or {}, ops.INTERNAL_TOPICS)
    return OutboxRelay(engine, clock, router, relay_options(settings))


# While the alarm lasts, its error is logged again this often (the monitor's docstring).
ALARM_REPEAT = timedelta(minutes=15)


@dataclass
class OutboxMonitor:
    """Every `alarm_interval`: purge what is past retention, and log an error when the oldest
    undelivered message is older than `alarm_age` (the receiver is down, or refusing).

    The error is logged when the alarm is raised, then again every `ALARM_REPEAT` while it
    lasts, and its end is logged once: a check a minute that repeated the error filled the
    log of a long outage with the same line, and hid whether it had ended."""

    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    settings: CrmSettings
    alarms: list[str] = field(default_factory=list)  # the latest alarm texts, for tests/ops
    _logged_at: datetime | None = None  # when the raised alarm was last logged

    async def check(self) -> str | None:
        now = self.clock.now()
        async with self.sessions.begin() as s:
            purged = await ops.purge(s, now, timedelta(days=self.settings.retention_days))
            st = await ops.status(s, now)
        if purged:
            log.info("outbox: purged %d delivered messages past retention", purged)
        text = ops.alarm_text(st, self.settings.alarm_age)
        if text is None:
            if self._logged_at is not None:
                log.warning("outbox: the alarm has ended; nothing undelivered is that old now")
                self._logged_at = None
            return None
        if self._logged_at is None or now - self._logged_at >= ALARM_REPEAT:
            log.error("%s", text)
            self._logged_at = now
        self.alarms = [*self.alarms[-9:], text]
        return text

    async def run_forever(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox monitor: check failed; trying again")
            await self.clock.sleep(self.settings.alarm_interval)


@dataclass
class CrmLink:
    relay: OutboxRelay
    monitor: OutboxMonitor
    settings: CrmSettings
    clock: Clock
    timezone: str = "Asia/Shanghai"
    export_dir: Path = Path("data/crm-export")

    async def export(self, day: date) -> list[Path]:
        """The spreadsheet sink, on demand or from the daily job: into the folder, and to
        the webhook as files when `crm.export_upload` is set."""
        files = await export_day(
            self.monitor.sessions,
            day,
            ZoneInfo(self.timezone),
            self.export_dir,
            self.settings.export_formats,
            self.settings.export_csv_encoding,
        )
        if self.settings.export_upload:
            await upload_files(self.settings, self.clock, files)
        return files

    def install(self, container: ContainerLike) -> None:
        container.route_tables.append(link_http.routes)
        container.app_values[CRM_SESSIONS] = self.monitor.sessions
        container.app_values[link_http.CRM_LINK_SETTINGS] = self.settings
        container.app_values[link_http.CRM_LINK_CLOCK] = self.clock
        container.app_values[link_http.CRM_LINK_TIMEZONE] = self.timezone
        container.cleanup_contexts.append(self.cleanup_ctx)

    async def cleanup_ctx(self, _app: web.Application) -> AsyncIterator[None]:
        await self.relay.start()
        tasks = [asyncio.create_task(self.monitor.run_forever(), name="outbox-monitor")]
        if self.settings.export_time:
            at = time.fromisoformat(self.settings.export_time)
            tasks.append(
                asyncio.create_task(
                    run_daily_export(self.clock, at, ZoneInfo(self.timezone), self.export),
                    name="crm-export",
                )
            )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.relay.stop()


def build_crm_link(
    settings: CrmSettings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    timezone: str = "Asia/Shanghai",
    data_dir: Path = Path("data"),
    consumers: Mapping[str, Sink] | None = None,
) -> CrmLink:
    relay = build_relay(settings, engine, clock, consumers)
    export_dir = settings.export_dir or data_dir / "crm-export"
    return CrmLink(
        relay, OutboxMonitor(sessions, clock, settings), settings, clock, timezone, export_dir
    )
