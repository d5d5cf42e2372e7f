"""The wallboard's tables (migration 0015_board).

`board_entries` is the desk's live state shared by every service process on one database:
each process writes its own seats, calls and AMI links (one row per thing, keyed by kind and
key) with a revision number of its own, and NOTIFYs `callcenter_board` (PostgreSQL) after the
commit; a board reads what changed since the revision it has. A call that ended stays as a
tombstone (`gone`) for a minute, so that a reader that polls (SQLite) still sees it go.

`supervisor_actions` is the audit log of listening in and taking over calls: who, whom, when,
what, and how it went. A row also carries the request to the process that owns the call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_sync.models import Base


class BoardEntry(Base):
    __tablename__ = "board_entries"
    __table_args__ = (Index("ix_board_entries_owner_rev", "owner", "rev"),)

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # seat, call, link, process
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))  # the process (BoardPublisher.owner)
    rev: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    gone: Mapped[bool] = mapped_column(Boolean, default=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime]


class SupervisorAction(Base):
    __tablename__ = "supervisor_actions"
    __table_args__ = (Index("ix_supervisor_actions_at", "requested_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    supervisor_id: Mapped[int] = mapped_column(ForeignKey("specialists.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))  # listen, whisper, barge, hangup, move
    attempt_id: Mapped[str] = mapped_column(String(64))
    specialist_id: Mapped[int | None] = mapped_column(
        ForeignKey("specialists.id", ondelete="SET NULL")
    )  # whom: the specialist on the call (None: an automatic call)
    target_seat: Mapped[str | None] = mapped_column(String(100))  # spy seat / move target
    channel: Mapped[str | None] = mapped_column(String(100))  # the channel acted on
    owner: Mapped[str] = mapped_column(String(64))  # the process that owns the call
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, done, failed
    message: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
