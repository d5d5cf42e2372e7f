"""Sales and points over HTTP: the JSON API (`/api/sales`, `/api/points`, in the OpenAPI
document) and the maintainer's `/reports/sales` page with its forms. Thin: validate → service
(`crm_sync.sales`) → serialise (or render).

A specialist records and sees their own sales; supervisors and the maintainer see all, and
only they confirm sales and write points rules."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlencode

from aiohttp import web
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.pages.http import CSRF, render
from callcenter.reports.http import (
    JINJA,
    REPORTS,
    Kind,
    PeriodQuery,
    api_period,
    page_period,
)
from common.errors import BadInput
from crm_sync import sales
from crm_sync.api import Body, Day, Id, Limit, Name, PathParams, View, endpoint
from crm_sync.auth import ApiError, Principal, principal, require_supervisor
from crm_sync.models import LeadKind, SaleStatus
from crm_sync.points import RuleInvalid, parse_bands

SALES_SESSIONS = web.AppKey("sales_sessions", async_sessionmaker)

routes = web.RouteTableDef()


class SalesQuery(PeriodQuery):
    status: Literal["recorded", "confirmed"] | None = None
    limit: Limit = 200


PolicyNumber = Name


class SaleConfirmation(Body):
    """What the paperwork says; a field left out stays as it is."""

    premium: Decimal | None = Field(default=None, ge=0, lt=Decimal("1e10"), decimal_places=2)
    new_policy_number: PolicyNumber | None = None
    red_star: bool | None = Field(default=None, description="红星 for the specialist")
    membership_card: PolicyNumber | None = None
    vehicle_licence_expiry: Day | None = None
    driving_licence_expiry: Day | None = None
    policy_expiry: Day | None = None
    insured_name: Name | None = None


class SalePath(PathParams):
    sale_id: Id


class SaleView(View):
    sale_id: int
    lead_id: int
    premium: str
    points: int
    status: str


class Band(Body):
    premium_from: Decimal = Field(alias="from", ge=0, lt=Decimal("1e10"))
    points: int = Field(ge=0, le=1_000_000)


class NewRule(Body):
    lead_kind: Kind
    effective_from: Day
    bands: list[Band] = Field(min_length=1, max_length=50)
    red_star_bonus: int = Field(default=0, ge=0, le=1_000_000)


class RuleView(View):
    id: int
    lead_kind: str
    effective_from: str
    bands: list[dict[str, Any]]
    red_star_bonus: int


class Recompute(Body):
    start: Day
    end: Day


class RecomputedView(View):
    start: str
    end: str
    sales: int
    changed: int
    points: int


def _sessions(request: web.Request) -> async_sessionmaker[AsyncSession]:
    return request.app[SALES_SESSIONS]


# -- the API ----------------------------------------------------------------------------------


@routes.get("/api/sales")
@endpoint(query=SalesQuery, response=list[SaleView], tags=("sales",))
async def list_sales(request: web.Request, query: SalesQuery) -> list[dict[str, Any]]:
    """Sales of a period, newest first (specialists: their own)."""
    period = api_period(request.app[REPORTS], query)
    async with _sessions(request)() as s:
        return await sales.list_sales(
            s, principal(request), period.start, period.end, query.status, query.limit
        )


class NewSale(Body):
    lead_id: Id
    premium: Decimal = Field(gt=0, lt=Decimal("1e10"), decimal_places=2)
    new_policy_number: PolicyNumber | None = None


@routes.post("/api/sales")
@endpoint(body=NewSale, response=SaleView, status=201, errors=(404, 409), tags=("sales",))
async def add_sale(request: web.Request, body: NewSale) -> dict[str, Any]:
    """A sale for a lead whose result is 成功续保 (a specialist: own leads; the maintainer: any,
    e.g. when the premium was not entered at the disposition). Entered again before the
    maintainer confirms it, it corrects the first entry."""
    service = request.app[REPORTS]
    async with _sessions(request)() as s:
        view = await sales.record_sale(
            s,
            body.lead_id,
            principal(request),
            body.premium,
            body.new_policy_number,
            service.clock.now(),
            service.tz.key,
        )
        await s.commit()
    return view


@routes.post("/api/sales/{sale_id}/confirm")
@endpoint(
    supervisor=True,
    path=SalePath,
    body=SaleConfirmation,
    response=SaleView,
    errors=(404,),
    tags=("sales",),
)
async def confirm(request: web.Request, path: SalePath, body: SaleConfirmation) -> dict[str, Any]:
    """The maintainer confirms (or corrects) a sale against the paperwork and invoice; the
    licence dates, membership card and changed policy data update the customer and policy."""
    who = principal(request)
    return await _confirm(request, who, path.sale_id, sales.SaleChanges(**body.model_dump()))


async def _confirm(
    request: web.Request, who: Principal, sale_id: int, changes: sales.SaleChanges
) -> dict[str, Any]:
    async with _sessions(request)() as s:
        view = await sales.confirm_sale(s, sale_id, who, changes, request.app[REPORTS].clock.now())
        await s.commit()
    return view


@routes.get("/api/sales/{sale_id}/audit")
@endpoint(supervisor=True, path=SalePath, response=list[dict[str, Any]], tags=("sales",))
async def audit(request: web.Request, path: SalePath) -> list[dict[str, Any]]:
    """Who recorded, confirmed and corrected a sale, and when (supervisors)."""
    async with _sessions(request)() as s:
        return await sales.sale_audit(s, path.sale_id)


@routes.get("/api/points/rules")
@endpoint(response=list[RuleView], tags=("sales",))
async def rules(request: web.Request) -> list[dict[str, Any]]:
    """The points rules (积分规则), per kind of lead and the day each starts."""
    principal(request)
    async with _sessions(request)() as s:
        return await sales.list_rules(s)


@routes.post("/api/points/rules")
@endpoint(supervisor=True, body=NewRule, response=RuleView, status=201, tags=("sales",))
async def add_rule(request: web.Request, body: NewRule) -> dict[str, Any]:
    """Supervisor: a points rule from a day on (tomorrow or later: earned points never
    change); a rule for a day still ahead is replaced."""
    who = principal(request)
    service = request.app[REPORTS]
    async with _sessions(request)() as s:
        view = await sales.add_rule(
            s,
            who,
            body.lead_kind,
            body.effective_from,
            [(b.premium_from, b.points) for b in body.bands],
            body.red_star_bonus,
            service.clock.now(),
            service.today(),
        )
        await s.commit()
    return view


@routes.post("/api/points/recompute")
@endpoint(supervisor=True, body=Recompute, response=RecomputedView, tags=("sales",))
async def recompute(request: web.Request, body: Recompute) -> dict[str, Any]:
    """Supervisor: score the sales of a period again with the rules of each sale's day (the
    same answer every time; changed points are audited and sent to the CRM)."""
    who = principal(request)
    if (body.end - body.start).days > 400:
        raise BadInput("recompute at most 400 days at a time")
    async with _sessions(request)() as s:
        done = await sales.recompute_points(
            s, body.start, body.end, who, request.app[REPORTS].clock.now()
        )
        await s.commit()
    return done.as_dict()


@routes.get("/reports/sales")
async def sales_page(request: web.Request) -> web.Response:
    """The maintainer's sales: confirm or correct each against the paperwork."""
    who = principal(request)
    period = page_period(request)
    async with _sessions(request)() as s:
        rows = await sales.list_sales(s, who, period.start, period.end)
        rules = await sales.list_rules(s)
    return render(
        request,
        "sales.html",
        {
            "who": who,
            "csrf": request.get(CSRF, ""),
            "period": period,
            "sales": rows,
            "saved": request.query.get("saved"),
            "rule_saved": request.query.get("rule"),
            "statuses": [s.value for s in SaleStatus],
            "rules": rules,
            "kinds": [k.value for k in LeadKind],
            "tomorrow": (request.app[REPORTS].today() + timedelta(days=1)).isoformat(),
        },
        envs=JINJA,
    )


