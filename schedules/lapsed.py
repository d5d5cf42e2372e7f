"""Lapsed policies (脱保) still open, as lists: per branch for the daily e-mail, and those
handled centrally (lapsed more than 48 h; the timeline marks them, `schedules.timeline_run`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.mail_compose import LapsedPolicy
from crm_sync.models import Customer, Lead, LeadStatus, Phone, Policy, Specialist


@dataclass(frozen=True)
class CentralLapsed:
    branch_id: int | None
    lead_id: int
    policy_number: str
    expiry_date: date
    owner_id: int | None


async def central_lapsed(
    session: AsyncSession, branch_id: int | None = None
) -> list[CentralLapsed]:
    """Lapsed leads handled centrally (lapsed > 48 h), still open: the list for each branch."""
    stmt = (
        select(Policy.branch_id, Lead.id, Policy.policy_number, Policy.expiry_date, Lead.owner_id)
        .join(Policy, Policy.id == Lead.policy_id)
        .where(Lead.kind == "lapsed", Lead.central, Lead.status != LeadStatus.CLOSED.value)
        .order_by(Policy.branch_id, Policy.expiry_date, Lead.id)
    )
    if branch_id is not None:
        stmt = stmt.where(Policy.branch_id == branch_id)
    return [CentralLapsed(*row) for row in (await session.execute(stmt)).all()]


async def lapsed_by_branch(session: AsyncSession, day: date) -> dict[int, list[LapsedPolicy]]:
    """Each branch's open lapsed policies (脱保: expired, not renewed, lead not closed), those
    lapsed more than 48 h marked as handled centrally; the daily branch e-mail. `day` is the
    report's day only: the list is the state when it is sent."""
    stmt = (
        select(
            Policy.branch_id,
            Policy.policy_number,
            Customer.name,
            func.coalesce(Phone.e164, Phone.raw, ""),
            Policy.expiry_date,
            Lead.central,
            func.coalesce(Specialist.name, ""),
        )
        .select_from(Lead)
        .join(Policy, Policy.id == Lead.policy_id)
        .join(Customer, Customer.id == Policy.policyholder_id)
        .outerjoin(Phone, Phone.id == Lead.phone_id)
        .outerjoin(Specialist, Specialist.id == Lead.owner_id)
        .where(
            Lead.kind == "lapsed",
            Lead.status != LeadStatus.CLOSED.value,
            ~Policy.renewed,
            Policy.branch_id.is_not(None),
        )
        .order_by(Policy.branch_id, Lead.central.desc(), Policy.expiry_date, Policy.policy_number)
    )
    out: dict[int, list[LapsedPolicy]] = {}
    for branch_id, number, customer, phone, expiry, central, owner in (
        await session.execute(stmt)
    ).all():
        assert branch_id is not None  # filtered above
        out.setdefault(branch_id, []).append(
            LapsedPolicy(number, customer, phone, expiry, central, owner)
        )
    return out
