"""The seat and supervisor API of the dialer. Thin: validate → service → serialise.

A specialist acts on their own seat (the token says who they are); supervisors see every
seat, the live calls and the campaigns. Errors are JSON with a reason (see callcenter.web).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp import web

from common.principal import Principal
from common.web import ApiError, json_response, principal, require_supervisor
from dialer.services import DialerService

DIALER = web.AppKey("dialer", DialerService)
routes = web.RouteTableDef()


def _svc(request: web.Request) -> DialerService:
    return request.app[DIALER]


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def _aware(value: object, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(
            400, f"{name} must be an ISO 8601 time with a zone, e.g. 2026-12-01T10:00+08:00"
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"{name} is not an ISO 8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise ApiError(400, f"{name} needs a time zone offset, e.g. {value}+08:00")
    return parsed


def _me(request: web.Request) -> Principal:
    return principal(request)


@routes.post("/api/seat/sign-in")
async def sign_in(request: web.Request) -> web.Response:
    """Sign in to a seat (default: the specialist's configured device); paused unless ready."""
    body = await _body(request)
    seat = body.get("seat")
    if seat is not None and not isinstance(seat, str):
        raise ApiError(400, "seat must be a device name such as PJSIP/8001")
    return json_response(
        await _svc(request).sign_in(_me(request).user_id, seat, bool(body.get("ready")))
    )


@routes.post("/api/seat/sign-out")
async def sign_out(request: web.Request) -> web.Response:
    """Sign out of the seat."""
    return json_response(await _svc(request).sign_out(_me(request).user_id))


@routes.post("/api/seat/ready")
async def ready(request: web.Request) -> web.Response:
    """Ready for the next call."""
    return json_response(await _svc(request).ready(_me(request).user_id))


@routes.post("/api/seat/pause")
async def pause(request: web.Request) -> web.Response:
    """Pause with a reason (break, training, …)."""
    reason = (await _body(request)).get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ApiError(400, 'a pause needs a reason, e.g. {"reason": "break"}')
    return json_response(await _svc(request).pause(_me(request).user_id, reason.strip()))


@routes.get("/api/seat")
async def my_seat(request: web.Request) -> web.Response:
    """The caller's seat: state, since, pause reason, current attempt."""
    return json_response(await _svc(request).seat(_me(request).user_id))


@routes.get("/api/seat/call")
async def current_call(request: web.Request) -> web.Response:
    """The screen pop: the current (or just finished) call with its customer and policy."""
    call = await _svc(request).current_call(_me(request).user_id)
    if call is None:
        raise ApiError(404, "no call on this seat right now")
    return json_response(call)


@routes.post("/api/seat/preview/confirm")
async def confirm_preview(request: web.Request) -> web.Response:
    """Preview mode: dial the offered lead."""
    return json_response(await _svc(request).confirm_preview(_me(request).user_id))


@routes.post("/api/seat/preview/skip")
async def skip_preview(request: web.Request) -> web.Response:
    """Preview mode: skip the offered lead."""
    return json_response(await _svc(request).skip_preview(_me(request).user_id))


@routes.post("/api/leads/{lead_id}/disposition")
async def dispose(request: web.Request) -> web.Response:
    """Set the contact result of one's own lead, optionally with a callback appointment.

    Body: {"result": "interested" | "callback" | "renewed" | …, "callback_at": ISO time
    with zone (optional), "note": text (optional)}. A callback without a time is booked
    into the next calling window; a time outside the windows moves to the next window.
    """
    try:
        lead_id = int(request.match_info["lead_id"])
    except ValueError:
        raise ApiError(400, "lead id must be a number") from None
    body = await _body(request)
    result = body.get("result")
    if not isinstance(result, str):
        raise ApiError(400, "result is required: one of the standard contact results")
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise ApiError(400, "note must be text")
    callback_at = _aware(body.get("callback_at"), "callback_at")
    return json_response(
        await _svc(request).dispose(lead_id, _me(request).user_id, result, callback_at, note)
    )


@routes.get("/api/seats")
async def seats(request: web.Request) -> web.Response:
    """Supervisor: every signed-in seat."""
    require_supervisor(_me(request))
    return json_response(await _svc(request).seats())


@routes.get("/api/calls")
async def live_calls(request: web.Request) -> web.Response:
    """Supervisor: the calls in flight on this process."""
    require_supervisor(_me(request))
    return json_response(_svc(request).live_calls())


@routes.get("/api/health")
async def health(request: web.Request) -> web.Response:
    """Any signed-in role: the AMI links and what their manager.conf users lack.

    `{"ok": bool, "ami": [{"server", "connected", "warnings": [text naming the fix]}]}`."""
    _me(request)  # the middleware has checked the token; any role may look
    return json_response(_svc(request).health())


@routes.post("/api/calls/{attempt_id}/hangup")
async def hang_up(request: web.Request) -> web.Response:
    """Supervisor: end a call in flight on this process (outcome `hung_up_by_action`)."""
    require_supervisor(_me(request))
    attempt_id = request.match_info["attempt_id"]
    result = await _svc(request).hang_up(attempt_id)
    if not result["hung_up"]:
        raise ApiError(
            409,
            f"call {attempt_id} has no channel up on this process (not dialled yet, already "
            "over, or placed by another process): nothing was hung up; see GET /api/calls",
        )
    return json_response(result)


@routes.get("/api/campaigns")
async def campaigns(request: web.Request) -> web.Response:
    """Supervisor: campaigns with their state and calls in flight."""
    require_supervisor(_me(request))
    return json_response(await _svc(request).campaign_status())


@routes.post("/api/campaigns/{name}/start")
async def start_campaign(request: web.Request) -> web.Response:
    """Supervisor: start a campaign."""
    require_supervisor(_me(request))
    return json_response(await _svc(request).start_campaign(request.match_info["name"]))


@routes.post("/api/campaigns/{name}/stop")
async def stop_campaign(request: web.Request) -> web.Response:
    """Supervisor: stop a campaign (calls in flight finish)."""
    require_supervisor(_me(request))
    return json_response(await _svc(request).stop_campaign(request.match_info["name"]))


@routes.patch("/api/campaigns/{name}")
async def update_campaign(request: web.Request) -> web.Response:
    """Supervisor: change mode, concurrency, trunk limits, caller id or message."""
    require_supervisor(_me(request))
    body = await _body(request)
    return json_response(await _svc(request).update_campaign(request.match_info["name"], **body))


@routes.post("/api/do-not-call")
async def add_dnc(request: web.Request) -> web.Response:
    """Supervisor: put a number on the do-not-call list, written in any form the import
    accepts (+86 138-0013-8000, 138 0013 8000, …); the answer gives the E.164 form stored."""
    require_supervisor(_me(request))
    body = await _body(request)
    number = body.get("number")
    if not isinstance(number, str):
        raise ApiError(400, "number is required, e.g. +8613800138000")
    reason = body.get("reason")
    stored = await _svc(request).add_do_not_call(
        number, reason if isinstance(reason, str) else None
    )
    return json_response({"number": stored, "do_not_call": True}, status=201)


@routes.delete("/api/do-not-call/{number}")
async def remove_dnc(request: web.Request) -> web.Response:
    """Supervisor: take a number off the do-not-call list."""
    require_supervisor(_me(request))
    removed = await _svc(request).remove_do_not_call(request.match_info["number"])
    return json_response({"number": removed, "do_not_call": False})
