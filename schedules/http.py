"""The calendar's API: calling windows for everyone (the seat page's callback picker), the
day's distribution for supervisors. Thin handlers over `schedules.services.DeskService`."""

from __future__ import annotations

from datetime import date

from aiohttp import web

from common.web import ApiError, json_response, principal, require_supervisor
from schedules.exceptions import DistributionDayRefused
from schedules.services import DeskService

DESK_SERVICE = web.AppKey("desk_service", DeskService)
routes = web.RouteTableDef()


def _day(value: object, name: str = "date") -> date:
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a date, YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"{name} {value!r} is not a date, YYYY-MM-DD") from None


@routes.get("/api/calendar")
async def calendar(request: web.Request) -> web.Response:
    """Calling windows: open now?, seconds until it closes, next opening, the next openings.

    Query: kind (renewal, lapsed, trial, callback, reminder; default renewal), tz (an IANA
    zone, default the desk's), slots (1–50, default 5).
    """
    principal(request)
    q = request.query
    try:
        slots = int(q.get("slots", "5"))
    except ValueError:
        raise ApiError(400, "slots must be a whole number") from None
    try:
        body = request.app[DESK_SERVICE].calendar(q.get("kind", "renewal"), q.get("tz"), slots)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return json_response(body)


@routes.post("/api/distribution")
async def distribute(request: web.Request) -> web.Response:
    """Run the day's timeline and distribution now (supervisors; idempotent: a second run the
    same day deals only leads that became due since).

    Body (all optional): {"date": "YYYY-MM-DD", "dry_run": false, "seed": 123,
    "timeline": true, "force": false}. A date more than three days from today answers 409
    with what the run would close (`would`) unless "force" is true; a dry run shows it too.
    """
    require_supervisor(principal(request))
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        raise ApiError(400, "the body must be JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    day = _day(body["date"]) if body.get("date") is not None else None
    dry_run, timeline, seed, force = (
        body.get("dry_run", False),
        body.get("timeline", True),
        body.get("seed"),
        body.get("force", False),
    )
    if not all(isinstance(flag, bool) for flag in (dry_run, timeline, force)):
        raise ApiError(400, "dry_run, timeline and force must be true or false")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ApiError(400, "seed must be a whole number")
    try:
        work = await request.app[DESK_SERVICE].distribute(
            day, dry_run=dry_run, seed=seed, timeline=timeline, force=force
        )
    except DistributionDayRefused as exc:
        raise ApiError(409, exc.reason, would=exc.preview.to_dict()) from None
    return json_response(work.to_dict())


@routes.get("/api/distribution/{day}")
async def runs(request: web.Request) -> web.Response:
    """The recorded distribution runs of a day (supervisors): seed, counts, skipped and why."""
    require_supervisor(principal(request))
    day = _day(request.match_info["day"], "day")
    return json_response(
        {"day": day.isoformat(), "runs": await request.app[DESK_SERVICE].runs(day)}
    )
