"""After the sale (node 7): the sales record, its confirmation by the maintainer, the points.

* A specialist records a sale at the disposition (成功续保 with the new policy number and the
  premium): `record_sale`.
* The maintainer (or a supervisor) confirms or corrects it when the paperwork and invoice
  arrive, with the licence dates, the membership card and the policy's changed data
  (expiry, insured), which also update the customer and policy: `confirm_sale`.
* Points come from the rules held as data (`points_rules`, scored by the pure
  `crm_sync.points`); `recompute_points` scores any period again with the rules in effect on
  each sale's day, so it gives the same points every time.

Every change is a `sales_audit` row (who, when, what changed) and a `sale.record` outbox
message in the same transaction. Functions take the caller's session; the caller commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import BadInput, Conflict, NotFound
from common.principal import Principal
from crm_sync.models import (
    Customer,
    Lead,
    LeadKind,
    PointsRule,
    Policy,
    SalesAudit,
    SalesRecord,
    SaleStatus,
    Specialist,
)
from crm_sync.outbox import lead_message
from crm_sync.points import Band, Rule, RuleInvalid, check_bands, score

log = logging.getLogger(__name__)

TOPIC = "sale.record"


@dataclass(frozen=True, slots=True)
class SaleChanges:
    """What the maintainer confirms or corrects; None leaves a field as it is."""

    premium: Decimal | None = None
    new_policy_number: str | None = None
    red_star: bool | None = None
    membership_card: str | None = None
    vehicle_licence_expiry: date | None = None
    driving_licence_expiry: date | None = None
    policy_expiry: date | None = None  # the policy's changed expiry (终保日期)
    insured_name: str | None = None  # the policy's changed insured (被保险人)
    extra: dict[str, Any] = field(default_factory=dict)


def local_day(when: datetime, tz: str) -> date:
    return when.astimezone(ZoneInfo(tz)).date()


async def load_rules(session: AsyncSession) -> list[Rule]:
    rows = (await session.scalars(select(PointsRule))).all()
    return [_rule(r) for r in rows]


def _rule(row: PointsRule) -> Rule:
    bands = tuple(Band(Decimal(str(b["from"])), int(b["points"])) for b in row.bands)
    return Rule(row.lead_kind, row.effective_from, bands, row.red_star_bonus)


def sale_view(sale: SalesRecord, lead: Lead, policy: Policy) -> dict[str, Any]:
    """A sale as the API and the outbox show it (money as a string: exact)."""
    return {
        "sale_id": sale.id,
        "lead_id": sale.lead_id,
        "lead_kind": lead.kind,
        "policy_number": policy.policy_number,
        "new_policy_number": sale.new_policy_number,
        "premium": str(sale.premium),
        "points": sale.points,
        "rules_from": sale.rules_from.isoformat() if sale.rules_from else None,
        "red_star": sale.red_star,
        "status": sale.status,
        "specialist_id": sale.specialist_id,
        "sold_on": sale.sold_on.isoformat() if sale.sold_on else None,
        "sold_at": sale.sold_at.isoformat(),
        "attempts": sale.attempts,
        "recorded_by": sale.recorded_by,
        "recorded_at": sale.recorded_at.isoformat() if sale.recorded_at else None,
        "confirmed_by": sale.confirmed_by,
        "confirmed_at": sale.confirmed_at.isoformat() if sale.confirmed_at else None,
        "membership_card": sale.membership_card,
        "vehicle_licence_expiry": _day(sale.vehicle_licence_expiry),
        "driving_licence_expiry": _day(sale.driving_licence_expiry),
    }


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _audit(
    session: AsyncSession,
    sale: SalesRecord,
    action: str,
    by: int | None,
    now: datetime,
    changes: dict[str, Any],
) -> None:
    session.add(SalesAudit(sale_id=sale.id, action=action, by_id=by, at=now, changes=changes))


def _publish(
    session: AsyncSession,
    sale: SalesRecord,
    lead: Lead,
    policy: Policy,
    event: str,
    now: datetime,
) -> None:
    lead_message(session, TOPIC, lead.id, {**sale_view(sale, lead, policy), "event": event}, now)


async def _score(session: AsyncSession, sale: SalesRecord, kind: str) -> None:
    day = sale.sold_on or sale.sold_at.date()
    result = score(await load_rules(session), kind, day, sale.premium, sale.red_star)
    sale.points, sale.rules_from = result.points, result.rule_from


async def record_sale(
    session: AsyncSession,
    lead_id: int,
    who: Principal,
    premium: Decimal,
    new_policy_number: str | None,
    now: datetime,
    tz: str,
) -> dict[str, Any]:
    """The specialist's sale at the disposition (the lead already carries 成功续保). A second
    entry before the maintainer confirms corrects the first; after, it is refused."""
    lead = await session.get(Lead, lead_id)
    if lead is None or not who.can_see_specialist(lead.owner_id):
        raise NotFound(f"no lead {lead_id}")
    if lead.contact_result != "renewed":
        raise BadInput("a sale goes only with the contact result renewed (成功续保)")
    policy = await session.get(Policy, lead.policy_id)
    assert policy is not None  # a lead always has its policy (foreign key)
    sale = (
        await session.scalars(select(SalesRecord).where(SalesRecord.lead_id == lead_id))
    ).one_or_none()
    if sale is not None and sale.status == SaleStatus.CONFIRMED.value:
        raise Conflict("the maintainer has confirmed this sale already; ask them to correct it")
    before = sale_view(sale, lead, policy) if sale is not None else {}
    if sale is None:
        sale = SalesRecord(lead_id=lead_id, sold_at=now, status=SaleStatus.RECORDED.value)
        session.add(sale)
    sale.specialist_id = lead.owner_id
    sale.premium = _money(premium)
    sale.new_policy_number = new_policy_number
    sale.sold_on = local_day(sale.sold_at, tz)
    sale.red_star = bool(sale.red_star)
    # The calls it took (the dialer's count: what counts as a call, dialer.outcomes).
    sale.attempts = lead.attempt_count
    sale.recorded_by, sale.recorded_at, sale.updated_at = who.user_id, now, now
    await _score(session, sale, lead.kind)
    await session.flush()
    after = sale_view(sale, lead, policy)
    _audit(session, sale, "recorded", who.user_id, now, _diff(before, after))
    _publish(session, sale, lead, policy, "recorded", now)
    log.info("sale %s of lead %s recorded by %s: %s", sale.id, lead_id, who.user_id, premium)
    return after


def _money(amount: Decimal) -> Decimal:
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e10"):
        raise BadInput("a premium is an amount from 0 up to 9,999,999,999.99")
    return amount.quantize(Decimal("0.01"))


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


async def confirm_sale(
    session: AsyncSession,
    sale_id: int,
    who: Principal,
    changes: SaleChanges,
    now: datetime,
) -> dict[str, Any]:
    """The maintainer confirms a sale against the paperwork, correcting what differs; the
    licence dates, card and changed policy data go to the customer and policy too."""
    if not who.is_supervisor:
        raise NotFound(f"no sale {sale_id}")
    sale = await session.get(SalesRecord, sale_id, with_for_update=True)
    if sale is None:
        raise NotFound(f"no sale {sale_id}")
    lead = await session.get(Lead, sale.lead_id)
    assert lead is not None  # foreign key
    policy = await session.get(Policy, lead.policy_id)
    assert policy is not None
    before = {**sale_view(sale, lead, policy), **_policy_view(policy)}
    for name in (
        "premium",
        "new_policy_number",
        "red_star",
        "membership_card",
        "vehicle_licence_expiry",
        "driving_licence_expiry",
    ):
        value = getattr(changes, name)
        if name == "premium" and value is not None:
            value = _money(value)
        if value is not None:
            setattr(sale, name, value)
    await _update_policy(session, policy, sale, changes, now)
    corrected = sale.status == SaleStatus.CONFIRMED.value
    sale.status = SaleStatus.CONFIRMED.value
    sale.confirmed_by, sale.confirmed_at, sale.updated_at = who.user_id, now, now
    await _score(session, sale, lead.kind)
    await session.flush()
    after = {**sale_view(sale, lead, policy), **_policy_view(policy)}
    action = "corrected" if corrected else "confirmed"
    _audit(session, sale, action, who.user_id, now, _diff(before, after))
    _publish(session, sale, lead, policy, action, now)
    log.info("sale %s %s by %s", sale.id, action, who.user_id)
    return sale_view(sale, lead, policy)


def _policy_view(policy: Policy) -> dict[str, Any]:
    return {
        "policy_expiry": policy.expiry_date.isoformat(),
        "insured_id": policy.insured_id,
    }


async def _update_policy(
    session: AsyncSession,
    policy: Policy,
    sale: SalesRecord,
    changes: SaleChanges,
    now: datetime,
) -> None:
    if sale.vehicle_licence_expiry is not None:
        policy.vehicle_licence_expiry = sale.vehicle_licence_expiry
    if changes.policy_expiry is not None:
        if policy.start_date is not None and changes.policy_expiry < policy.start_date:
            raise BadInput("the expiry date is before the policy's start date")
        policy.expiry_date = changes.policy_expiry
    if changes.insured_name is not None:
        insured = Customer(
            name=changes.insured_name,
            # A person named on one policy only: the key keeps imports from merging into them.
            match_key=f"insured:{policy.policy_number}:{changes.insured_name}",
        )
        existing = (
            await session.scalars(select(Customer).where(Customer.match_key == insured.match_key))
        ).one_or_none()
        if existing is None:
            session.add(insured)
            await session.flush()
        policy.insured_id = (existing or insured).id
    # The card and the licence belong to the insured (the VIP customer of node 6), else to
    # the policyholder.
    customer = await session.get(Customer, policy.insured_id or policy.policyholder_id)
    assert customer is not None
    if sale.membership_card is not None:
        customer.membership_card = sale.membership_card
    if sale.driving_licence_expiry is not None:
        customer.driving_licence_expiry = sale.driving_licence_expiry
    policy.renewed, policy.renewed_at = True, policy.renewed_at or now


# -- points rules ---------------------------------------------------------------------------


def rule_view(row: PointsRule) -> dict[str, Any]:
    return {
        "id": row.id,
        "lead_kind": row.lead_kind,
        "effective_from": row.effective_from.isoformat(),
        "bands": row.bands,
        "red_star_bonus": row.red_star_bonus,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
    }


async def list_rules(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.scalars(
        select(PointsRule).order_by(PointsRule.lead_kind, PointsRule.effective_from)
    )
    return [rule_view(r) for r in rows]


async def add_rule(
    session: AsyncSession,
    who: Principal,
    lead_kind: str,
    effective_from: date,
    bands: list[tuple[Decimal, int]],
    red_star_bonus: int,
    now: datetime,
    today: date,
) -> dict[str, Any]:
    """A supervisor's rule from a day on. A day already begun is refused: the points of the
    past stay as they were. A rule for a day still ahead may be replaced."""
    if not who.is_supervisor:
        raise NotFound("no such rules")
    if lead_kind not in {k.value for k in LeadKind}:
        raise BadInput(f"unknown kind of lead {lead_kind!r}: one of {', '.join(LeadKind)}")
    if effective_from <= today:
        raise BadInput(
            f"a rule starts tomorrow ({today.isoformat()} has begun) or later, so that points "
            "already earned stay as they were"
        )
    if red_star_bonus < 0:
        raise BadInput("the red-star bonus must not be negative")
    try:
        ordered = check_bands([Band(Decimal(p), n) for p, n in bands])
    except RuleInvalid as exc:
        raise BadInput(str(exc)) from None
    row = (
        await session.scalars(
            select(PointsRule).where(
                PointsRule.lead_kind == lead_kind, PointsRule.effective_from == effective_from
            )
        )
    ).one_or_none()
    if row is None:
        row = PointsRule(lead_kind=lead_kind, effective_from=effective_from)
        session.add(row)
    row.bands = [{"from": str(b.premium_from), "points": b.points} for b in ordered]
    row.red_star_bonus = red_star_bonus
    row.created_by, row.created_at = who.user_id, now
    await session.flush()
    log.info("points rule for %s from %s set by %s", lead_kind, effective_from, who.user_id)
    return rule_view(row)


@dataclass
class Recomputed:
    start: date
    end: date
    sales: int = 0
    changed: int = 0
    points: int = 0
    by_specialist: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "sales": self.sales,
            "changed": self.changed,
            "points": self.points,
            "by_specialist": [
                {"specialist_id": k, "points": v} for k, v in sorted(self.by_specialist.items())
            ],
        }


async def recompute_points(
    session: AsyncSession, start: date, end: date, who: Principal | None, now: datetime
) -> Recomputed:
    """Score every sale of [start, end] again with the rules of its day; a changed score is
    audited and sent to the CRM. Running it twice changes nothing the second time."""
    if end < start:
        raise BadInput("the period ends before it starts")
    rules = await load_rules(session)
    rows = (
        await session.execute(
            select(SalesRecord, Lead, Policy)
            .join(Lead, Lead.id == SalesRecord.lead_id)
            .join(Policy, Policy.id == Lead.policy_id)
            .where(SalesRecord.sold_on >= start, SalesRecord.sold_on <= end)
            .order_by(SalesRecord.id)
        )
    ).all()
    done = Recomputed(start, end)
    for sale, lead, policy in rows:
        day = sale.sold_on or sale.sold_at.date()
        result = score(rules, lead.kind, day, sale.premium, sale.red_star)
        done.sales += 1
        if (result.points, result.rule_from) != (sale.points, sale.rules_from):
            before = {"points": sale.points, "rules_from": _day(sale.rules_from)}
            sale.points, sale.rules_from, sale.updated_at = result.points, result.rule_from, now
            _audit(
                session,
                sale,
                "points",
                who.user_id if who else None,
                now,
                _diff(before, {"points": sale.points, "rules_from": _day(sale.rules_from)}),
            )
            _publish(session, sale, lead, policy, "points", now)
            done.changed += 1
        done.points += sale.points
        if sale.specialist_id is not None:
            done.by_specialist[sale.specialist_id] = (
                done.by_specialist.get(sale.specialist_id, 0) + sale.points
            )
    return done


async def list_sales(
    session: AsyncSession,
    who: Principal,
    start: date,
    end: date,
    status: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Sales of a period (specialists: their own), newest first, with the names a person
    checks the paperwork by (customer, plate, specialist)."""
    q = (
        select(SalesRecord, Lead, Policy, Customer.name, Specialist.name)
        .join(Lead, Lead.id == SalesRecord.lead_id)
        .join(Policy, Policy.id == Lead.policy_id)
        .join(Customer, Customer.id == Policy.policyholder_id)
        .outerjoin(Specialist, Specialist.id == SalesRecord.specialist_id)
        .where(SalesRecord.sold_on >= start, SalesRecord.sold_on <= end)
        .order_by(SalesRecord.sold_at.desc(), SalesRecord.id.desc())
        .limit(limit)
    )
    if not who.is_supervisor:
        q = q.where(SalesRecord.specialist_id == who.user_id)
    if status:
        q = q.where(SalesRecord.status == status)
    return [
        {**sale_view(s, le, p), "customer": c, "plate": p.plate_number, "specialist": n}
        for s, le, p, c, n in (await session.execute(q)).all()
    ]


async def sale_audit(session: AsyncSession, sale_id: int) -> list[dict[str, Any]]:
    rows = await session.scalars(
        select(SalesAudit).where(SalesAudit.sale_id == sale_id).order_by(SalesAudit.id)
    )
    return [
        {"action": a.action, "by": a.by_id, "at": a.at.isoformat(), "changes": a.changes}
        for a in rows
    ]
