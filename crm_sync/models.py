"""The CRM tables of the renewal desk.

Chinese words in comments are the desk's own (see the workflow spec); they are also the
default UI labels. Rules the desk relies on are constraints in the database, not only in
Python: one policy number, one lead per policy and kind, known statuses and accuracies.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _in(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime, dict[str, Any]: JSON}


class LeadKind(enum.StrEnum):
    RENEWAL = "renewal"  # 续保
    LAPSED = "lapsed"  # 脱保
    TRIAL = "trial"  # 体验会员转化 trial-member conversion
    CALLBACK = "callback"  # 承保回访 post-underwriting callback


class CampaignKind(enum.StrEnum):
    """The one list of campaign kinds: each lead kind, and the reminder call (a campaign of
    renewal leads, not a kind of lead). Calling hours, campaigns and attempts use it."""

    RENEWAL = LeadKind.RENEWAL.value
    LAPSED = LeadKind.LAPSED.value
    TRIAL = LeadKind.TRIAL.value
    CALLBACK = LeadKind.CALLBACK.value  # post-underwriting callback (承保回访), automatic
    REMINDER = "reminder"  # expiry − 30 reminder call, automatic


class LeadStatus(enum.StrEnum):
    NEW = "new"  # imported, not yet due
    DUE = "due"  # due for distribution today (T-25, lapsed, …)
    ASSIGNED = "assigned"  # has an owner 所属人员 and a 发放日期
    SCHEDULED = "scheduled"  # a callback appointment or retry is booked
    CLOSED = "closed"  # a final contact result, or unreachable


class Accuracy(enum.StrEnum):
    UNKNOWN = "unknown"
    ACCURATE = "accurate"  # 准确
    INACCURATE = "inaccurate"  # 不准确


class PhoneKind(enum.StrEnum):
    MOBILE = "mobile"
    LANDLINE = "landline"
    UNKNOWN = "unknown"


class PhoneRole(enum.StrEnum):
    POLICYHOLDER = "policyholder"  # 投保人联系电话
    INSURED = "insured"  # 被保险人联系电话
    FLEET = "fleet"  # 车队 (the fleet's switchboard: last resort)
    CORRECTED = "corrected"  # sent back by the branch or found through a trial member


class Branch(Base):
    """机构: a branch of the company; lapsed lists and inaccurate numbers go to its e-mail."""

    __tablename__ = "branches"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))


class Specialist(Base):
    """服务专员 / 续保专员: works a queue from a softphone seat."""

    __tablename__ = "specialists"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # The SIP endpoint the dialer rings, e.g. PJSIP/8001 (Local/8001@seats in the lab).
    seat: Mapped[str] = mapped_column(String(100), unique=True)
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    on_leave: Mapped[bool] = mapped_column(Boolean, default=False)  # 请假
    role: Mapped[str] = mapped_column(String(20), default="specialist")
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))

    branch: Mapped[Branch | None] = relationship()

    __table_args__ = (
        CheckConstraint("role IN ('specialist', 'supervisor', 'maintainer')", name="role"),
    )


class Customer(Base):
    """A policyholder or insured person (or a fleet company)."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(Text)  # 通信地址
    time_zone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    # Identity used to merge the same person across imports (name + best phone).
    match_key: Mapped[str] = mapped_column(String(300), unique=True)
    # Recorded by the maintainer after a sale (node 7, migration 0017_sales).
    membership_card: Mapped[str | None] = mapped_column(String(64))  # 会员卡号
    driving_licence_expiry: Mapped[date | None] = mapped_column(Date)  # 驾驶证到期

    phones: Mapped[list[Phone]] = relationship(back_populates="customer", order_by="Phone.id")


class Phone(Base):
    """A customer's number; several per customer. Kept even when invalid, flagged for look-up."""

    __tablename__ = "phones"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20), default=PhoneRole.POLICYHOLDER.value)
    kind: Mapped[str] = mapped_column(String(20), default=PhoneKind.UNKNOWN.value)
    raw: Mapped[str] = mapped_column(String(100))  # as the core system exported it
    e164: Mapped[str | None] = mapped_column(String(32), index=True)
    extension: Mapped[str | None] = mapped_column(String(20))  # 分机, dialled after answer
    valid: Mapped[bool] = mapped_column(Boolean, default=True)
    invalid_reason: Mapped[str | None] = mapped_column(String(200))
    accuracy: Mapped[str] = mapped_column(String(20), default=Accuracy.UNKNOWN.value)
    accuracy_reason: Mapped[str | None] = mapped_column(String(300))
    accuracy_set_at: Mapped[datetime | None]
    do_not_call: Mapped[bool] = mapped_column(Boolean, default=False)

    customer: Mapped[Customer] = relationship(back_populates="phones")

    __table_args__ = (
        UniqueConstraint("customer_id", "raw", name="uq_phones_customer_raw"),
        # The reports' inaccurate numbers of a period (migration 0017_sales): few rows.
        Index(
            "ix_phones_inaccurate_at",
            "accuracy_set_at",
            postgresql_where=text("accuracy = 'inaccurate'"),
            sqlite_where=text("accuracy = 'inaccurate'"),
        ),
        CheckConstraint(_in("accuracy", Accuracy), name="accuracy"),
        CheckConstraint(_in("kind", PhoneKind), name="kind"),
        CheckConstraint(_in("role", PhoneRole), name="role"),
    )


