"""CRM reads for the seat page and supervisors: leads (one's own for a specialist), the
standard contact results, and the supervisors' API tokens. Thin handlers; access rules and
token work in crm_sync.auth."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.web import CLOCK, ApiError, principal, require_own
from crm_sync.api import (
    Body,
    Id,
    Limit,
    Name,
    Offset,
    PathParams,
    Query,
    Timestamp,
    View,
    When,
    endpoint,
)
from crm_sync.auth import TokenError, create_token, list_tokens, revoke_token
from crm_sync.models import ContactResult, Customer, Lead, LeadKind, LeadStatus, Phone, Policy

CRM_SESSIONS = web.AppKey("crm_sessions", async_sessionmaker[AsyncSession])
routes = web.RouteTableDef()
T = TypeVar("T")


class LeadQuery(Query):
    status: LeadStatus | None = None
    kind: LeadKind | None = None
    owner: Id | None = None
    limit: Limit = 100
    offset: Offset = 0


class LeadPath(PathParams):
    lead_id: Id


class PolicyBrief(View):
    policy_number: str
    plate_number: str | None
    make_model: str | None
    expiry_date: date


class PhoneBrief(View):
    number: str | None
    accuracy: str | None
    valid: bool | None


class LeadView(View):
    id: int
    kind: str
    status: str
    owner_id: int | None
    distributed_on: date | None
    contact_result: str | None
    contact_result_at: Timestamp | None
    callback_at: Timestamp | None
    next_attempt_at: Timestamp | None
    attempt_count: int
    policy: PolicyBrief
    customer: dict[str, Any]
    phone: PhoneBrief | None


class LeadPage(View):
    total: int
    items: list[LeadView]


class ContactResultView(View):
    code: str
    label_zh: str
    label_en: str
    set_by: Literal["dialer", "specialist"]
    final: bool


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


@routes.get("/api/leads")
@endpoint(query=LeadQuery, response=LeadPage, tags=("leads",))
async def list_leads(request: web.Request, query: LeadQuery) -> dict[str, Any]:
    """Leads: a specialist's own queue; supervisors may filter by owner.

    Query: status, kind, owner (supervisors), limit (1-500), offset.
    """
    me = principal(request)
    stmt = (
        select(Lead, Policy, Customer, Phone)
        .join(Policy, Lead.policy_id == Policy.id)
        .join(Customer, Policy.policyholder_id == Customer.id)
        .outerjoin(Phone, Lead.phone_id == Phone.id)
    )
    if me.is_supervisor:
        if query.owner is not None:
            stmt = stmt.where(Lead.owner_id == query.owner)
    else:
        stmt = stmt.where(Lead.owner_id == me.user_id)
    if query.status is not None:
        stmt = stmt.where(Lead.status == query.status.value)
    if query.kind is not None:
        stmt = stmt.where(Lead.kind == query.kind.value)
    async with request.app[CRM_SESSIONS]() as s:
        total = await s.scalar(select(func.count()).select_from(stmt.subquery()))
        rows = (
            await s.execute(
                stmt.order_by(
                    Lead.callback_at.is_(None), Lead.callback_at, Policy.expiry_date, Lead.id
                )
                .limit(query.limit)
                .offset(query.offset)
            )
        ).all()
    return {"total": total, "items": [lead_view(*row) for row in rows]}


@routes.get("/api/leads/{lead_id}")
@endpoint(path=LeadPath, response=LeadView, errors=(404,), tags=("leads",))
async def get_lead(request: web.Request, path: LeadPath) -> dict[str, Any]:
    """One lead with its policy, customer and phone (one's own, for a specialist)."""
    lead_id = path.lead_id
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
    return lead_view(*row)


@routes.get("/api/contact-results")
@endpoint(response=list[ContactResultView], tags=("leads",))
async def contact_results(request: web.Request) -> list[dict[str, Any]]:
    """The standard contact results (标准联系结果) with Chinese and English labels."""
    principal(request)
    async with request.app[CRM_SESSIONS]() as s:
        rows = (await s.scalars(select(ContactResult).order_by(ContactResult.sort_order))).all()
    return [
        {
            "code": r.code,
            "label_zh": r.label_zh,
            "label_en": r.label_en,
            "set_by": "dialer" if r.telephony else "specialist",
            "final": r.final,
        }
        for r in rows
    ]


# ---------------------------------------------------------------------------------------------
# API tokens (supervisors): list, create (the secret is in this answer only), revoke
# ---------------------------------------------------------------------------------------------

MAX_TOKEN_DAYS = 3650


class TokenQuery(Query):
    specialist_id: Id | None = Field(default=None, description="only this user's tokens")
    all: bool = Field(default=False, description="revoked and expired tokens too")


class TokenPath(PathParams):
    token_id: Id


class TokenCreate(Body):
    """POST /api/tokens. `expires_at` (a date-time with its zone) or `expires_in_days`."""

    specialist_id: Id
    label: Name | None = None
    expires_at: When | None = None
    expires_in_days: int | None = Field(default=None, ge=1, le=MAX_TOKEN_DAYS)

    @model_validator(mode="after")
    def _one_expiry(self) -> TokenCreate:
        if self.expires_at is not None and self.expires_in_days is not None:
            raise ValueError("give expires_at or expires_in_days, not both")
        return self

    def expiry(self, now: datetime) -> datetime | None:
        if self.expires_in_days is not None:
            return now + timedelta(days=self.expires_in_days)
        return self.expires_at


class TokenView(View):
    """A token as lists show it: its prefix, never its secret."""

    id: int
    prefix: str | None
    specialist_id: int
    specialist: str
    role: str
    label: str | None
    created_at: Timestamp
    expires_at: Timestamp | None
    revoked_at: Timestamp | None
    state: Literal["active", "expired", "revoked"]


class TokenList(View):
    items: list[TokenView]


class NewToken(TokenView):
    token: str = Field(description="the secret: shown in this answer only")


async def _token_work(
    request: web.Request, work: Callable[[AsyncSession, datetime], Awaitable[T]]
) -> T:
    now = request.app[CLOCK].now()
    async with request.app[CRM_SESSIONS]() as s:
        try:
            result = await work(s, now)
        except TokenError as exc:
            raise ApiError(exc.status, exc.reason) from None
        await s.commit()
    return result


@routes.get("/api/tokens")
@endpoint(supervisor=True, query=TokenQuery, response=TokenList, tags=("tokens",))
async def get_tokens(request: web.Request, query: TokenQuery) -> dict[str, Any]:
    """API tokens, never their secrets (supervisors); by default only those that still work."""
    tokens = await _token_work(
        request,
        lambda s, now: list_tokens(
            s, now, specialist_id=query.specialist_id, include_inactive=query.all
        ),
    )
    return {"items": [t.to_dict() for t in tokens]}


@routes.post("/api/tokens")
@endpoint(
    supervisor=True,
    body=TokenCreate,
    response=NewToken,
    status=201,
    errors=(404, 409),
    tags=("tokens",),
)
async def post_token(request: web.Request, body: TokenCreate) -> dict[str, Any]:
    """Issue a token for a user (supervisors). The secret is in this answer and never again.

    A maintainer's token is made by a maintainer (403); a deactivated user gets none (409).
    """
    me = principal(request)
    secret, info = await _token_work(
        request,
        lambda s, now: create_token(
            s,
            body.specialist_id,
            now,
            label=body.label,
            expires_at=body.expiry(now),
            actor_role=me.role,
        ),
    )
    return {"token": secret, **info.to_dict()}


@routes.post("/api/tokens/{token_id}/revoke")
@endpoint(supervisor=True, path=TokenPath, response=TokenView, errors=(404,), tags=("tokens",))
async def post_revoke(request: web.Request, path: TokenPath) -> dict[str, Any]:
    """Revoke a token at once (supervisors); its bearer gets 401 from the next request on.

    Revoking it again keeps the first time.
    """
    me = principal(request)
    return (
        await _token_work(
            request, lambda s, now: revoke_token(s, path.token_id, now, actor_role=me.role)
        )
    ).to_dict()
