"""HTTP of the CRM link: the outbox numbers for supervisors (`GET /api/outbox`, one message
with its tries at `GET /api/outbox/{id}`) and the CRM's signed inbound changes
(`POST /api/crm/changes`). Thin handlers: validate → service → serialise."""

from __future__ import annotations

import json
from datetime import date
from zoneinfo import ZoneInfo

from aiohttp import web

from crm_sync import changes, signing
from crm_sync import outbox as ops
from crm_sync.api import Id, PathParams, endpoint
from crm_sync.auth import ApiError, json_response, principal, require_supervisor
from crm_sync.config import CrmSettings
from crm_sync.exceptions import NotFound
from crm_sync.http import CRM_SESSIONS
from schedules.clock import Clock

CRM_LINK_SETTINGS = web.AppKey("crm_link_settings", CrmSettings)
CRM_LINK_CLOCK = web.AppKey("crm_link_clock", Clock)
CRM_LINK_TIMEZONE = web.AppKey("crm_link_timezone", str)
routes = web.RouteTableDef()
MAX_LIST = 500


class OutboxPath(PathParams):
    id: Id


@routes.get("/api/outbox")
@endpoint(errors=(403,), tags=("outbox",))
async def outbox_status(request: web.Request) -> web.Response:
    """Counts by topic and state, the oldest undelivered message's age, and (with `state`,
    `topic` or `key`) the matching messages. Supervisors only."""
    require_supervisor(principal(request))
    q = request.query
    try:
        limit = min(int(q.get("limit", "50")), MAX_LIST)
    except ValueError:
        raise ApiError(400, "limit must be a whole number") from None
    clock = request.app[CRM_LINK_CLOCK]
    settings = request.app[CRM_LINK_SETTINGS]
    async with request.app[CRM_SESSIONS]() as s:
        st = await ops.status(s, clock.now())
        body = st.as_dict() | {"alarm": ops.alarm_text(st, settings.alarm_age)}
        if {"state", "topic", "key"} & q.keys():
            try:
                rows = await ops.list_messages(
                    s, state=q.get("state"), topic=q.get("topic"), key=q.get("key"), limit=limit
                )
            except ValueError as exc:
                raise ApiError(400, str(exc)) from None
            body["messages"] = [ops.message_view(m) for m in rows]
    return json_response(body)


@routes.get("/api/outbox/{id:\\d+}")
@endpoint(path=OutboxPath, errors=(403, 404), tags=("outbox",))
async def outbox_message(request: web.Request, path: OutboxPath) -> web.Response:
    """One message with its history of tries. Supervisors only."""
    require_supervisor(principal(request))
    async with request.app[CRM_SESSIONS]() as s:
        try:
            m = await ops.get(s, path.id)
        except NotFound as exc:
            raise ApiError(404, str(exc)) from None
        return json_response(ops.message_view(m))


@routes.post("/api/crm/changes")
@endpoint(errors=(403,), tags=("outbox",))
async def crm_changes(request: web.Request) -> web.Response:
    """The CRM's changes: a maintainer's or supervisor's token AND the body signed with a
    `crm.inbound_secrets` secret (`Callcenter-Signature`, as the webhook), within
    `crm.inbound_tolerance` of now. One change, a list, or `{"changes": [...]}`."""
    require_supervisor(principal(request))
    settings = request.app[CRM_LINK_SETTINGS]
    clock = request.app[CRM_LINK_CLOCK]
    body = await request.read()
    try:
        signing.verify(
            request.headers.get(signing.HEADER),
            body,
            settings.inbound_secrets,
            clock.now().timestamp(),
            settings.inbound_tolerance,
        )
    except signing.SignatureError as exc:
        raise ApiError(401, f"signature refused: {exc}") from None
    try:
        parsed = changes.parse_changes(json.loads(body))
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not JSON: {exc}") from None
    except changes.ChangeError as exc:
        raise ApiError(400, str(exc)) from None
    results = await changes.apply_changes(
        request.app[CRM_SESSIONS], parsed, clock.now(), "http", today=_today(request)
    )
    return json_response({"results": [r.as_dict() for r in results]})


def _today(request: web.Request) -> date:
    clock = request.app[CRM_LINK_CLOCK]
    return clock.now().astimezone(ZoneInfo(request.app[CRM_LINK_TIMEZONE])).date()