class Policy(Base):
    """保单: one car-insurance policy as exported by the core system (核心业务处理系统)."""

    __tablename__ = "policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_number: Mapped[str] = mapped_column(String(64), unique=True)  # 保单号
    plate_number: Mapped[str | None] = mapped_column(String(32), index=True)  # 车牌号
    make_model: Mapped[str | None] = mapped_column(String(200))  # 厂牌型号
    use_type: Mapped[str | None] = mapped_column(String(64))  # 使用性质
    # 上年保单号; indexed: a policy named here by a newer one has been renewed.
    previous_policy_number: Mapped[str | None] = mapped_column(String(64), index=True)
    policyholder_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))  # 投保人
    insured_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))  # 被保险人
    start_date: Mapped[date | None] = mapped_column(Date)  # 起保日期
    expiry_date: Mapped[date] = mapped_column(Date, index=True)  # 终保日期 / 到期日期
    handler: Mapped[str | None] = mapped_column(String(100))  # 经办人
    business_category: Mapped[str | None] = mapped_column(String(100))  # 业务类别
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id"))  # 机构
    is_fleet: Mapped[bool] = mapped_column(Boolean, default=False)  # 车队
    premium: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))  # 保费
    underwritten_at: Mapped[datetime | None]  # 承保 time, for the post-underwriting callback
    renewed: Mapped[bool] = mapped_column(Boolean, default=False)  # 已续保
    renewed_at: Mapped[datetime | None]
    vehicle_licence_expiry: Mapped[date | None] = mapped_column(Date)  # 行驶证到期 (0017_sales)
    updated_at: Mapped[datetime] = mapped_column(
        default=lambda: datetime.now(UTC), onupdate=lambda: datetime.now(UTC)
    )

    policyholder: Mapped[Customer] = relationship(foreign_keys=[policyholder_id])
    insured: Mapped[Customer | None] = relationship(foreign_keys=[insured_id])
    branch: Mapped[Branch | None] = relationship()

    __table_args__ = (
        CheckConstraint(
            "start_date IS NULL OR expiry_date >= start_date", name="expiry_after_start"
        ),
        CheckConstraint("premium IS NULL OR premium >= 0", name="premium_not_negative"),
        # A customer's policies (the reports' inaccurate numbers by branch; 0017_sales).
        Index("ix_policies_policyholder", "policyholder_id"),
    )


class ContactResult(Base):
    """标准联系结果: the standard contact results, as data (labels are configurable)."""

    __tablename__ = "contact_results"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    label_zh: Mapped[str] = mapped_column(String(50))
    label_en: Mapped[str] = mapped_column(String(80))
    # Set by the dialer from the call's outcome, not by a specialist.
    telephony: Mapped[bool] = mapped_column(Boolean, default=False)
    # Closes the lead: no more calls.
    final: Mapped[bool] = mapped_column(Boolean, default=False)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)


# (code, 中文, English, telephony, final) — the defaults seeded by the first migration.
STANDARD_CONTACT_RESULTS: tuple[tuple[str, str, str, bool, bool], ...] = (
    ("renewed", "成功续保", "renewed", False, True),
    ("interested", "有意向", "interested / quoted", False, False),
    ("callback", "预约回拨", "callback scheduled", False, False),
    ("renewed_elsewhere", "已在他司投保", "renewed elsewhere", False, True),
    ("declined", "拒绝续保", "declined", False, True),
    ("no_answer", "无人接听", "no answer", True, False),
    ("busy", "占线", "busy", True, False),
    ("switched_off", "关机/停机", "switched off / suspended", True, False),
    ("wrong_number", "空号/错号", "wrong number", True, False),
    ("vehicle_sold", "车辆已转让", "vehicle sold", False, True),
    ("other", "其他", "other", False, False),
    (
        "confirmed",
        "回访确认",
        "callback confirmed (documents received, details correct)",
        True,
        True,
    ),
    ("unreachable", "无法联系", "unreachable (number marked inaccurate)", True, True),
)


