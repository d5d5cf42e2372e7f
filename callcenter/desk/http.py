"""The desk pages: reviewing recordings (everyone; a specialist sees their own, read-only)
and running the day (supervisors and the CRM maintainer): import, distribution, campaigns,
specialists and seats. Thin: validate → service → render. The pages' scripts act through
the JSON API the rest of the service uses (/api/recordings, /api/distribution,
/api/campaigns, /api/users) with the session's CSRF token; the routes here add only what
the API lacks (an upload with progress, the rejected rows as a workbook, a person with a
seat and a login in one step)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import BodyPartReader, web
from pydantic import Field, model_validator

from callcenter.desk.imports import DeskImports, rejected_rows_workbook
from callcenter.desk.labels import LABELS
from callcenter.desk.services import DeskPages
from callcenter.pages import i18n
from callcenter.pages.http import CSRF, _call, _render
from common.principal import Principal
from common.web import ApiError, json_response, principal, require_supervisor
from crm_sync.api import Body, Code, Day, Id, Name, Offset, PathParams, Query, endpoint
from crm_sync.dialplan import SeatDevice
from crm_sync.exceptions import ImportInputError
from crm_sync.models import CampaignKind, LeadKind
from dialer.models import DialMode
from dialer.services import modes_for
from recordings.listing import RecordingFilter
from schedules.retry import Outcome

log = logging.getLogger(__name__)

DESK = web.AppKey("desk_pages", DeskPages)
IMPORTS = web.AppKey("desk_imports", DeskImports)
JINJA = {lang: web.AppKey(f"desk_jinja_{lang}", jinja2.Environment) for lang in i18n.LANGUAGES}
GETTEXT = web.AppKey("desk_gettext", dict)  # language -> gettext, for texts made in Python
PAGE_SIZE = 50
UPLOAD_LIMIT = 200 * 1024 * 1024  # a core-system export of a few hundred thousand rows

routes = web.RouteTableDef()
routes.static("/desk/static", Path(__file__).with_name("static"))


def _page(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    who = principal(request)
    tr = _gettext(request)

    def label(group: str, code: str | None) -> str:
        if code is None:
            return "—"
        known = LABELS[group].get(code)
        return tr(known) if known else code

    base = {
        "who": who,
        "csrf": request.get(CSRF, ""),
        "page": template.removesuffix(".html"),
        "label": label,
    }
    return _render(request, template, {**base, **context}, status, JINJA)


def _supervisor_page(request: web.Request) -> Principal | web.Response:
    who = principal(request)
    if not who.is_supervisor:
        return _page(request, "desk_forbidden.html", {}, 403)
    return who


def _gettext(request: web.Request, lang: str | None = None) -> Callable[[str], str]:
    tr: Callable[[str], str] = request.app[GETTEXT][lang or i18n.language(request)]
    return tr


# -- reviewing recordings -----------------------------------------------------------------


class RecordingsQuery(Query):
    specialist: Id | None = None
    day: Day | None = None
    outcome: Code | None = None
    campaign: Code | None = None
    reviewed: Literal["yes", "no"] | None = None
    min_seconds: Annotated[float, Field(ge=0, le=86_400)] | None = None
    max_seconds: Annotated[float, Field(ge=0, le=86_400)] | None = None
    offset: Offset = 0

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        # A filter form sends its empty fields too: "" means "any".
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v not in ("", None)}
        return data


def _filter(request: web.Request, q: RecordingsQuery, limit: int = PAGE_SIZE) -> RecordingFilter:
    since = until = None
    if q.day is not None:
        zone = ZoneInfo(request.app[DESK].tz)
        since = datetime.combine(q.day, time(0, 0), tzinfo=zone)
        until = since + timedelta(days=1)
    return RecordingFilter(
        specialist_id=q.specialist,
        since=since,
        until=until,
        outcome=q.outcome,
        campaign=q.campaign,
        min_duration=q.min_seconds,
        max_duration=q.max_seconds,
        reviewed=None if q.reviewed is None else q.reviewed == "yes",
        limit=limit,
        offset=q.offset,
    )


def _query_string(request: web.Request, **changes: object) -> str:
    keep = {k: v for k, v in request.query.items() if v not in ("", None) and k != "lang"}
    keep.update({k: str(v) for k, v in changes.items() if v is not None})
    for k, v in changes.items():
        if v is None:
            keep.pop(k, None)
    return urlencode(keep)


@routes.get("/desk")
async def desk_home(request: web.Request) -> web.Response:
    """The desk's first page: recordings for everyone."""
    principal(request)
    raise web.HTTPSeeOther("/desk/recordings")


