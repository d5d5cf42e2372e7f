"""The calendar's API: calling windows for everyone (the seat page's callback picker), the
day's distribution for supervisors. Thin handlers over `schedules.services.DeskService`;
each route declares its models (crm_sync.api), which check the request and describe it."""

from __future__ import annotations

import functools
import zoneinfo
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AfterValidator, Field

from common.web import ApiError, principal
from crm_sync.api import (
    Body,
    Day,
    PathParams,
    Problem,
    Query,
    Timestamp,
    View,
    endpoint,
    pattern,
)
from schedules.exceptions import DistributionDayRefused
from schedules.services import CAMPAIGN_KINDS, MAX_SLOTS, DeskService

DESK_SERVICE = web.AppKey("desk_service", DeskService)
routes = web.RouteTableDef()


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _known_zone(name: str) -> str:
    if name not in _zones():
        raise ValueError("unknown time zone: an IANA name such as Asia/Shanghai")
    return name


Zone = Annotated[
    str,
    Field(
        max_length=64,
        pattern=pattern(r"^[A-Za-z0-9_+/-]+$", "must be an IANA zone name such as Asia/Shanghai"),
        examples=["Asia/Shanghai"],
    ),
    AfterValidator(_known_zone),
]
CampaignKind = Literal[CAMPAIGN_KINDS]  # type: ignore[valid-type]


class CalendarQuery(Query):
    kind: CampaignKind = "renewal"
    tz: Zone | None = Field(default=None, description="default: the desk's zone")
    slots: Annotated[int, Field(ge=1, le=MAX_SLOTS)] = 5


class Slot(View):
    start: Timestamp
    end: Timestamp
    local: str


class CalendarView(View):
    kind: str
    tz: str
    now: Timestamp
    calling_day: bool
    open: bool
    closes_in_seconds: int | None
    next_open: Timestamp
    slots: list[Slot]


class DistributionRequest(Body):
    date: Day | None = Field(default=None, description="default: today in the desk's zone")
    dry_run: bool = False
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None
    timeline: bool = True
    force: bool = Field(
        default=False,
        description="run for a day more than NEAR_DAYS (3) from today; without it such a "
        "day is refused (409) with what the run would do",
    )


class DistributionView(View):
    timeline: dict[str, Any] | None = None
    distribution: dict[str, Any]
    notes: list[str]


class DistributionRefused(Problem):
    """A day far from today, asked for without `force`."""

    would: DistributionView = Field(description="what the run would do: its dry run")


class DayPath(PathParams):
    day: Day


class DistributionRun(View):
    id: int
    day: str
    seed: int
    instance: str | None
    started_at: Timestamp
    finished_at: Timestamp | None
    due: int
    dealt: int
    counts: Any
    skipped: Any


class DistributionRuns(View):
    day: str
    runs: list[DistributionRun]


@routes.get("/api/calendar")
@endpoint(query=CalendarQuery, response=CalendarView, tags=("calendar",))
async def calendar(request: web.Request, query: CalendarQuery) -> dict[str, Any]:
    """Calling windows: open now?, seconds until it closes, next opening, the next openings.

    Query: kind (renewal, lapsed, trial, callback, reminder; default renewal), tz (an IANA
    zone, default the desk's), slots (1–50, default 5).
    """
    principal(request)
    return request.app[DESK_SERVICE].calendar(query.kind, query.tz, query.slots)


@routes.post("/api/distribution")
@endpoint(
    supervisor=True,
    body=DistributionRequest,
    body_required=False,
    response=DistributionView,
    problems={409: DistributionRefused},
    tags=("supervisor",),
)
async def distribute(request: web.Request, body: DistributionRequest) -> dict[str, Any]:
    """Run the day's timeline and distribution now (supervisors; idempotent: a second run the
    same day deals only leads that became due since).

    A date more than three days from today answers 409 with what the run would close
    (`would`) unless `force` is true; a dry run shows it too.
    """
    try:
        work = await request.app[DESK_SERVICE].distribute(
            body.date,
            dry_run=body.dry_run,
            seed=body.seed,
            timeline=body.timeline,
            force=body.force,
        )
    except DistributionDayRefused as exc:
        raise ApiError(409, exc.reason, would=exc.preview.to_dict()) from None
    return work.to_dict()


@routes.get("/api/distribution/{day}")
@endpoint(supervisor=True, path=DayPath, response=DistributionRuns, tags=("supervisor",))
async def runs(request: web.Request, path: DayPath) -> dict[str, Any]:
    """The recorded distribution runs of a day (supervisors): seed, counts, skipped and why."""
    return {"day": path.day.isoformat(), "runs": await request.app[DESK_SERVICE].runs(path.day)}
