"""CRM reads for the seat page and supervisors: leads (one's own for a specialist), the
standard contact results, and the supervisors' API tokens. Thin handlers; access rules and
token work in crm_sync.auth."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.web import CLOCK, ApiError, json_response, principal, require_own, require_supervisor
from crm_sync.auth import TokenError, create_token, list_tokens, revoke_token
from crm_sync.models import ContactResult, Customer, Lead, LeadKind, LeadStatus, Phone, Policy

CRM_SESSIONS = web.AppKey("crm_sessions", async_sessionmaker[AsyncSession])
routes = web.RouteTableDef()
MAX_PAGE = 500
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


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


# ---------------------------------------------------------------------------------------------
# API tokens (supervisors): list, create (the secret is in this answer only), revoke
# ---------------------------------------------------------------------------------------------

MAX_TOKEN_DAYS = 3650


class TokenCreate(BaseModel):
    """POST /api/tokens. `expires_at` (a date-time with its zone) or `expires_in_days`."""

    model_config = ConfigDict(extra="forbid")

    specialist_id: int = Field(ge=1, le=2**31 - 1)
    label: str | None = Field(default=None, max_length=100)
    expires_at: AwareDatetime | None = None
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


def _validation_reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


async def read_body(request: web.Request, model: type[M]) -> M:
    """The request's JSON body checked against `model`, or a 400 that says what is wrong."""
    try:
        raw = await request.json() if request.can_read_body else {}
    except ValueError:
        raise ApiError(400, "the body must be JSON") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ApiError(400, _validation_reason(exc)) from None


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
async def get_tokens(request: web.Request) -> web.Response:
    """API tokens, never their secrets (supervisors).

    Query: specialist_id (one user's), all=true (revoked and expired ones too).
    """
    require_supervisor(principal(request))
    q = request.query
    who = _int(q.get("specialist_id"), "specialist_id", 0) or None
    everything = q.get("all", "false").lower() in ("true", "1", "yes")
    tokens = await _token_work(
        request,
        lambda s, now: list_tokens(s, now, specialist_id=who, include_inactive=everything),
    )
    return json_response({"items": [t.to_dict() for t in tokens]})


@routes.post("/api/tokens")
async def post_token(request: web.Request) -> web.Response:
    """Issue a token for a user (supervisors). The secret is in this answer and never again.

    Body: {"specialist_id": 3, "label": "seat page", "expires_in_days": 30} or
    {"expires_at": "2027-01-31T18:00:00+08:00"}.
    """
    me = principal(request)
    require_supervisor(me)
    body = await read_body(request, TokenCreate)
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
    return json_response({"token": secret, **info.to_dict()}, status=201)


@routes.post("/api/tokens/{token_id}/revoke")
async def post_revoke(request: web.Request) -> web.Response:
    """Revoke a token at once (supervisors); its bearer gets 401 from the next request on."""
    me = principal(request)
    require_supervisor(me)
    token_id = _int(request.match_info["token_id"], "token id", 0)
    info = await _token_work(
        request, lambda s, now: revoke_token(s, token_id, now, actor_role=me.role)
    )
    return json_response(info.to_dict())
