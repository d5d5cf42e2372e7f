"""Wiring the running service: the dialer engine and its AMI links, recordings, the daily
jobs, the embedded PBX simulator, and the HTTP routes. Only the composition root imports
every package; each piece is started and stopped by the aiohttp app's `cleanup_ctx`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import PurePath
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.board.wiring import Board, install_board
from callcenter.bootstrap import Container
from callcenter.desk.wiring import install_desk
from callcenter.jobs import DailyJob, DailyJobRunner, parse_time
from callcenter.ops.wiring import install_ops
from callcenter.pages.wiring import install_pages
from callcenter.reports.wiring import install_reports, rollup_job
from crm_sync import http as crm_http
from crm_sync.mail import (
    LAPSED,
    FileMailer,
    Mailer,
    SmtpMailer,
    send_branch_lists,
    send_inaccurate_numbers,
)
from crm_sync.mail_compose import compose_lapsed
from crm_sync.outbox import TOPIC_ATTEMPT_RECORDING
from crm_sync.wiring import build_crm_link
from dialer import http as dialer_http
from dialer.ami.supervisor import AmiConfig
from dialer.engine import (
    AmiServerSpec,
    DialerConfig,
    DialerEngine,
)
from dialer.models import CallAttempt
from dialer.originate import DialPlan
from dialer.results import inaccurate_numbers_by_branch
from dialer.services import DialerService
from dialer.simulator import PbxSimulator
from recordings.integrity import AttemptsLookup, FilesLookup
from recordings.services import RecordingsService
from recordings.wiring import Recordings, build_recordings
from schedules import http as schedules_http
from schedules.config import DeskCalendar
from schedules.lapsed import lapsed_by_branch
from schedules.services import DeskService, run_day

log = logging.getLogger(__name__)

SIMULATOR = web.AppKey("simulator", PbxSimulator)
DESK = web.AppKey("desk", DeskCalendar)


@dataclass
class Service:
    container: Container
    desk: DeskCalendar
    engine: DialerEngine
    dialer: DialerService
    recordings: Recordings
    mailer: Mailer
    simulator: PbxSimulator | None = None
    board: Board | None = None

    async def daily_work(self, day: date) -> None:
        """The morning job: the timeline, then the distribution, in one transaction (idempotent)."""
        timeline, report = await run_day(
            self.container.sessions, day=day, now=self.container.clock.now(), desk=self.desk
        )
        log.info("daily work for %s: timeline %s; distribution %s", day, timeline, report)

    async def branch_mails(self, day: date) -> None:
        """Each branch's inaccurate numbers of the day and its open lapsed policies."""
        sessions, sender = self.container.sessions, self.container.settings.mail.sender
        now = self.container.clock.now()
        failed: set[str] = set()
        for what, report in (
            (
                "inaccurate numbers",
                await send_inaccurate_numbers(
                    sessions, self.mailer, inaccurate_numbers_by_branch, day, sender, now
                ),
            ),
            (
                "lapsed",
                await send_branch_lists(
                    sessions,
                    self.mailer,
                    LAPSED,
                    lapsed_by_branch,
                    compose_lapsed,
                    day,
                    sender,
                    now,
                ),
            ),
        ):
            log.info("branch e-mails (%s) for %s: %s", what, day, report)
            failed |= set(report.failed)
        if failed:
            # The job runner retries a failed job; branches already sent are not sent again.
            raise RuntimeError(f"branch e-mails not sent to {', '.join(sorted(failed))}")


def build_mailer(container: Container) -> Mailer:
    mail = container.settings.mail
    if mail.smtp_host:
        return SmtpMailer(
            mail.smtp_host,
            mail.smtp_port,
            mail.smtp_username,
            mail.smtp_password.get_secret_value() if mail.smtp_password else None,
            mail.smtp_starttls,
        )
    return FileMailer(container.settings.effective_mail_outbox)


def dialer_attempts_lookup(sessions: async_sessionmaker[AsyncSession]) -> AttemptsLookup:
    """The recordings integrity check's view of the dialer: attempt id -> outcome of the
    attempts with a specialist that ended in a window (automatic calls are not recorded).
    Here, in the composition root, so that recordings/ never imports the dialer."""

    async def lookup(since: datetime, until: datetime) -> dict[str, str]:
        async with sessions() as s:
            rows = await s.execute(
                select(CallAttempt.attempt_id, CallAttempt.outcome).where(
                    CallAttempt.ended_at >= since,
                    CallAttempt.ended_at < until,
                    CallAttempt.mode != "automatic",
                )
            )
            return {r.attempt_id: r.outcome or "unknown" for r in rows}

    return lookup


def dialer_files_lookup(sessions: async_sessionmaker[AsyncSession]) -> FilesLookup:
    """Of some file names in the monitor folder, those a call attempt names as its recording
    (the PBX reports a path of its own: only the last component is compared)."""

    async def lookup(names: Collection[str]) -> set[str]:
        wanted = list(names)
        found: set[str] = set()
        async with sessions() as s:
            for i in range(0, len(wanted), 200):
                chunk = wanted[i : i + 200]
                rows = await s.scalars(
                    select(CallAttempt.recording_file).where(
                        or_(
                            CallAttempt.recording_file.in_(chunk),
                            *(
                                CallAttempt.recording_file.endswith("/" + n, autoescape=True)
                                for n in chunk
                            ),
                        )
                    )
                )
                found |= {PurePath(r).name for r in rows.all() if r}
        return found & set(wanted)

    return lookup


