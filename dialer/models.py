"""The dialer's tables: call attempts, seat sessions (and their transition log), campaigns and
the do-not-call list.

Rules the dialer must never break are constraints in the database, not only in Python:

* one lead never has two attempts in flight, and one number is never in two calls at once:
  partial unique indexes over the attempts whose `ended_at` is NULL (PostgreSQL and SQLite
  both support them; the claim transaction checks the same thing first, so the index is the
  last line of defence between two dialer processes);
* an attempt id is unique (it is the Originate ActionID, ChannelId and ATTEMPT_ID variable);
* one seat session per specialist, and one specialist per seat device.

An attempt is "in flight" from the moment its row is committed (before the Originate is sent:
write before you dial) until `ended_at` is set, by the call's result, by a failed send, or by
the reconciliation after a reconnect/restart (then `unknown` is true).
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from crm_sync.models import Base, CampaignKind


def _in(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class DialMode(enum.StrEnum):
    SEAT_FIRST = "seat_first"  # ring the seat, then the dialplan dials the customer
    CUSTOMER_FIRST = "customer_first"  # dial the customer, connect the reserved seat on answer
    PREVIEW = "preview"  # the specialist sees the lead and confirms; then seat-first
    AUTOMATIC = "automatic"  # no specialist: a recorded message (and a keypress)


class Pacing(enum.StrEnum):
    PROGRESSIVE = "progressive"  # one call per free specialist
    PREDICTIVE = "predictive"  # calls ahead of free specialists (dialer/predictive.py)


class AttemptState(enum.StrEnum):
    RESERVED = "reserved"  # preview: offered to the specialist, not dialled yet
    DIALING = "dialing"  # committed; the Originate is being sent
    SENT = "sent"  # Asterisk queued the Originate
    ANSWERED = "answered"  # the customer is talking
    ENDED = "ended"


class SeatState(enum.StrEnum):
    OFFLINE = "offline"
    READY = "ready"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


class CallAttempt(Base):
    """One dial of one number for one lead: written before the Originate is sent."""

    __tablename__ = "call_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[str] = mapped_column(String(64), unique=True)  # att-<uuid>
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    phone_id: Mapped[int | None] = mapped_column(ForeignKey("phones.id", ondelete="SET NULL"))
    number: Mapped[str] = mapped_column(String(32))  # dialable digits
    specialist_id: Mapped[int | None] = mapped_column(
        ForeignKey("specialists.id", ondelete="SET NULL")
    )
    seat: Mapped[str | None] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(20))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    campaign_kind: Mapped[str] = mapped_column(String(20))
    ami_server: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20), default=AttemptState.DIALING.value)
    outcome: Mapped[str | None] = mapped_column(String(32))
    hangup_cause: Mapped[int | None] = mapped_column(Integer)
    tech_cause: Mapped[int | None] = mapped_column(Integer)
    dial_status: Mapped[str | None] = mapped_column(String(20))
    ring_seconds: Mapped[float | None] = mapped_column(Float)
    talk_seconds: Mapped[float | None] = mapped_column(Float)
    key_pressed: Mapped[str | None] = mapped_column(String(8))
    recording_file: Mapped[str | None] = mapped_column(String(500))
    contact_result: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)  # why it ended so / retry reason
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))
    sent_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    unknown: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        CheckConstraint(_in("state", AttemptState), name="state"),
        CheckConstraint(_in("mode", DialMode), name="mode"),
        CheckConstraint("(state = 'ended') = (ended_at IS NOT NULL)", name="ended_when_ended"),
        # Never two attempts in flight for one lead, never one number in two calls.
        Index(
            "uq_call_attempts_lead_in_flight",
            "lead_id",
            unique=True,
            postgresql_where=text("ended_at IS NULL"),
            sqlite_where=text("ended_at IS NULL"),
        ),
        Index(
            "uq_call_attempts_number_in_flight",
            "number",
            unique=True,
            postgresql_where=text("ended_at IS NULL"),
            sqlite_where=text("ended_at IS NULL"),
        ),
        Index("ix_call_attempts_lead", "lead_id", "created_at"),
        # Calls per number per day, across campaigns (migration 0012_dialing_rules).
        Index("ix_call_attempts_number_created", "number", "created_at"),
        Index("ix_call_attempts_server_state", "ami_server", "state"),
        Index("ix_call_attempts_ended", "ended_at"),
    )


class SeatSession(Base):
    """A specialist signed in to a seat; the state machine lives in dialer/seats.py."""

    __tablename__ = "seat_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    specialist_id: Mapped[int] = mapped_column(
        ForeignKey("specialists.id", ondelete="CASCADE"), unique=True
    )
    seat: Mapped[str] = mapped_column(String(100), unique=True)
    state: Mapped[str] = mapped_column(String(20), default=SeatState.OFFLINE.value)
    pause_reason: Mapped[str | None] = mapped_column(String(200))
    attempt_id: Mapped[str | None] = mapped_column(String(64))  # the call on this seat
    since: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))

    __table_args__ = (CheckConstraint(_in("state", SeatState), name="state"),)


class SeatTransition(Base):
    """Every seat state change, for the supervisor's timeline and audits."""

    __tablename__ = "seat_transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    specialist_id: Mapped[int] = mapped_column(ForeignKey("specialists.id", ondelete="CASCADE"))
    seat: Mapped[str] = mapped_column(String(100))
    from_state: Mapped[str] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    trigger: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(String(200))
    attempt_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))

    __table_args__ = (Index("ix_seat_transitions_specialist_at", "specialist_id", "at"),)


