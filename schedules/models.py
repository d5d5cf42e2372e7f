"""The calendar's own table: one row per (non-dry) distribution run, for audit."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from crm_sync.models import Base


class DistributionRun(Base):
    """随机等额分配: the seed of the shuffle and the whole allocation, as it was dealt."""

    __tablename__ = "distribution_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    started_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))
    finished_at: Mapped[datetime | None]
    seed: Mapped[int] = mapped_column(BigInteger)
    instance: Mapped[str] = mapped_column(String(200), default="")
    due_count: Mapped[int] = mapped_column(Integer, default=0)
    dealt_count: Mapped[int] = mapped_column(Integer, default=0)
    # {specialist id: {"new": n, "total": n}} and [{specialist, reason, blocking…}]
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    skipped: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # {specialist id: [lead ids in dealing order]}
    allocation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_distribution_runs_day", "day", "id"),)