@routes.get("/desk/recordings")
@endpoint(query=RecordingsQuery, page=True)
async def recordings_page(request: web.Request, query: RecordingsQuery) -> web.Response:
    """The recordings list with the API's filters; a specialist's own calls only."""
    who = principal(request)
    desk = request.app[DESK]
    page = await desk.recordings_page(who, _filter(request, query))
    offset = query.offset
    return _page(
        request,
        "desk_recordings.html",
        {
            "q": query,
            "items": page["items"],
            "total": page["total"],
            "specialists": await desk.specialists() if who.is_supervisor else [],
            "outcomes": [o.value for o in Outcome],
            "results": await desk.results(i18n.language(request)),
            "campaigns": [k.value for k in LeadKind],
            "tz": ZoneInfo(desk.tz),
            "qs": _query_string(request, offset=None),
            "prev_qs": _query_string(request, offset=max(0, offset - PAGE_SIZE))
            if offset
            else None,
            "next_qs": _query_string(request, offset=offset + PAGE_SIZE)
            if offset + PAGE_SIZE < page["total"]
            else None,
        },
    )


class RecordingPath(PathParams):
    id: Id


@routes.get("/desk/recordings/{id}")
@endpoint(path=RecordingPath, query=RecordingsQuery, page=True)
async def recording_page(
    request: web.Request, path: RecordingPath, query: RecordingsQuery
) -> web.Response:
    """One recording: the player (HTTP Range), the waveform, talk and silence shares, the
    reviews; for supervisors the rubric form (pass/fail, notes, a callback on fail)."""
    who = principal(request)
    desk = request.app[DESK]
    try:
        rec = await desk.recordings.get(who, path.id)
    except ApiError as exc:
        if exc.status != 404:
            raise
        return _page(request, "desk_not_found.html", {}, 404)
    nxt = await desk.next_recording(who, _filter(request, query), path.id)
    names = await desk.names()
    offset = desk.clock.now().astimezone(ZoneInfo(desk.tz)).strftime("%z")
    return _page(
        request,
        "desk_recording.html",
        {
            "r": rec,
            "specialist": names.get(rec["specialist_id"] or 0),
            "results": await desk.results(i18n.language(request)),
            "reviewer_names": names,
            "can_review": who.is_supervisor,
            "tz": ZoneInfo(desk.tz),
            "desk_offset": f"{offset[:3]}:{offset[3:]}",
            "qs": _query_string(request),
            "next_id": nxt,
            "callback_default": desk.next_slot(rec["lead"]["kind"]) if rec["lead"] else "",
        },
    )


# -- running the day: import ----------------------------------------------------------------


@routes.get("/desk/import")
async def import_page(request: web.Request) -> web.Response:
    """Upload a core-system export (CSV or XLSX) and follow its import."""
    who = _supervisor_page(request)
    if isinstance(who, web.Response):
        return who
    jobs = request.app[IMPORTS].jobs
    tr = _gettext(request)
    return _page(
        request,
        "desk_import.html",
        {
            "kinds": [k.value for k in LeadKind],
            "jobs": [j.view(tr, limit=0) for j in sorted(jobs.values(), key=lambda j: -j.id)],
        },
    )


@routes.post("/api/desk/imports")
@endpoint(supervisor=True, page=True)
async def upload(request: web.Request) -> web.Response:
    """Multipart: `kind` (renewal, lapsed, trial, callback) and `file`. The file is checked
    before the import starts (a file that cannot be imported: 400, nothing written)."""
    imports = request.app[IMPORTS]
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError):
        raise ApiError(400, "send the file as multipart/form-data (fields kind and file)") from None
    kind, saved, name = "", None, ""
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue  # a nested multipart is nothing this form sends
        if part.name == "kind":
            kind = (await part.text()).strip()
        elif part.name == "file" and part.filename:
            name = part.filename
            saved = imports.new_path(name)
            await _save(part, saved)
    if kind not in {k.value for k in LeadKind}:
        raise ApiError(400, "choose what the list is for: renewal, lapsed, trial or callback")
    if saved is None:
        raise ApiError(400, "choose a file to import (.xlsx or .csv)")
    try:
        job = await imports.start(saved, name, kind)
    except ImportInputError as exc:
        await asyncio.to_thread(saved.unlink, True)  # nothing of it is kept
        raise ApiError(400, f"{exc}; nothing was imported", code="bad_file") from None
    return json_response(job.view(_gettext(request)), status=202)


async def _save(part: BodyPartReader, path: Path) -> None:
    """The upload to disk in blocks (never whole in memory); a file too large is removed."""
    size = 0
    out = await asyncio.to_thread(path.open, "wb")
    try:
        while chunk := await part.read_chunk(1 << 16):
            size += len(chunk)
            if size > UPLOAD_LIMIT:
                break
            await asyncio.to_thread(out.write, chunk)
    finally:
        await asyncio.to_thread(out.close)
    if size > UPLOAD_LIMIT:
        await asyncio.to_thread(path.unlink, True)
        raise ApiError(413, f"the file is larger than {UPLOAD_LIMIT >> 20} MB; split it")