def _form_day(form: Any, name: str) -> date | None:
    value = str(form.get(name, "")).strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"{name} is a day, e.g. 2027-01-31") from None


def _form_text(form: Any, name: str) -> str | None:
    value = str(form.get(name, "")).strip()
    if len(value) > 100:
        raise ApiError(400, f"{name} is at most 100 characters")
    return value or None


@routes.post("/reports/sales/{sale_id}/confirm")
async def confirm_form(request: web.Request) -> web.Response:
    """The sales page's confirm button (a form with the session's CSRF token)."""
    who = principal(request)
    require_supervisor(who)
    try:
        sale_id = int(request.match_info["sale_id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    form = await request.post()
    premium: Decimal | None = None
    if str(form.get("premium", "")).strip():
        try:
            premium = Decimal(str(form["premium"]).strip())
        except ArithmeticError:
            raise ApiError(400, "premium must be an amount, e.g. 3560.00") from None
    changes = sales.SaleChanges(
        premium=premium,
        new_policy_number=_form_text(form, "new_policy_number"),
        red_star=form.get("red_star") == "on",
        membership_card=_form_text(form, "membership_card"),
        vehicle_licence_expiry=_form_day(form, "vehicle_licence_expiry"),
        driving_licence_expiry=_form_day(form, "driving_licence_expiry"),
        policy_expiry=_form_day(form, "policy_expiry"),
        insured_name=_form_text(form, "insured_name"),
    )
    view = await _confirm(request, who, sale_id, changes)
    back = urlencode({"start": view["sold_on"], "end": view["sold_on"], "saved": sale_id})
    raise web.HTTPSeeOther(f"/reports/sales?{back}")


@routes.post("/reports/points/rules")
async def rule_form(request: web.Request) -> web.Response:
    """The sales page's points-rule form: kind, first day, bands as `0:10, 2000:20`, bonus."""
    who = principal(request)
    require_supervisor(who)
    form = await request.post()
    start = _form_day(form, "effective_from")
    if start is None:
        raise ApiError(400, "effective_from is required, e.g. 2027-01-01")
    try:
        bands = parse_bands(str(form.get("bands", "")).replace("，", ",").split(","))
    except RuleInvalid as exc:
        raise ApiError(400, str(exc)) from None
    try:
        bonus = int(str(form.get("red_star_bonus", "0")) or 0)
    except ValueError:
        raise ApiError(400, "the red-star bonus is a whole number of points") from None
    service = request.app[REPORTS]
    async with _sessions(request)() as s:
        await sales.add_rule(
            s,
            who,
            str(form.get("lead_kind", "")),
            start,
            bands,
            bonus,
            service.clock.now(),
            service.today(),
        )
        await s.commit()
    raise web.HTTPSeeOther(f"/reports/sales?{urlencode({'rule': start.isoformat()})}")