def recordings_for(container: Container, desk: DeskCalendar) -> Recordings:
    settings = container.settings
    return build_recordings(
        settings.recordings,
        sessions=container.sessions,
        clock=container.clock,
        recordings_dir=settings.effective_recordings_dir,
        monitor_dir=settings.effective_monitor_dir,
        timezone=settings.timezone,
        attempts_lookup=dialer_attempts_lookup(container.sessions),
        files_lookup=dialer_files_lookup(container.sessions),
        hours_for=desk.hours,
    )


def recordings_job(recordings: RecordingsService, at: str) -> DailyJob:
    """The recordings' integrity check and retention, every day (not only calling days), on
    the one daily-job runner: retried after a failure, caught up when started late."""

    async def run(_day: date) -> object:
        return await recordings.daily_once()

    return DailyJob("recordings check+retention", parse_time(at), run, calling_days_only=False)


def wire(
    container: Container,
    *,
    simulator: PbxSimulator | None = None,
    dialer_config: DialerConfig | None = None,
    daily_jobs: bool = True,
) -> Service:
    """Build every component and register routes and lifecycles on the container."""
    settings = container.settings
    desk = DeskCalendar.from_settings(settings)
    recordings = recordings_for(container, desk)

    servers = [
        AmiServerSpec(
            s.name,
            AmiConfig(
                host=s.host,
                port=simulator.port if simulator is not None else s.port,
                username=s.username,
                secret=s.secret.get_secret_value(),
                ping_interval=s.ping_interval,
                ping_timeout=s.ping_timeout,
            ),
            DialPlan(
                family=s.channel_family,
                caller_id=settings.dialer.caller_id,
                automatic_caller_id=settings.dialer.automatic_caller_id,
            ),
        )
        for s in settings.ami
        if s.enabled
    ]
    engine = DialerEngine(
        container.sessions,
        container.clock,
        servers,
        plan=desk.calling_plan,
        retry=desk.retry,
        config=replace(
            dialer_config or DialerConfig(),
            daily_calls_per_number=settings.daily_calls_per_number,
            reminder_message=settings.dialer.reminder_message,
            legal_max_abandon=settings.dialer.legal_max_abandon,
        ),
        timeline=desk.rules,
    )
    service = Service(
        container=container,
        desk=desk,
        engine=engine,
        dialer=DialerService(engine),
        recordings=recordings,
        mailer=build_mailer(container),
        simulator=simulator,
    )

    # Order matters for shutdown: cleanup_ctx unwinds in reverse, so the dialer stops
    # before recordings stop taking its files.
    recordings.install(container)
    # The CRM link (docs/crm.md): outbox relay, its monitor, inbound changes. Installed
    # before the dialer so that it stops after it, with the last results on their way.
    crm_link = build_crm_link(
        settings.crm,
        container.engine,
        container.sessions,
        container.clock,
        settings.timezone,
        settings.data_dir,
        # Recording ingest rides the outbox: the attempt's result commits a durable
        # `attempt.recording` message, and the relay hands it to the recordings worker.
        consumers={TOPIC_ATTEMPT_RECORDING: recordings.consumer()},
    )
    crm_link.install(container)
    container.route_tables += [dialer_http.routes, crm_http.routes, schedules_http.routes]
    container.app_values[schedules_http.DESK_SERVICE] = DeskService(
        container.sessions, desk, container.clock
    )
    container.app_values[dialer_http.DIALER] = service.dialer
    container.app_values[DESK] = desk
    container.app_values[crm_http.CRM_SESSIONS] = container.sessions
    install_pages(container, service.dialer, engine, desk.tz)
    install_ops(container, engine, [s.name for s in settings.ami if not s.enabled])
    install_desk(container, service.dialer, recordings.service, desk)
    reports = install_reports(container, desk)

    async def dialer_ctx(_app: web.Application) -> AsyncIterator[None]:
        await engine.start()
        try:
            yield
        finally:
            await engine.stop()

    container.cleanup_contexts.append(dialer_ctx)
    # After the dialer's: stops first, taking this process's rows off the boards.
    service.board = install_board(container, engine, desk.hours, desk.tz)

    if daily_jobs:
        tz = ZoneInfo(settings.timezone)
        runner = DailyJobRunner(
            container.clock,
            tz,
            [
                DailyJob("timeline+distribution", desk.distribution_time, service.daily_work),
                # After the afternoon window and its last calls, so the day's numbers are in.
                DailyJob(
                    "branch e-mails", parse_time(settings.branch_mail_time), service.branch_mails
                ),
                recordings_job(recordings.service, settings.recordings.daily_at),
                rollup_job(reports),
            ],
            desk.is_calling_day,
        )

        async def jobs_ctx(_app: web.Application) -> AsyncIterator[None]:
            import asyncio
            import contextlib

            task = asyncio.create_task(runner.run_forever(), name="daily-jobs")
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        container.cleanup_contexts.append(jobs_ctx)
    return service