class ImportPath(PathParams):
    id: Id


def _job(request: web.Request, job_id: int) -> Any:
    require_supervisor(principal(request))
    job = request.app[IMPORTS].jobs.get(job_id)
    if job is None:
        raise ApiError(404, "no such import on this service (imports are kept until a restart)")
    return job


@routes.get("/api/desk/imports/{id}")
@endpoint(path=ImportPath, page=True)
async def import_status(request: web.Request, path: ImportPath) -> web.Response:
    """An import's progress, and when done its report (rows read, imported, updated,
    rejected with row, column and reason)."""
    return json_response(_job(request, path.id).view(_gettext(request)))


@routes.get("/desk/imports/{id}/rejects.xlsx")
@endpoint(path=ImportPath, page=True)
async def rejects(request: web.Request, path: ImportPath) -> web.Response:
    """The rejected rows as a workbook: the original columns plus a reason column."""
    job = _job(request, path.id)
    if not job.errors:
        raise ApiError(404, "this import rejected no rows")
    zh = _gettext(request, "zh_CN")  # the workbook goes back to the core system's people
    data = await asyncio.to_thread(rejected_rows_workbook, job.path, job.errors, zh)
    stem = Path(job.file_name).stem or "import"
    return web.Response(
        body=data,
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={
            "Content-Disposition": "attachment; filename=rejected.xlsx; "
            f"filename*=UTF-8''{quote(stem + '-rejected.xlsx')}",
            "Cache-Control": "no-store",
        },
    )


# -- running the day: distribution, campaigns ----------------------------------------------


@routes.get("/desk/distribution")
async def distribution_page(request: web.Request) -> web.Response:
    """Preview the day's deal, run it (the preview's seed: the same deal), past days' runs."""
    who = _supervisor_page(request)
    if isinstance(who, web.Response):
        return who
    desk = request.app[DESK]
    return _page(
        request,
        "desk_distribution.html",
        {"today": desk.today().isoformat(), "audit": await desk.audit(), "tz": ZoneInfo(desk.tz)},
    )


@routes.get("/desk/campaigns")
async def campaigns_page(request: web.Request) -> web.Response:
    """Each campaign's mode, concurrency, trunk limits, caller ID, message; start and stop."""
    who = _supervisor_page(request)
    if isinstance(who, web.Response):
        return who
    campaigns = await request.app[DESK].dialer.campaign_status()
    return _page(
        request,
        "desk_campaigns.html",
        {
            "campaigns": campaigns,
            "modes": {c["name"]: sorted(modes_for(c["kind"])) for c in campaigns},
            "all_modes": [m.value for m in DialMode],
            "kinds": [k.value for k in CampaignKind],
        },
    )


# -- running the day: specialists and seats ------------------------------------------------


@routes.get("/desk/people")
async def people_page(request: web.Request) -> web.Response:
    """Specialists and seats: add, disable, on leave, reset a password, who is signed in where."""
    who = _supervisor_page(request)
    if isinstance(who, web.Response):
        return who
    return _page(request, "desk_people.html", {"people": await request.app[DESK].people()})


Password = Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[^\x00\r\n]*$")]


class NewPerson(Body):
    name: Name
    seat: SeatDevice
    role: Literal["specialist", "supervisor", "maintainer"] = "specialist"
    username: Name
    password: Password
    branch: Code | None = None


class PersonPath(PathParams):
    id: Id


class PersonState(Body):
    active: bool | None = None
    on_leave: bool | None = None


@routes.post("/api/desk/people")
@endpoint(body=NewPerson, status=201, page=True)
async def add_person(request: web.Request, body: NewPerson) -> dict[str, Any]:
    """A specialist with a seat and a web login, in one step (nothing half-made on a refusal)."""
    view: dict[str, Any] = await _call(
        request.app[DESK].add_person(
            principal(request),
            name=body.name,
            seat=body.seat,
            role=body.role,
            username=body.username,
            password=body.password,
            branch=body.branch,
        )
    )
    return view


@routes.post("/api/desk/people/{id}/state")
@endpoint(path=PersonPath, body=PersonState, page=True)
async def person_state(request: web.Request, path: PersonPath, body: PersonState) -> dict[str, Any]:
    """On leave or back; disable (no sign-ins, tokens revoked, no leads) or enable again."""
    view: dict[str, Any] = await _call(
        request.app[DESK].set_state(
            principal(request), path.id, active=body.active, on_leave=body.on_leave
        )
    )
    return view