class Lead(Base):
    """A piece of work: one per policy per kind. 所属人员 = owner, 发放日期 = distributed_on."""

    __tablename__ = "leads"

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=LeadStatus.NEW.value)
    phone_id: Mapped[int | None] = mapped_column(ForeignKey("phones.id", ondelete="SET NULL"))
    due_on: Mapped[date | None] = mapped_column(Date)  # the day it becomes work
    # 所属人员. On PostgreSQL the foreign key is checked once per statement by triggers
    # (migration 0009_distribution_write): the daily deal writes a million owners at once.
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("specialists.id", ondelete="SET NULL"))
    distributed_on: Mapped[date | None] = mapped_column(Date)  # 发放日期
    contact_result: Mapped[str | None] = mapped_column(ForeignKey("contact_results.code"))
    contact_result_at: Mapped[datetime | None]
    callback_at: Mapped[datetime | None]  # 预约回拨: the customer's chosen time
    next_attempt_at: Mapped[datetime | None]  # when the dialer may call next
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    closed_reason: Mapped[str | None] = mapped_column(String(300))
    central: Mapped[bool] = mapped_column(
        Boolean, default=False
    )  # lapsed > 48 h: handled centrally
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))
    updated_at: Mapped[datetime] = mapped_column(
        default=lambda: datetime.now(UTC), onupdate=lambda: datetime.now(UTC)
    )

    policy: Mapped[Policy] = relationship()
    phone: Mapped[Phone | None] = relationship()
    owner: Mapped[Specialist | None] = relationship()

    __table_args__ = (
        UniqueConstraint("policy_id", "kind", name="uq_leads_policy_kind"),
        CheckConstraint(_in("kind", LeadKind), name="kind"),
        CheckConstraint(_in("status", LeadStatus), name="status"),
        CheckConstraint("attempt_count >= 0", name="attempt_count"),
        CheckConstraint(
            "(owner_id IS NULL) = (distributed_on IS NULL)", name="owner_with_distribution_date"
        ),
        # The two indexes below are SQLite's. On PostgreSQL migration 0010_owner_queue drops
        # them (the daily deal writes owner_id and status, and an index on either makes each
        # of its million row updates non-HOT): there `ix_leads_due_on` and
        # `ix_leads_callback_next` serve the due and callback queries, and a specialist's
        # leads are found through `owner_queue` (`dialer.queues.owned_by`).
        Index(
            "ix_leads_status_due",
            "status",
            "due_on",
            postgresql_where=text("status IN ('new', 'due', 'scheduled')"),
        ),
        Index("ix_leads_owner_status", "owner_id", "status"),
    )


class SaleStatus(enum.StrEnum):
    RECORDED = "recorded"  # entered by the specialist at the disposition
    CONFIRMED = "confirmed"  # checked by the maintainer against the paperwork and invoice


class SalesRecord(Base):
    """A renewal sold (成功续保): premium and the specialist's points (积分).

    The specialist records it at the disposition; the maintainer confirms or corrects it when
    the paperwork and invoice arrive (node 7). Every change is a `SalesAudit` row."""

    __tablename__ = "sales_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), unique=True)
    specialist_id: Mapped[int | None] = mapped_column(
        ForeignKey("specialists.id", ondelete="SET NULL")
    )
    new_policy_number: Mapped[str | None] = mapped_column(String(64))
    premium: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    points: Mapped[int] = mapped_column(Integer, default=0)
    sold_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))
    membership_card: Mapped[str | None] = mapped_column(String(64))  # 会员卡号
    vehicle_licence_expiry: Mapped[date | None] = mapped_column(Date)  # 行驶证到期
    driving_licence_expiry: Mapped[date | None] = mapped_column(Date)  # 驾驶证到期
    # Migration 0017_sales: the desk's local day of the sale (points rules and reports go by
    # it), who recorded and who confirmed, the red star (红星) and the calls it took.
    sold_on: Mapped[date | None] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(
        String(16), default=SaleStatus.RECORDED.value, server_default="recorded"
    )
    red_star: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    recorded_by: Mapped[int | None] = mapped_column(
        ForeignKey("specialists.id", ondelete="SET NULL")
    )
    recorded_at: Mapped[datetime | None]
    confirmed_by: Mapped[int | None] = mapped_column(
        ForeignKey("specialists.id", ondelete="SET NULL")
    )
    confirmed_at: Mapped[datetime | None]
    rules_from: Mapped[date | None] = mapped_column(Date)  # the points rules used (effective)
    # Any change (record, confirm, correct, points): the reports roll its day up again.
    updated_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint("premium >= 0", name="premium_not_negative"),
        CheckConstraint("points >= 0", name="points_not_negative"),
        CheckConstraint(_in("status", SaleStatus), name="status"),
    )


