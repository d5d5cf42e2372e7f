"""CRM reads for the seat page and supervisors: leads (one's own for a specialist) and the
standard contact results. Thin handlers; access rules from crm_sync.auth."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.auth import ApiError, json_response, principal, require_own
from crm_sync.models import ContactResult, Customer, Lead, LeadKind, LeadStatus, Phone, Policy

CRM_SESSIONS = web.AppKey("crm_sessions", async_sessionmaker[AsyncSession])
routes = web.RouteTableDef()
MAX_PAGE = 500


def lead_view(
    lead: Lead, policy: Policy, customer: Customer, phone: Phone | None
) -> dict[str, Any]:
    return {
        "id": lead.id,
        "kind": lead.kind,
        "status": lead.status,
        "owner_id": lead.owner_id,
        "distributed_on": lead.distributed_on.isoformat() if lead.distributed_on else None,
        "contact_result": lead.contact_result,
        "contact_result_at": lead.contact_result_at.isoformat() if lead.contact_result_at else None,
        "callback_at": lead.callback_at.isoformat() if lead.callback_at else None,
        "next_attempt_at": lead.next_attempt_at.isoformat() if lead.next_attempt_at else None,
        "attempt_count": lead.attempt_count,
        "policy": {
            "policy_number": policy.policy_number,
            "plate_number": policy.plate_number,
            "make_model": policy.make_model,
            "expiry_date": policy.expiry_date.isoformat(),
        },
        "customer": {"name": customer.name},
        "phone": {
            "number": phone.e164 or phone.raw,
            "accuracy": phone.accuracy,
            "valid": phone.valid,
        }
        if phone
        else None,
    }


def _int(value: str | None, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, f"{name} must be a whole number") from None


@routes.get("/api/leads")
async def list_leads(request: web.Request) -> web.Response:
    """Leads: a specialist's own queue; supervisors may filter by owner.

    Query: status, kind, owner (supervisors), limit (≤ 500), offset.
    """
    me = principal(request)
    q = request.query
    stmt = (
        select(Lead, Policy, Customer, Phone)
        .join(Policy, Lead.policy_id == Policy.id)
        .join(Customer, Policy.policyholder_id == Customer.id)
        .outerjoin(Phone, Lead.phone_id == Phone.id)
    )
    if me.is_supervisor:
        if "owner" in q:
            stmt = stmt.where(Lead.owner_id == _int(q["owner"], "owner", 0))
    else:
        stmt = stmt.where(Lead.owner_id == me.user_id)
    if "status" in q:
        if q["status"] not in {s.value for s in LeadStatus}:
            raise ApiError(400, f"status must be one of {', '.join(s.value for s in LeadStatus)}")
        stmt = stmt.where(Lead.status == q["status"])
    if "kind" in q:
        if q["kind"] not in {k.value for k in LeadKind}:
            raise ApiError(400, f"kind must be one of {', '.join(k.value for k in LeadKind)}")
        stmt = stmt.where(Lead.kind == q["kind"])
    limit = min(max(_int(q.get("limit"), "limit", 100), 1), MAX_PAGE)
    offset = max(_int(q.get("offset"), "offset", 0), 0)
    async with request.app[CRM_SESSIONS]() as s:
        total = await s.scalar(select(func.count()).select_from(stmt.subquery()))
        rows = (
            await s.execute(
                stmt.order_by(
                    Lead.callback_at.is_(None), Lead.callback_at, Policy.expiry_date, Lead.id
                )
                .limit(limit)
                .offset(offset)
            )
        ).all()
    return json_response({"total": total, "items": [lead_view(*row) for row in rows]})


@routes.get("/api/leads/{lead_id}")
async def get_lead(request: web.Request) -> web.Response:
    """One lead with its policy, customer and phone (one's own, for a specialist)."""
    lead_id = _int(request.match_info["lead_id"], "lead id", 0)
    async with request.app[CRM_SESSIONS]() as s:
        row = (
            await s.execute(
                select(Lead, Policy, Customer, Phone)
                .join(Policy, Lead.policy_id == Policy.id)
                .join(Customer, Policy.policyholder_id == Customer.id)
                .outerjoin(Phone, Lead.phone_id == Phone.id)
                .where(Lead.id == lead_id)
            )
        ).first()
    if row is None:
        raise ApiError(404, "no such lead")
    require_own(principal(request), row[0].owner_id)
    return json_response(lead_view(*row))


@routes.get("/api/contact-results")
async def contact_results(request: web.Request) -> web.Response:
    """The standard contact results (标准联系结果) with Chinese and English labels."""
    principal(request)
    async with request.app[CRM_SESSIONS]() as s:
        rows = (await s.scalars(select(ContactResult).order_by(ContactResult.sort_order))).all()
    return json_response(
        [
            {
                "code": r.code,
                "label_zh": r.label_zh,
                "label_en": r.label_en,
                "set_by": "dialer" if r.telephony else "specialist",
                "final": r.final,
            }
            for r in rows
        ]
    )
