"""The board's routes: the page, its live stream, the supervisors' actions on a call and
their audit log. Thin: who is asking → service → serialise. Supervisors and maintainers
only (a specialist gets 403 everywhere here)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any, Literal

import aiohttp_jinja2
import jinja2
from aiohttp import web
from pydantic import Field

from callcenter.board.live import CLOSE, BoardHub, sse
from callcenter.board.services import ACTIONS, Supervising
from callcenter.pages import i18n
from callcenter.pages.http import CSRF, SECURITY_HEADERS
from crm_sync.api import Body, Limit, Name, PathParams, Query, View, endpoint
from crm_sync.auth import json_response, principal, require_supervisor

log = logging.getLogger(__name__)

BOARD_HUB = web.AppKey("board_hub", BoardHub)
SUPERVISING = web.AppKey("board_supervising", Supervising)
BOARD_JINJA = {
    lang: web.AppKey(f"board_jinja_{lang}", jinja2.Environment) for lang in i18n.LANGUAGES
}
KEEPALIVE_SECONDS = 15.0

routes = web.RouteTableDef()
routes.static("/board/static", Path(__file__).with_name("static"))


@routes.get("/board")
async def board_page(request: web.Request) -> web.Response:
    """The live wallboard (supervisors)."""
    who = principal(request)
    require_supervisor(who)
    lang = i18n.language(request)
    resp = aiohttp_jinja2.render_template(
        "board.html",
        request,
        {"who": who, "csrf": request.get(CSRF, ""), "lang": lang},
        app_key=BOARD_JINJA[lang],
    )
    if request.query.get("lang") in i18n.LANGUAGES:
        resp.set_cookie(i18n.LANG_COOKIE, lang, max_age=365 * 86400, samesite="Lax", path="/")
    resp.headers.update(SECURITY_HEADERS)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@routes.get("/api/board")
@endpoint(page=True)
async def board_now(request: web.Request) -> web.Response:
    """The whole board now: seats, calls, links, processes, figures and alerts."""
    require_supervisor(principal(request))
    return json_response(request.app[BOARD_HUB].snapshot())


@routes.get("/api/board/events")
@endpoint(page=True)
async def board_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `snapshot` first (and after every reconnect), then `patch` with
    only the rows that changed, `figures` when the figures or alerts change."""
    require_supervisor(principal(request))
    hub = request.app[BOARD_HUB]
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    queue = hub.subscribe()
    try:
        # A board reloaded at once may be gone before the headers go out: inside the try.
        await resp.prepare(request)
        # The browser reconnects by itself (EventSource) after 2 s if the stream drops.
        await resp.write(b"retry: 2000\n\n" + sse("snapshot", hub.snapshot()))
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                await resp.write(b"event: ping\ndata: {}\n\n")
                continue
            if item is CLOSE:
                break
            await resp.write(item)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.unsubscribe(queue)
    if resp.prepared:
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
    return resp


class CallPath(PathParams):
    attempt_id: Name = Field(description="the live call's attempt id (att-…)")
    action: Literal["listen", "whisper", "barge", "hangup", "move"] = Field(
        description="listen / whisper (the specialist hears you, the customer does not) / "
        "barge (both hear you) ring your own seat; hangup ends the call; move hands the "
        "customer to another seat"
    )


class CallAction(Body):
    to: Name | None = Field(
        default=None, description="move only: the specialist id or seat (PJSIP/8002) to move to"
    )


class ActionView(View):
    id: int
    supervisor_id: int
    action: str
    attempt_id: str
    specialist_id: int | None = Field(description="whom: the specialist on the call")
    target_seat: str | None = Field(description="the supervisor's seat, or the seat moved to")
    channel: str | None = Field(description="the channel acted on")
    status: str = Field(description="done, failed, pending or running")
    message: str | None
    requested_at: str
    done_at: str | None


class LogQuery(Query):
    limit: Limit = 100


assert set(ACTIONS) == {"listen", "whisper", "barge", "hangup", "move"}


@routes.post("/api/board/calls/{attempt_id}/{action}")
@endpoint(
    path=CallPath,
    body=CallAction,
    body_required=False,
    response=ActionView,
    errors=(403, 404, 409),
    tags=("board",),
)
async def call_action(request: web.Request, path: CallPath, body: CallAction) -> dict[str, Any]:
    """Supervisor: listen, whisper or barge on a live call (your seat rings, then hears the
    call), hang it up, or move it to another seat. Each use is written to the audit log."""
    result: dict[str, Any] = await request.app[SUPERVISING].act(
        principal(request), path.attempt_id, path.action, body.to
    )
    return result


@routes.get("/api/board/actions")
@endpoint(query=LogQuery, response=list[ActionView], errors=(403,), tags=("board",))
async def action_log(request: web.Request, query: LogQuery) -> list[dict[str, Any]]:
    """Supervisor: the audit log of listening in and taking over calls, newest first."""
    require_supervisor(principal(request))
    rows: list[dict[str, Any]] = await request.app[SUPERVISING].log(query.limit)
    return rows