class Campaign(Base):
    """How one kind of work is dialled: mode, concurrency and trunk limits."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    mode: Mapped[str] = mapped_column(String(20), default=DialMode.SEAT_FIRST.value)
    running: Mapped[bool] = mapped_column(Boolean, default=False)
    concurrency: Mapped[int] = mapped_column(Integer, default=10)  # automatic campaigns
    trunk: Mapped[str] = mapped_column(String(64), default="carrier")
    trunk_max_calls: Mapped[int] = mapped_column(Integer, default=30)
    trunk_max_cps: Mapped[float] = mapped_column(Float, default=5.0)
    caller_id: Mapped[str | None] = mapped_column(String(100))  # '"续保专员" <95500>'
    message: Mapped[str | None] = mapped_column(String(200))  # Playback file(s) for reminders
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))
    # Pooled: answered calls go to any free specialist of the pool (PoolMember); predictive
    # pacing under the supervisor's caps (dialer/predictive.py).
    pooled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    pacing: Mapped[str] = mapped_column(
        String(20), default=Pacing.PROGRESSIVE.value, server_default=Pacing.PROGRESSIVE.value
    )
    pacing_ratio_cap: Mapped[float] = mapped_column(Float, default=3.0, server_default="3.0")
    target_abandon: Mapped[float] = mapped_column(Float, default=0.02, server_default="0.02")
    abandon_cap: Mapped[float] = mapped_column(Float, default=0.03, server_default="0.03")

    __table_args__ = (
        CheckConstraint(_in("kind", CampaignKind), name="kind"),
        CheckConstraint(_in("mode", DialMode), name="mode"),
        CheckConstraint(_in("pacing", Pacing), name="pacing"),
        CheckConstraint("pacing_ratio_cap >= 1", name="pacing_ratio_cap"),
        CheckConstraint(
            "target_abandon >= 0 AND target_abandon <= abandon_cap AND abandon_cap < 1",
            name="abandon_rates",
        ),
        CheckConstraint("concurrency >= 0", name="concurrency"),
        CheckConstraint("trunk_max_calls >= 0", name="trunk_max_calls"),
        CheckConstraint("trunk_max_cps > 0", name="trunk_max_cps"),
    )


class PoolShare(enum.StrEnum):
    AFTER_OWN_QUEUE = "after_own_queue"  # pool work only once one's own queue is empty
    ALWAYS = "always"


class PoolMember(Base):
    """A specialist who takes the answered calls of a pooled campaign."""

    __tablename__ = "pool_members"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    specialist_id: Mapped[int] = mapped_column(
        ForeignKey("specialists.id", ondelete="CASCADE"), primary_key=True
    )
    share: Mapped[str] = mapped_column(
        String(20), default=PoolShare.AFTER_OWN_QUEUE.value, server_default="after_own_queue"
    )

    __table_args__ = (CheckConstraint(_in("share", PoolShare), name="share"),)


class PoolAbandonDay(Base):
    """Live answers and abandons of a pooled campaign on one calling day."""

    __tablename__ = "pool_abandon_days"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    answered: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    abandoned: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (CheckConstraint("abandoned >= 0 AND abandoned <= answered", name="counts"),)


class DoNotCall(Base):
    """Numbers that must never be dialled (by any campaign)."""

    __tablename__ = "do_not_call"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str | None] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))


IN_FLIGHT_STATES = frozenset(
    {AttemptState.RESERVED, AttemptState.DIALING, AttemptState.SENT, AttemptState.ANSWERED}
)

__all__ = [
    "IN_FLIGHT_STATES",
    "AttemptState",
    "CallAttempt",
    "Campaign",
    "CampaignKind",
    "DialMode",
    "DoNotCall",
    "Pacing",
    "PoolAbandonDay",
    "PoolMember",
    "PoolShare",
    "SeatSession",
    "SeatState",
    "SeatTransition",
]
