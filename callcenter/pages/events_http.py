"""Live seat updates for the seat page (server-sent events, `/api/seat/events`): `seat` on
every change of one's seat, `pop` when a call connects or a preview is offered."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from callcenter.pages.http import KEEPALIVE_SECONDS, SEAT_HUB, SEAT_PAGES, pop_or_none
from callcenter.pages.live import CLOSE
from callcenter.pages.services import SeatPages
from crm_sync.api import endpoint
from crm_sync.auth import Principal, principal
from dialer.exceptions import DialerError

routes = web.RouteTableDef()


class _SeatStream:
    """One page's stream: every seat change, and the pop once per connected call."""

    def __init__(self, resp: web.StreamResponse, pages: SeatPages, who: Principal) -> None:
        self.resp, self.pages, self.who = resp, pages, who
        self.popped: str | None = None
        # The pop is read from the database while the seat rings, so that the bridge only has
        # to send it: the customer appears the moment the call connects, not a query later.
        self.prepared: dict[str, asyncio.Future[dict[str, Any] | None]] = {}

    async def send(self, event: str, data: object) -> None:
        payload = json.dumps(data, ensure_ascii=False)
        await self.resp.write(f"event: {event}\ndata: {payload}\n\n".encode())

    async def seat_event(self, view: dict[str, Any]) -> None:
        pages, who, prepared = self.pages, self.who, self.prepared
        await self.send("seat", {**view, "server_now": pages.clock.now().isoformat()})
        attempt = view.get("attempt_id")
        if view["state"] == "ringing" and attempt and attempt not in prepared:
            for old in prepared.values():
                old.cancel()
            prepared.clear()
            prepared[attempt] = asyncio.ensure_future(pop_or_none(pages, who))
        connected = view["state"] == "on_call" or (view["state"] == "ready" and attempt)
        if connected and attempt != self.popped:
            early = prepared.pop(attempt, None) if attempt else None
            data = await early if early is not None else await pop_or_none(pages, who)
            if data is not None:
                self.popped = attempt
                await self.send("pop", {**data, "seat": view})

    def close(self) -> None:
        for task in self.prepared.values():
            task.cancel()


@routes.get("/api/seat/events")
@endpoint(page=True)
async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events for one's seat: `seat` on every change, `pop` when a call connects
    or a preview is offered (the screen pop's data, as GET /api/seat/pop)."""
    who = principal(request)
    pages, hub = request.app[SEAT_PAGES], request.app[SEAT_HUB]
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    queue = hub.subscribe(who.user_id)
    stream = _SeatStream(resp, pages, who)
    try:
        # A page reloaded at once may be gone before the headers go out: inside the try.
        await resp.prepare(request)
        with contextlib.suppress(DialerError):
            seat = await pages.dialer.seat(who.user_id)
            await stream.seat_event(seat)
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                await resp.write(b": keepalive\n\n")
                continue
            if item is CLOSE:
                break
            await stream.seat_event(item)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.unsubscribe(who.user_id, queue)
        stream.close()
    return resp