class SalesAudit(Base):
    """Who did what to a sales record, and when (recorded, confirmed, corrected, points)."""

    __tablename__ = "sales_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    sale_id: Mapped[int] = mapped_column(ForeignKey("sales_records.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(20))
    by_id: Mapped[int | None] = mapped_column(ForeignKey("specialists.id", ondelete="SET NULL"))
    at: Mapped[datetime]
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (Index("ix_sales_audit_sale", "sale_id", "at"),)


class PointsRule(Base):
    """积分规则: the points of a sale of one kind of lead, from a day on (rules as data).

    `bands` is a list of {"from": premium, "points": n}: a sale gets the points of the highest
    band whose `from` its premium reaches, plus `red_star_bonus` when it carries a red star.
    A sale is scored with the rule of its kind in effect on its day, so a new rule changes
    nothing before its `effective_from` (crm_sync.points)."""

    __tablename__ = "points_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    effective_from: Mapped[date] = mapped_column(Date)
    lead_kind: Mapped[str] = mapped_column(String(20))
    bands: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    red_star_bonus: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("specialists.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("lead_kind", "effective_from", name="uq_points_rules_kind_from"),
        CheckConstraint(_in("lead_kind", LeadKind), name="lead_kind"),
        CheckConstraint("red_star_bonus >= 0", name="red_star_bonus"),
    )


class OutboxState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    PARKED = "parked"  # dead letter: the receiver refused it for good


class OutboxMessage(Base):
    """Results on their way to the CRM, written in the same transaction as the result."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    topic: Mapped[str] = mapped_column(String(64))  # e.g. attempt.result, lead.contact_result
    key: Mapped[str] = mapped_column(String(128))  # aggregate id, for ordering per lead
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))
    delivered_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Delivery by the relay (crm_sync.relay, migration 0013_outbox_relay).
    state: Mapped[str] = mapped_column(
        String(16), default=OutboxState.PENDING.value, server_default="pending"
    )
    next_try_at: Mapped[datetime | None]  # a failing message waits (backoff) until then
    lease_owner: Mapped[str | None] = mapped_column(String(64))  # the relay handling the key
    lease_until: Mapped[datetime | None]
    sink: Mapped[str | None] = mapped_column(String(32))  # who accepted it ("none": no sink)
    parked_reason: Mapped[str | None] = mapped_column(Text)  # the receiver's final answer
    history: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)  # failed tries

    __table_args__ = (
        Index("ix_outbox_undelivered", "delivered_at", "id"),
        Index(
            "ix_outbox_pending_key",
            "key",
            "id",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index("ix_outbox_state_created", "state", "created_at"),
        CheckConstraint(_in("state", OutboxState), name="state"),
    )


class CrmChange(Base):
    """An inbound change from the CRM (crm_sync.changes), audited; one row per change id."""

    __tablename__ = "crm_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[str] = mapped_column(String(128), unique=True)  # the CRM's own id
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(128))  # e.g. policy:P123, specialist:7
    changed_at: Mapped[datetime]  # the CRM's timestamp: decides between out-of-order changes
    received_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(32))  # http / file
    outcome: Mapped[str] = mapped_column(String(16))  # applied / stale / rejected
    detail: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (Index("ix_crm_changes_subject", "kind", "subject", "changed_at"),)


class ImportRun(Base):
    """One `callcenter import`: who, what file, and the summary (audit)."""

    __tablename__ = "import_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    file_name: Mapped[str] = mapped_column(String(500))
    file_sha256: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))
    finished_at: Mapped[datetime | None]
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (CheckConstraint(_in("kind", LeadKind), name="kind"),)


__all__ = [
    "STANDARD_CONTACT_RESULTS",
    "Accuracy",
    "Base",
    "Branch",
    "CampaignKind",
    "ContactResult",
    "CrmChange",
    "Customer",
    "ImportRun",
    "Lead",
    "LeadKind",
    "LeadStatus",
    "OutboxMessage",
    "OutboxState",
    "Phone",
    "PhoneKind",
    "PhoneRole",
    "PointsRule",
    "Policy",
    "SaleStatus",
    "SalesAudit",
    "SalesRecord",
    "Specialist",
    "UtcDateTime",
    "func",
]
