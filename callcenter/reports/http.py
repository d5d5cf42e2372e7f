"""The reports over HTTP: the JSON API (`@endpoint`, in the OpenAPI document), the
spreadsheets (XLSX with Chinese headers) and the `/reports` page on the shared web stack.
Sales and points (`/api/sales`, `/api/points`, `/reports/sales`): `sales_http.py`. Thin:
validate → service → serialise (or render).

Specialists see their own figures; supervisors and the maintainer see all, and only they
confirm sales, write points rules and see the dialer's report."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

import jinja2
from aiohttp import web
from pydantic import Field

from callcenter.pages import i18n
from callcenter.pages.http import CSRF, render
from callcenter.reports import tables
from callcenter.reports.performance import GROUPS
from callcenter.reports.services import Period, ReportsService, check_period
from crm_sync.api import Day, Id, Query, View, endpoint
from crm_sync.auth import ApiError, principal
from crm_sync.models import LeadKind

log = logging.getLogger(__name__)

REPORTS = web.AppKey("reports", ReportsService)
JINJA = {lang: web.AppKey(f"reports_jinja_{lang}", jinja2.Environment) for lang in i18n.LANGUAGES}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

routes = web.RouteTableDef()

Group = Literal["day", "week", "month", "specialist", "branch", "kind"]
Kind = Literal["renewal", "lapsed", "trial", "callback"]
assert set(Group.__args__) == set(GROUPS)  # type: ignore[attr-defined]
assert set(Kind.__args__) == {k.value for k in LeadKind}  # type: ignore[attr-defined]


class PeriodQuery(Query):
    start: Day | None = Field(default=None, description="first day (default: today)")
    end: Day | None = Field(default=None, description="last day, inclusive (default: start)")


class PerformanceQuery(PeriodQuery):
    group: Group = Field(default="specialist", description="one row per …")
    specialist: Id | None = Field(default=None, description="one specialist (supervisors)")
    branch: Id | None = None
    kind: Kind | None = None


class PerformanceView(View):
    start: str
    end: str
    group: str
    rows: list[dict[str, Any]]
    contact_results: list[dict[str, Any]]


class DialerView(View):
    start: str
    end: str
    attempts_by_hour: list[dict[str, Any]]
    answer_rate_by_hour: list[dict[str, Any]]
    answer_rate_by_weekday: list[dict[str, Any]]
    campaigns: list[dict[str, Any]]
    distribution: list[dict[str, Any]]
    inaccurate_by_branch: list[dict[str, Any]]


def api_period(service: ReportsService, query: PeriodQuery) -> Period:
    """The query's period (from today, one day by default), checked."""
    start = query.start or service.today()
    return check_period(start, query.end or start)


# -- the API ----------------------------------------------------------------------------------


@routes.get("/api/reports/performance")
@endpoint(query=PerformanceQuery, response=PerformanceView, tags=("reports",))
async def performance(request: web.Request, query: PerformanceQuery) -> dict[str, Any]:
    """Daily premium and performance (node 7) by day, week, month, specialist, branch or kind
    of lead; specialists get their own figures only."""
    return await _performance(request, query)


async def _performance(request: web.Request, query: PerformanceQuery) -> dict[str, Any]:
    service = request.app[REPORTS]
    return await service.performance(
        principal(request),
        api_period(service, query),
        query.group,
        specialist=query.specialist,
        branch=query.branch,
        kind=query.kind,
    )


@routes.get("/api/reports/dialer")
@endpoint(query=PeriodQuery, response=DialerView, errors=(403,), tags=("reports",))
async def dialer(request: web.Request, query: PeriodQuery) -> dict[str, Any]:
    """The dialer's report (supervisors): calls by outcome and hour, answer rate by hour and
    weekday, abandon rate per campaign, distribution to first call, late leads, inaccurate
    numbers by branch and how many came back corrected."""
    service = request.app[REPORTS]
    return await service.dialer(principal(request), api_period(service, query))


def _download(data: bytes, name: str) -> web.Response:
    quoted = urlencode({"": name})[1:]
    return web.Response(
        body=data,
        content_type=XLSX,
        headers={
            "Content-Disposition": f"attachment; filename=\"report.xlsx\"; filename*=UTF-8''{quoted}",
            "Cache-Control": "no-store",
        },
    )


@routes.get("/api/reports/performance.xlsx")
@endpoint(query=PerformanceQuery, media={XLSX: "the report as a spreadsheet"}, tags=("reports",))
async def performance_xlsx(request: web.Request, query: PerformanceQuery) -> web.Response:
    """The performance report as XLSX (Chinese headers): the rows and the contact results."""
    body = await _performance(request, query)
    book = tables.xlsx(
        [(tables.PERFORMANCE, body["rows"]), (tables.RESULTS, body["contact_results"])]
    )
    return _download(book, f"业绩_{body['start']}_{body['end']}.xlsx")


@routes.get("/api/reports/dialer.xlsx")
@endpoint(
    query=PeriodQuery, errors=(403,), media={XLSX: "the report as a spreadsheet"}, tags=("reports",)
)
async def dialer_xlsx(request: web.Request, query: PeriodQuery) -> web.Response:
    """The dialer's report as XLSX (Chinese headers), one sheet per table."""
    service = request.app[REPORTS]
    data = await service.dialer(principal(request), api_period(service, query))
    book = tables.xlsx([(t, data[t.name]) for t in tables.DIALER])
    return _download(book, f"外呼_{data['start']}_{data['end']}.xlsx")


# -- the pages ------------------------------------------------------------------------------


def page_period(request: web.Request) -> Period:
    """A page's `start` and `end` (today by default), checked."""
    service = request.app[REPORTS]
    try:
        start = date.fromisoformat(request.query.get("start") or service.today().isoformat())
        end = date.fromisoformat(request.query.get("end") or start.isoformat())
    except ValueError:
        raise ApiError(400, "start and end are days, e.g. 2026-01-05") from None
    return check_period(start, end)


@routes.get("/reports")
async def reports_page(request: web.Request) -> web.Response:
    """The desk's numbers: charts, the performance table, the dialer's report."""
    who = principal(request)
    service = request.app[REPORTS]
    period = page_period(request)
    group = request.query.get("group", "specialist")
    if group not in GROUPS:
        group = "specialist"
    data = await service.page(who, period, group)
    dialer_data = data["dialer"]
    query = urlencode({"start": period.start.isoformat(), "end": period.end.isoformat()})
    charts = {
        "premium_by_day": [[r["key"], float(r["premium"])] for r in data["by_day"]],
        "ranking": [[r["label"], float(r["premium"])] for r in data["ranking"]],
        "answer_rate_by_hour": [
            [r["hour"], r["answer_rate"] or 0]
            for r in (dialer_data or {}).get("answer_rate_by_hour", [])
        ],
    }
    return render(
        request,
        "reports.html",
        {
            "who": who,
            "csrf": request.get(CSRF, ""),
            "period": period,
            "group": group,
            "groups": GROUPS,
            "report": data["report"],
            "dialer": dialer_data,
            "perf_table": tables.PERFORMANCE,
            "results_table": tables.RESULTS,
            "dialer_tables": tables.DIALER,
            "charts": charts,
            "xlsx_performance": f"/api/reports/performance.xlsx?{query}&group={group}",
            "xlsx_dialer": f"/api/reports/dialer.xlsx?{query}",
            "week_ago": (period.end - timedelta(days=6)).isoformat(),
        },
        envs=JINJA,
    )
