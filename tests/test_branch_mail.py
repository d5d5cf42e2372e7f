from __future__ import annotations

import asyncio
import csv
import email
import email.policy
import io
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.bootstrap import Container
from callcenter.service import wire
from callcenter.settings import Settings
from crm_sync.mail import (
    LAPSED,
    FileMailer,
    SmtpMailer,
    send_branch_lists,
    send_inaccurate_numbers,
)
from crm_sync.mail_compose import InaccurateNumber, compose_inaccurate_numbers, compose_lapsed
from crm_sync.models import Branch, Phone
from dialer.results import inaccurate_numbers_by_branch
from schedules.clock import VirtualClock
from schedules.config import DeskCalendar
from schedules.lapsed import lapsed_by_branch
from tests import schedules_rows as db_rows

DAY = date(2026, 12, 1)
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.arrived = threading.Semaphore(0)

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        raw = envelope.content  # type: ignore[attr-defined]
        self.messages.append(email.message_from_bytes(raw, policy=email.policy.default))  # type: ignore[arg-type]
        self.arrived.release()
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, int]]:
    inbox = _Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def _branches(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int, int]:
    async with sessions() as s:
        a = Branch(code="SJZ", name="石家庄分公司", email="sjz@example.com")
        b = Branch(code="TS", name="唐山分公司", email="ts@example.com")
        c = Branch(code="BD", name="保定分公司", email=None)
        s.add_all([a, b, c])
        await s.commit()
        return a.id, b.id, c.id


def _attachment_rows(message: EmailMessage) -> list[list[str]]:
    """The CSV attachment's rows, as a spreadsheet program would split them."""
    text = next(message.iter_attachments()).get_content().lstrip("\ufeff")  # type: ignore[attr-defined]
    return list(csv.reader(io.StringIO(text, newline="")))


def _query(rows: dict[int, list[InaccurateNumber]]):  # type: ignore[no-untyped-def]
    async def query(session: AsyncSession, day: date) -> dict[int, list[InaccurateNumber]]:
        return rows

    return query


async def test_each_branch_receives_its_own_inaccurate_numbers_over_smtp(sessions, smtp) -> None:
    inbox, port = smtp
    a, b, c = await _branches(sessions)
    rows = {
        a: [InaccurateNumber("P1", "张三", "+8613800000012", "third unanswered call", 3)],
        b: [
            InaccurateNumber("P2", "李四", "+8613800000016", "unallocated number", 1),
            InaccurateNumber("P3", "王五", "+8613800000015", "third call switched off", 3),
        ],
        c: [InaccurateNumber("P4", "赵六", "+8613800000012", "third unanswered call", 3)],
    }
    report = await send_inaccurate_numbers(
        sessions, SmtpMailer("127.0.0.1", port), _query(rows), DAY, "desk@example.com", NOW
    )
    assert report.sent == {"SJZ": 1, "TS": 2}
    assert report.skipped_no_email == ["BD"]
    for _ in range(2):  # the SMTP server's thread may still be handing messages over
        assert await asyncio.to_thread(inbox.arrived.acquire, True, 10)
    by_to = {str(m["To"]): m for m in inbox.messages}
    assert set(by_to) == {"sjz@example.com", "ts@example.com"}
    ts = by_to["ts@example.com"]
    assert "不准确号码" in str(ts["Subject"])
    body = ts.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "+8613800000016" in body and "+8613800000015" in body
    assert "+8613800000012" not in body
    attachment = next(ts.iter_attachments())
    assert "李四" in attachment.get_content()


