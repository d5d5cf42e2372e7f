"""The CRM receiver and the SMTP server both down for an hour of a calling day
(docs/reliability.md): the calls go on, their results wait in the outbox and reach the CRM
once, in order per lead, when it is back; the branch e-mail due in that hour is retried by
the daily-job runner and sent once. A loopback aiohttp receiver (tests/outbox_support.py)
and a loopback aiosmtpd server; engine, relay and job runner on one driven `VirtualClock`
(PostgreSQL: the relay is woken by NOTIFY; the figures are clock seconds)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import date, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.database import create_engine
from callcenter.jobs import DailyJob, DailyJobRunner
from crm_sync.mail import SmtpMailer, send_inaccurate_numbers
from crm_sync.mail_compose import InaccurateNumber
from crm_sync.models import Branch, OutboxMessage
from crm_sync.relay import OutboxRelay
from crm_sync.sinks import WebhookSink
from dialer.services import DialerService
from schedules.clock import VirtualClock
from tests.fault_support import check_whole, figure
from tests.outbox_support import SECRET, Receiver
from tests.test_branch_mail import _Inbox
from tests.test_dialer_support import (
    MONDAY_0930,
    make_engine,
    seed,
    spy_originates,
    start_simulator,
)
from tests.virtual_time import Driver

pytestmark = [
    pytest.mark.faults,
    pytest.mark.timeout(1200),
]  # an hour and more of clock time: `make faults`
LEADS = 30
TZ = ZoneInfo("Asia/Shanghai")


class Smtp:
    """A loopback SMTP server that can go away (its port then refuses) and come back."""

    def __init__(self) -> None:
        self.inbox = _Inbox()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    server = Smtp()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_crm_and_smtp_down_for_an_hour_lose_and_repeat_nothing(
    db_url: str,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    smtp: Smtp,
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("an hour of SQLite's 0.5 s relay poll is 7,200 rounds; PostgreSQL is woken")
    clock = VirtualClock(MONDAY_0930 + timedelta(minutes=30))  # 10:00 in Shanghai
    drive = Driver(clock, sessions)
    receiver = Receiver([SECRET], clock.now)
    await receiver.start()
    async with sessions() as s:
        await seed(s, specialists=0, leads=[("callback", "8", None)] * LEADS)
        branch = (await s.scalars(select(Branch))).one()
    # The relay on an engine of its own: its LISTEN connection stays checked out for good,
    # which the driver (counting the dialer's engine) would take for work that never ends.
    relay_engine = create_engine(db_url)
    relay = OutboxRelay(
        relay_engine, clock, WebhookSink(receiver.url, [SecretStr(SECRET)], clock, timeout=5.0),
        rand=lambda: 0.5,
    )  # fmt: skip
    numbers = {branch.id: [InaccurateNumber("P000001", "客户1", "+8613900000011", "空号", 3)]}

    async def query(_s: AsyncSession, _day: date) -> dict[int, list[InaccurateNumber]]:
        return numbers

    async def branch_mail(day: date) -> None:
        report = await send_inaccurate_numbers(
            sessions, SmtpMailer("127.0.0.1", smtp.port), query, day, "desk@example.com",
            clock.now(),
        )  # fmt: skip
        if report.failed:
            raise RuntimeError(f"branch e-mails not sent to {', '.join(report.failed)}")

    jobs = DailyJobRunner(
        clock, TZ, [DailyJob("branch mails", time(10, 30), branch_mail)], lambda _d: True
    )
    sim = await start_simulator(clock)
    with spy_originates(monkeypatch, clock) as spy:
        dialer = make_engine(sessions, clock, [("pbx1", sim)])
        await dialer.start()
        await relay.start()
        job_task = asyncio.ensure_future(jobs.run_forever())
        try:
            await dialer.wait_connected()
            down_at = clock.now()
            await receiver.stop()
            smtp.stop()
            service = DialerService(dialer)
            await service.update_campaign("callback", concurrency=3, trunk_max_calls=3)
            await service.start_campaign("callback")
            await drive.run_for(3600)
            back_at = clock.now()
            waiting = await _undelivered(sessions)
            await receiver.start()
            smtp.start()

            await drive.until(lambda: len(smtp.inbox.messages) >= 1, within=3600)
            mail_after = (clock.now() - back_at).total_seconds()

            async def all_delivered() -> bool:
                return not await _undelivered(sessions)

            await drive.until(all_delivered, within=3 * 3600)
            whole_after = (clock.now() - back_at).total_seconds()
        finally:
            job_task.cancel()
            await relay.stop()
            await relay_engine.dispose()
            await dialer.stop()
            await sim.stop()
            await receiver.stop()
    verdict = await check_whole(sessions, spy.times)
    verdict.assert_whole()
    async with sessions() as s:
        messages = (await s.scalars(select(OutboxMessage))).all()
    assert sorted(int(k) for k in receiver.accepted) == sorted(m.id for m in messages)
    for key in {m.key for m in messages}:
        got = receiver.ids_for(key)
        assert got == sorted(got), f"{key} out of order"
    assert len(smtp.inbox.messages) == 1  # sent once, after the outage
    delays = [(m.delivered_at - m.created_at).total_seconds() for m in messages if m.delivered_at]
    figure(
        "CRM receiver and SMTP down 1 h",
        calls=LEADS,
        outbox_messages=len(messages),
        waiting_when_back=waiting,
        max_delay_s=round(max(delays)),
        all_delivered_after_back_s=round(whole_after),
        mail_due_local="10:30",
        mail_sent_after_back_s=round(mail_after),
        duplicates_dropped=len(receiver.duplicates),
        down_from=f"{down_at.astimezone(TZ):%H:%M}",
    )


async def _undelivered(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as s:
        rows = await s.scalars(select(OutboxMessage.id).where(OutboxMessage.delivered_at.is_(None)))
        return len(rows.all())
