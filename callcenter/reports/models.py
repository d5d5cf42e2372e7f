"""Rollup tables of the reports (migration 0017_sales): one row per day and group, written by
`callcenter.reports.services.refresh_days` (the daily job, and on demand for days not yet
rolled up). A year of reports reads a few thousand of these rows instead of two million
attempts. Plain tables, not materialized views: SQLite has none, and a day is refreshed on
its own (a view is refreshed whole)."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, Float, Index, Integer, Numeric, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from crm_sync.models import Base


class ReportDay(Base):
    """A day whose rollup rows are written; a day without a row is rolled up when asked for."""

    __tablename__ = "report_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    refreshed_at: Mapped[datetime]


class Grain(enum.StrEnum):
    """How finely a `report_daily` row is grouped. A report reads the coarsest grain that
    answers it: a year of the desk by day or branch sums ~15,000 rows, not ~400,000."""

    FULL = "full"  # specialist, branch and kind of lead
    SPECIALIST = "specialist"  # per specialist (branch null, kind "*")
    BRANCH_KIND = "branch_kind"  # per branch and kind (specialist null)


class ReportDaily(Base):
    """Per day, specialist, branch (of the policy) and kind of lead, at three grains."""

    __tablename__ = "report_daily"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    grain: Mapped[str] = mapped_column(String(12), default=Grain.FULL.value)
    specialist_id: Mapped[int | None] = mapped_column(Integer)
    branch_id: Mapped[int | None] = mapped_column(Integer)
    lead_kind: Mapped[str] = mapped_column(String(20))
    handed_out: Mapped[int] = mapped_column(Integer, default=0)  # distributed that day
    called: Mapped[int] = mapped_column(Integer, default=0)  # leads with a call that day
    reached: Mapped[int] = mapped_column(Integer, default=0)  # leads answered that day
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # calls that day
    talk_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    renewals: Mapped[int] = mapped_column(Integer, default=0)  # sales of the day
    premium: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal(0))
    points: Mapped[int] = mapped_column(Integer, default=0)
    renewal_attempts: Mapped[int] = mapped_column(Integer, default=0)  # calls of those sales
    # Of the leads handed out that day: without a result at node 3's deadline, and the time
    # from the distribution to their first call.
    late: Mapped[int] = mapped_column(Integer, default=0)
    first_called: Mapped[int] = mapped_column(Integer, default=0)
    first_call_seconds: Mapped[float] = mapped_column(Float, default=0.0)

    __table_args__ = (
        Index("ix_report_daily_grain_day", "grain", "day"),
        Index("ix_report_daily_specialist_day", "specialist_id", "day"),
    )


class ReportResult(Base):
    """Contact results set that day, per specialist, branch, kind and result."""

    __tablename__ = "report_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    specialist_id: Mapped[int | None] = mapped_column(Integer)
    branch_id: Mapped[int | None] = mapped_column(Integer)
    lead_kind: Mapped[str] = mapped_column(String(20))
    result: Mapped[str] = mapped_column(String(32))
    n: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_report_results_day", "day"),)


class ReportHourly(Base):
    """Calls per day, local hour, campaign, specialist and outcome (the dialer's report)."""

    __tablename__ = "report_hourly"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    hour: Mapped[int] = mapped_column(SmallInteger)
    weekday: Mapped[int] = mapped_column(SmallInteger)  # 0 = Monday
    campaign_id: Mapped[int | None] = mapped_column(Integer)
    campaign_kind: Mapped[str] = mapped_column(String(20))
    specialist_id: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(32))
    n: Mapped[int] = mapped_column(Integer, default=0)
    reached: Mapped[int] = mapped_column(Integer, default=0)
    talk_seconds: Mapped[float] = mapped_column(Float, default=0.0)

    __table_args__ = (Index("ix_report_hourly_day", "day"),)


__all__ = ["Grain", "ReportDaily", "ReportDay", "ReportHourly", "ReportResult"]