async def test_a_second_run_the_same_day_sends_nothing_twice(sessions, tmp_path: Path) -> None:
    a, _, _ = await _branches(sessions)
    rows = {a: [InaccurateNumber("P1", "张三", "+8613800000012", "third unanswered call", 3)]}
    mailer = FileMailer(tmp_path / "outbox")
    first = await send_inaccurate_numbers(sessions, mailer, _query(rows), DAY, "d@x", NOW)
    second = await send_inaccurate_numbers(sessions, mailer, _query(rows), DAY, "d@x", NOW)
    assert first.sent == {"SJZ": 1}
    assert second.sent == {} and second.skipped_already_sent == ["SJZ"]
    files = list((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 1
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert parsed["To"] == "sjz@example.com"


class _FlakyMailer:
    def __init__(self, fail_for: set[str]) -> None:
        self.fail_for = fail_for
        self.sent: list[str] = []

    async def send(self, message: EmailMessage) -> None:
        if str(message["To"]) in self.fail_for:
            raise OSError("connection refused")
        self.sent.append(str(message["To"]))


async def test_a_failed_send_is_reported_and_sent_by_the_next_run(sessions) -> None:
    a, b, _ = await _branches(sessions)
    rows = {
        a: [InaccurateNumber("P1", "张三", "+8613800000012", "third unanswered call", 3)],
        b: [InaccurateNumber("P2", "李四", "+8613800000016", "unallocated number", 1)],
    }
    mailer = _FlakyMailer({"sjz@example.com"})
    first = await send_inaccurate_numbers(sessions, mailer, _query(rows), DAY, "d@x", NOW)
    assert first.sent == {"TS": 1} and set(first.failed) == {"SJZ"}
    mailer.fail_for.clear()
    second = await send_inaccurate_numbers(sessions, mailer, _query(rows), DAY, "d@x", NOW)
    assert second.sent == {"SJZ": 1} and second.skipped_already_sent == ["TS"]
    assert mailer.sent == ["ts@example.com", "sjz@example.com"]


async def test_each_branch_gets_its_open_lapsed_policies_with_the_central_ones_marked(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    a, b, _ = await _branches(sessions)
    async with sessions() as s:
        (owner,) = await db_rows.specialists(s, 1)
        expired = date(2026, 11, 27)
        _, fresh = await db_rows.policy_with_lead(
            s,
            expired,
            kind="lapsed",
            status="assigned",
            branch_id=a,
            owner_id=owner.id,
            distributed_on=DAY,
        )
        _, old = await db_rows.policy_with_lead(
            s, expired, kind="lapsed", status="due", branch_id=a
        )
        assert fresh is not None and old is not None
        old.central = True
        await db_rows.policy_with_lead(s, expired, kind="lapsed", status="closed", branch_id=a)
        await db_rows.policy_with_lead(s, expired, kind="lapsed", branch_id=a, renewed=True)
        await db_rows.policy_with_lead(s, expired, kind="renewal", status="due", branch_id=a)
        await db_rows.policy_with_lead(s, expired, kind="lapsed", status="due", branch_id=b)
        await s.commit()
        numbers = {
            lead.id: (await s.get(Phone, lead.phone_id)).e164  # type: ignore[union-attr]
            for lead in (fresh, old)
        }
    outbox = tmp_path / "outbox"
    report = await send_branch_lists(
        sessions, FileMailer(outbox), LAPSED, lapsed_by_branch, compose_lapsed, DAY, "d@x", NOW
    )
    assert report.sent == {"SJZ": 2, "TS": 1}
    mails = [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in outbox.glob("*.eml")
    ]
    (sjz,) = [m for m in mails if m["To"] == "sjz@example.com"]
    assert "脱保清单" in str(sjz["Subject"]) and "中心处理 1" in str(sjz["Subject"])
    csv_rows = _attachment_rows(sjz)
    # Central first; the specialist who has the branch's own lead is named.
    assert csv_rows[1][2:] == ["'" + numbers[old.id], "2026-11-27", "是", ""]
    assert csv_rows[2][2] == "'" + numbers[fresh.id] and csv_rows[2][-1] == owner.name
    assert len(csv_rows) == 3

    # Once a day per branch, and independent of the inaccurate-numbers mail of the same day.
    again = await send_branch_lists(
        sessions, FileMailer(outbox), LAPSED, lapsed_by_branch, compose_lapsed, DAY, "d@x", NOW
    )
    assert again.sent == {} and sorted(again.skipped_already_sent) == ["SJZ", "TS"]
    rows_a = {a: [InaccurateNumber("P1", "张三", "+8613800000012", "third unanswered call", 3)]}
    other = await send_inaccurate_numbers(
        sessions, FileMailer(outbox), _query(rows_a), DAY, "d@x", NOW
    )
    assert other.sent == {"SJZ": 1}


async def _inaccurate_and_lapsed(s: AsyncSession, branch_id: int, expiry: date) -> None:
    """A closed lead whose number was marked inaccurate today, and an open lapsed policy."""
    _, lead = await db_rows.policy_with_lead(s, expiry, status="closed", branch_id=branch_id)
    assert lead is not None
    phone = await s.get(Phone, lead.phone_id)
    assert phone is not None
    phone.accuracy, phone.accuracy_reason = "inaccurate", "third unanswered call"
    phone.accuracy_set_at = NOW
    await db_rows.policy_with_lead(
        s, date(2026, 11, 27), kind="lapsed", status="due", branch_id=branch_id
    )


async def test_the_daily_branch_job_sends_inaccurate_numbers_and_lapsed_lists(
    db_url: str, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    a, _, _ = await _branches(sessions)
    async with sessions() as s:
        await _inaccurate_and_lapsed(s, a, date(2026, 12, 20))
        await s.commit()
    settings = Settings(data_dir=tmp_path, database_url=db_url)
    container = Container(
        settings=settings, clock=VirtualClock(NOW), engine=engine, sessions=sessions
    )
    await wire(container, daily_jobs=False).branch_mails(DAY)
    subjects = sorted(
        str(email.message_from_bytes(p.read_bytes(), policy=email.policy.default)["Subject"])
        for p in settings.effective_mail_outbox.glob("*.eml")
    )
    assert len(subjects) == 2
    assert "不准确号码" in subjects[0] and "脱保清单" in subjects[1], subjects


async def test_a_branch_address_with_a_line_break_fails_alone_and_is_sent_once_corrected(
    db_url: str, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    a, b, _ = await _branches(sessions)
    async with sessions() as s:
        bad = await s.get(Branch, a)
        assert bad is not None
        bad.email = "sjz@example.com\r\nBcc: thief@example.net"  # as an older import stored it
        await _inaccurate_and_lapsed(s, a, date(2026, 12, 20))
        await _inaccurate_and_lapsed(s, b, date(2026, 12, 21))
        await s.commit()
    settings = Settings(data_dir=tmp_path, database_url=db_url)
    container = Container(
        settings=settings, clock=VirtualClock(NOW), engine=engine, sessions=sessions
    )
    service = wire(container, daily_jobs=False)
    with pytest.raises(RuntimeError, match="SJZ"):  # so that the job runner retries it
        await service.branch_mails(DAY)

    def sent_to() -> list[str]:
        return sorted(
            str(email.message_from_bytes(p.read_bytes(), policy=email.policy.default)["To"])
            for p in settings.effective_mail_outbox.glob("*.eml")
        )

    assert sent_to() == ["ts@example.com", "ts@example.com"]  # both lists of the good branch
    report = await send_inaccurate_numbers(
        sessions, FileMailer(tmp_path / "unused"), inaccurate_numbers_by_branch, DAY, "d@x", NOW
    )
    assert report.skipped_already_sent == ["TS"]
    assert "e-mail address" in report.failed["SJZ"] and "re-import" in report.failed["SJZ"]

    async with sessions() as s:
        fixed = await s.get(Branch, a)
        assert fixed is not None
        fixed.email = "sjz@example.com"
        await s.commit()
    await service.branch_mails(DAY)  # the retry
    assert sent_to() == ["sjz@example.com"] * 2 + ["ts@example.com"] * 2


async def test_each_inaccurate_number_says_what_happened_and_how_many_calls_it_had(
    session: AsyncSession,
) -> None:
    """Three unanswered callback calls and a number not in service on its first call: the
    mail claims no "three calls" for all rows; each row gives its own cause and count."""
    sh = ZoneInfo("Asia/Shanghai")
    desk = DeskCalendar()
    branch = Branch(code="SJZ", name="石家庄分公司", email="sjz@example.com")
    session.add(branch)
    await session.flush()
    _, unanswered = await db_rows.policy_with_lead(
        session, date(2026, 12, 20), kind="callback", status="due", branch_id=branch.id
    )
    _, wrong = await db_rows.policy_with_lead(
        session, date(2026, 12, 21), kind="callback", status="due", branch_id=branch.id
    )
    assert unanswered is not None and wrong is not None
    for day in (1, 2, 3):
        await db_rows.call_ended(
            session, unanswered, "no_answer", now=datetime(2026, 12, day, 16, tzinfo=sh), desk=desk
        )
    await db_rows.call_ended(
        session, wrong, "wrong_number", now=datetime(2026, 12, 3, 10, tzinfo=sh), desk=desk
    )
    await session.commit()

    by_branch = await inaccurate_numbers_by_branch(session, date(2026, 12, 3))
    rows = by_branch[branch.id]
    assert [(r.reason, r.attempts) for r in rows] == [
        ("三次未接通 not reached in 3 calls", 3),
        ("空号/号码错误 number not in service", 1),
    ]
    msg = compose_inaccurate_numbers(
        branch.name, "sjz@example.com", "d@x", date(2026, 12, 3), rows, NOW
    )
    body = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "三次回访" not in body and "three" not in body
    assert "三次未接通 not reached in 3 calls  呼叫 3 次 / 3 calls" in body
    assert "空号/号码错误 number not in service  呼叫 1 次 / 1 call" in body
    attachment = _attachment_rows(msg)
    assert [r[3:] for r in attachment[1:]] == [
        ["三次未接通 not reached in 3 calls", "3"],
        ["空号/号码错误 number not in service", "1"],
    ]
