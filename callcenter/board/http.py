"""The board's routes: the page, its live stream, the supervisors' actions on a call and
their audit log. Thin: who is asking → service → serialise. Supervisors and maintainers
only (a specialist gets 403 everywhere here)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any, Literal, get_args

import jinja2
from aiohttp import web
from pydantic import Field, ValidationError

from callcenter.board.live import CLOSE, BoardHub, sse
from callcenter.board.remedies import Remedies
from callcenter.board.services import ACTIONS, Supervising
from callcenter.pages import i18n
from callcenter.pages.http import CSRF, render
from crm_sync.api import Body, Day, Id, Limit, Name, Offset, PathParams, Query, View, endpoint
from crm_sync.auth import json_response, principal, require_supervisor

log = logging.getLogger(__name__)

BOARD_HUB = web.AppKey("board_hub", BoardHub)
SUPERVISING = web.AppKey("board_supervising", Supervising)
REMEDIES = web.AppKey("board_remedies", Remedies)
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
    return render(
        request, "board.html", {"who": who, "csrf": request.get(CSRF, "")}, envs=BOARD_JINJA
    )


@routes.get("/api/board")
@endpoint(supervisor=True, page=True)
async def board_now(request: web.Request) -> web.Response:
    """The whole board now: seats, calls, links, processes, figures and alerts."""
    return json_response(request.app[BOARD_HUB].snapshot())


@routes.get("/api/board/events")
@endpoint(supervisor=True, page=True)
async def board_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `snapshot` first (and after every reconnect), then `patch` with
    only the rows that changed, `figures` when the figures or alerts change."""
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
                # Not `wait_for`: on Python 3.11 it wraps the get in a task of its own, and
                # each patch then took three turns of the event loop to reach the socket
                # instead of one (what a busy loop makes a board wait for, every patch).
                async with asyncio.timeout(KEEPALIVE_SECONDS):
                    item = await queue.get()
            except TimeoutError:
                await resp.write(b"event: ping\ndata: {}\n\n")
                continue
            # Whatever else queued meanwhile goes in the same write: one send and one wake of
            # the browser for a burst, and a slow reader catches up instead of falling behind.
            items = [item]
            while item is not CLOSE and not queue.empty() and len(items) < 64:
                item = queue.get_nowait()
                items.append(item)
            if item is CLOSE:
                if len(items) > 1:
                    await resp.write(b"".join(items[:-1]))
                break
            await resp.write(b"".join(items))
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
    action: str = Field(
        description="listen, whisper, barge, hangup, move (a call); unpause (a seat); release "
        "(leads past node 3's deadline back to the pool); outbox_retry"
    )
    attempt_id: str = Field(description="the call's attempt id; empty for the other actions")
    specialist_id: int | None = Field(description="whom: the specialist on the call")
    target_seat: str | None = Field(description="the supervisor's seat, or the seat moved to")
    channel: str | None = Field(description="the channel acted on")
    status: str = Field(description="done, failed, pending or running")
    message: str | None
    requested_at: str
    done_at: str | None


AuditAction = Literal[
    "listen", "whisper", "barge", "hangup", "move", "unpause", "release", "outbox_retry"
]


class LogQuery(Query):
    action: AuditAction | None = Field(default=None, description="one kind of action only")
    status: Literal["done", "failed", "pending", "running"] | None = None
    supervisor: Id | None = Field(default=None, description="who: the supervisor's id")
    specialist: Id | None = Field(default=None, description="whom: the specialist's id")
    since: Day | None = Field(default=None, description="from this day (desk time)")
    until: Day | None = Field(default=None, description="to this day, included")
    limit: Limit = 100
    offset: Offset = 0


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


class AuditView(ActionView):
    supervisor_name: str
    specialist_name: str | None


@routes.get("/api/board/actions")
@endpoint(supervisor=True, query=LogQuery, response=list[AuditView], tags=("board",))
async def action_log(request: web.Request, query: LogQuery) -> list[dict[str, Any]]:
    """Supervisor: the audit log (listening in, taking over calls, the alerts' actions),
    newest first, with filters."""
    filters = query.model_dump(exclude={"limit"})
    rows: list[dict[str, Any]] = await request.app[SUPERVISING].log(query.limit, **filters)
    return rows


# -- the alerts' actions (callcenter.board.remedies) ------------------------------------------


class SeatPath(PathParams):
    specialist_id: Id


class Released(View):
    released: int
    handed_out_on: str = Field(description="the distribution day whose leads were released")
    by_specialist: dict[str, int] = Field(description="specialist id -> leads taken back")


class Retried(View):
    due_now: int = Field(description="undelivered messages whose backoff was cut short")


@routes.post("/api/board/seats/{specialist_id}/unpause")
@endpoint(path=SeatPath, response=ActionView, errors=(403, 409), tags=("board",))
async def end_pause(request: web.Request, path: SeatPath) -> dict[str, Any]:
    """Supervisor: end a specialist's pause (the seat becomes ready); audited."""
    result: dict[str, Any] = await request.app[SUPERVISING].end_pause(
        principal(request), path.specialist_id
    )
    return result


@routes.post("/api/board/deadline/release")
@endpoint(supervisor=True, response=Released, tags=("board",))
async def release_missing(request: web.Request) -> dict[str, Any]:
    """Supervisor: the leads handed out on the previous working day still without a contact
    result (node 3) go back to the pool for the next distribution; audited per specialist."""
    who = principal(request)
    return await request.app[REMEDIES].release_missing(who)


@routes.post("/api/board/outbox/retry")
@endpoint(supervisor=True, response=Retried, tags=("board",))
async def retry_outbox(request: web.Request) -> dict[str, Any]:
    """Supervisor: undelivered CRM messages waiting out a backoff are tried now; audited."""
    who = principal(request)
    return await request.app[REMEDIES].retry_outbox(who)


@routes.get("/board/audit")
async def audit_page(request: web.Request) -> web.Response:
    """The audit log page (supervisors), filtered by the query string."""
    who = principal(request)
    require_supervisor(who)
    error = None
    try:
        query = LogQuery.model_validate({k: v for k, v in request.query.items() if v})
    except ValidationError as exc:
        query, error = LogQuery(), "; ".join(str(e["msg"]) for e in exc.errors())
    rows = await request.app[SUPERVISING].log(query.limit, **query.model_dump(exclude={"limit"}))
    context = {
        "who": who,
        "csrf": request.get(CSRF, ""),
        "rows": rows,
        "q": query,
        "error": error,
        "page": "audit",
        "actions": get_args(AuditAction),
    }
    return render(request, "audit.html", context, envs=BOARD_JINJA)
