"""Branch e-mails sent: each branch's inaccurate numbers (and lapsed lists), once a calling day.

Composing is pure (`crm_sync.mail_compose`: rows in, an `EmailMessage` out); sending goes
through a `Mailer`: SMTP via aiosmtplib in production, `.eml` files in an outbox folder on the
embedded default. A `branch_mails` row per (branch, kind, day) makes the daily job idempotent:
a restart in the middle of the run never e-mails a branch twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol, TypeVar

import aiosmtplib
from sqlalchemy import Date, ForeignKey, String, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from crm_sync.mail_compose import (
    InaccurateNumber,
    LapsedPolicy,
    compose_inaccurate_numbers,
    email_address,
)
from crm_sync.models import Base, Branch

log = logging.getLogger(__name__)

R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)


class BranchMail(Base):
    """One report e-mailed to one branch on one day."""

    __tablename__ = "branch_mails"

    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  # inaccurate_numbers | lapsed
    day: Mapped[date] = mapped_column(Date)
    message_id: Mapped[str] = mapped_column(String(200))
    rows: Mapped[int]
    sent_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("branch_id", "kind", "day", name="uq_branch_mails_once"),)


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    def __init__(
        self,
        host: str,
        port: int = 25,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
    ) -> None:
        self._host, self._port = host, port
        self._username, self._password, self._starttls = username, password, starttls

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(
            message,
            hostname=self._host,
            port=self._port,
            username=self._username,
            password=self._password,
            start_tls=self._starttls,
            timeout=30,
        )


class FileMailer:
    """Writes each message as an .eml file: the embedded default has no mail server."""

    def __init__(self, outbox_dir: Path) -> None:
        self._dir = outbox_dir

    async def send(self, message: EmailMessage) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        msgid = str(message["Message-ID"]).strip("<>").replace("/", "_")
        path = self._dir / f"{msgid}.eml"
        path.write_bytes(bytes(message))
        log.info("mail to %s written to %s", message["To"], path)


class BranchRowsQuery(Protocol[R]):
    async def __call__(self, session: AsyncSession, day: date) -> dict[int, list[R]]: ...


class Compose(Protocol[R_contra]):
    def __call__(
        self,
        branch_name: str,
        branch_email: str,
        sender: str,
        day: date,
        rows: Sequence[R_contra],
        now: datetime,
    ) -> EmailMessage: ...


InaccurateNumbersQuery = BranchRowsQuery[InaccurateNumber]
LapsedQuery = BranchRowsQuery[LapsedPolicy]
INACCURATE_NUMBERS = "inaccurate_numbers"
LAPSED = "lapsed"


@dataclass(frozen=True, slots=True)
class MailReport:
    sent: dict[str, int]
    skipped_already_sent: list[str]
    skipped_no_email: list[str]
    failed: dict[str, str] = field(default_factory=dict)  # branch code -> error


async def _claim(
    sessions: async_sessionmaker[AsyncSession],
    kind: str,
    branch_id: int,
    day: date,
    msg: EmailMessage,
    rows: int,
) -> bool:
    """Claim (branch, day) before sending. True: send now — a new claim, or an earlier one whose
    send failed or was cut off (at least once: a lost branch notice is worse than a repeat)."""
    async with sessions() as session:
        session.add(
            BranchMail(
                branch_id=branch_id,
                kind=kind,
                day=day,
                message_id=str(msg["Message-ID"]),
                rows=rows,
            )
        )
        try:
            await session.commit()
            return True
        except IntegrityError:
            await session.rollback()
        row = await _claimed(session, kind, branch_id, day)
        if row.sent_at is not None:
            return False
        row.message_id, row.rows = str(msg["Message-ID"]), rows
        await session.commit()
        return True


async def _claimed(session: AsyncSession, kind: str, branch_id: int, day: date) -> BranchMail:
    return (
        await session.scalars(
            select(BranchMail).where(
                BranchMail.branch_id == branch_id,
                BranchMail.kind == kind,
                BranchMail.day == day,
            )
        )
    ).one()


async def send_inaccurate_numbers(
    sessions: async_sessionmaker[AsyncSession],
    mailer: Mailer,
    query: InaccurateNumbersQuery,
    day: date,
    sender: str,
    now: datetime | None = None,
) -> MailReport:
    """E-mail each branch the numbers marked inaccurate on `day`."""
    return await send_branch_lists(
        sessions, mailer, INACCURATE_NUMBERS, query, compose_inaccurate_numbers, day, sender, now
    )


async def send_branch_lists(
    sessions: async_sessionmaker[AsyncSession],
    mailer: Mailer,
    kind: str,
    query: BranchRowsQuery[R],
    compose: Compose[R],
    day: date,
    sender: str,
    now: datetime | None = None,
) -> MailReport:
    """E-mail each branch its list of `kind` for `day`: once per branch, kind and day when the
    mail goes through; a failed send is reported and retried by the next run."""
    now = now or datetime.now(UTC)
    what = kind.replace("_", " ")
    report = MailReport(sent={}, skipped_already_sent=[], skipped_no_email=[])
    async with sessions() as session:
        by_branch = await query(session, day)
        branches = {
            b.id: b
            for b in (
                await session.scalars(select(Branch).where(Branch.id.in_(list(by_branch))))
            ).all()
        }
    for branch_id, rows in sorted(by_branch.items()):
        branch = branches.get(branch_id)
        if branch is None or not rows:
            continue
        if not branch.email:
            log.warning(
                "branch %s has no e-mail address: %s %s not sent; "
                "set the branch's e-mail and the next run sends them",
                branch.code,
                len(rows),
                what,
            )
            report.skipped_no_email.append(branch.code)
            continue
        try:
            sent = await _send_one(sessions, mailer, kind, compose, branch, rows, day, sender, now)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # One branch's bad address or a refused message must not stop the others; the
            # runner retries the job, and branches already sent are not sent again.
            reason = _failure(exc)
            log.error("%s for %s not sent to %r: %s", what, branch.code, branch.email, reason)
            report.failed[branch.code] = reason
            continue
        if not sent:
            report.skipped_already_sent.append(branch.code)
            continue
        report.sent[branch.code] = len(rows)
        log.info("%s for %s: %s sent to %s", what, day, len(rows), branch.email)
    return report


async def _send_one(
    sessions: async_sessionmaker[AsyncSession],
    mailer: Mailer,
    kind: str,
    compose: Compose[R],
    branch: Branch,
    rows: Sequence[R],
    day: date,
    sender: str,
    now: datetime,
) -> bool:
    """Compose, claim and send one branch's mail; False when it was sent before."""
    assert branch.email is not None
    to = email_address(branch.email)
    msg = compose(branch.name, to, sender, day, rows, now)
    if not await _claim(sessions, kind, branch.id, day, msg, len(rows)):
        return False
    await mailer.send(msg)
    async with sessions() as session:
        (await _claimed(session, kind, branch.id, day)).sent_at = now
        await session.commit()
    return True


def _failure(exc: Exception) -> str:
    """The reason a branch's mail failed, in words that say what to do."""
    if isinstance(exc, ValueError):
        return (
            f"the branch's e-mail address cannot be used ({exc}); correct it in the branch "
            "list (re-import it) and the next run sends the mail"
        )
    if isinstance(exc, aiosmtplib.SMTPException | OSError):
        return f"the mail server refused or could not be reached: {exc}"
    return f"{type(exc).__name__}: {exc}"
