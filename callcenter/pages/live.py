"""Live updates for the seat page: the dialer engine tells the hub of every seat change, the
hub hands it to the browsers of that specialist (server-sent events, see http.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dialer.seats import Seat
from dialer.services import seat_view

log = logging.getLogger(__name__)

CLOSE: dict[str, Any] = {"close": True}
QUEUE_LIMIT = 100  # a browser this far behind is dropped; it reconnects and reloads its state


class SeatHub:
    def __init__(self) -> None:
        self._subscribers: dict[int, set[asyncio.Queue[dict[str, Any]]]] = {}

    def subscribe(self, specialist_id: int) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._subscribers.setdefault(specialist_id, set()).add(q)
        return q

    def unsubscribe(self, specialist_id: int, q: asyncio.Queue[dict[str, Any]]) -> None:
        subs = self._subscribers.get(specialist_id)
        if subs is not None:
            subs.discard(q)
            if not subs:
                del self._subscribers[specialist_id]

    def watching(self, specialist_id: int) -> int:
        """How many of the specialist's pages have their event stream open."""
        return len(self._subscribers.get(specialist_id, ()))

    def seat_changed(self, seat: Seat) -> None:
        """The engine's seat listener: a snapshot of the seat to each open page."""
        subs = self._subscribers.get(seat.specialist_id)
        if not subs:
            return
        view = seat_view(seat)
        for q in list(subs):
            try:
                q.put_nowait(view)
            except asyncio.QueueFull:
                log.warning("seat page of specialist %s too slow: dropped", seat.specialist_id)
                subs.discard(q)

    def close_all(self) -> None:
        """At shutdown: every open stream ends, so the server need not wait for them."""
        for subs in self._subscribers.values():
            for q in subs:
                while True:
                    try:
                        q.put_nowait(CLOSE)
                        break
                    except asyncio.QueueFull:
                        q.get_nowait()
