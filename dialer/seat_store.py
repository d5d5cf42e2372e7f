"""Seat persistence: the seat store unit.

It subscribes to `SeatChanged`, `OriginateSent` and `RecordingNamed` on the bus and writes
them in the background, batched: seat states (`seat_sessions`), every transition with its
attempt id (`seat_transitions`), the attempts' "sent" marks and recording file names. One
statement of each kind per flush, however many seats changed; what fails stays queued for the
next flush. Nothing here decides anything: the seat state machine (`dialer.seats`) does.

Writes are coalesced: at most one flush every `interval` seconds of the clock, so that a busy
desk (20 seats, a few changes each per call) makes a few transactions a second instead of one
per change; a seat's state reaches the database at most that much later, and a seat changed
several times in between is written once, as it is now. Closing cuts the wait short: what is
pending is written at the stop. A specialist's own action (sign-in, pause...) still flushes
at once (`flush`, from `dialer.seat_commands`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, case, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.clock import Clock
from dialer import locks
from dialer.domain import OriginateSent, RecordingNamed, SeatChanged
from dialer.messagebus import MessageBus
from dialer.models import AttemptState, CallAttempt, SeatSession, SeatTransition
from dialer.seats import Seat, SeatState, Transition
from dialer.tasks import nap

log = logging.getLogger(__name__)

_ATTEMPTS: Table = CallAttempt.__table__  # type: ignore[assignment]
_SEAT_SESSIONS: Table = SeatSession.__table__  # type: ignore[assignment]

WriteGuard = Callable[[int], AbstractAsyncContextManager[None]]


class SeatStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        bus: MessageBus,
        seats: Callable[[int], Seat | None],
        guard: WriteGuard,
        interval: float = 0.0,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.interval = interval
        self._seats = seats
        self._guard = guard
        self._next_at = float("-inf")  # the clock's monotonic time the next flush may start
        self._dirty: dict[int, list[Transition]] = {}
        self._sent: list[tuple[str, datetime]] = []
        self._files: list[tuple[str, str]] = []
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._lock = asyncio.Lock()
        bus.subscribe(SeatChanged, self._on_seat)
        bus.subscribe(OriginateSent, self._on_sent)
        bus.subscribe(RecordingNamed, self._on_recording)

    def _on_seat(self, e: SeatChanged) -> None:
        self._dirty.setdefault(e.specialist_id, []).append(e.transition)
        self._wake.set()

    def _on_sent(self, e: OriginateSent) -> None:
        self._sent.append((e.attempt_id, e.at))
        self._wake.set()

    def _on_recording(self, e: RecordingNamed) -> None:
        self._files.append((e.attempt_id, e.file_name))
        self._wake.set()

    def close(self) -> None:
        """The writer flushes what is queued (without waiting out the interval) and returns."""
        self._closed.set()
        self._wake.set()

    def reopen(self) -> None:
        self._closed.clear()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            wait = self._next_at - self.clock.monotonic()
            if wait > 0 and not self._closed.is_set():
                # What changes meanwhile joins this flush.
                await nap(self.clock, wait, self._closed)
            self._wake.clear()
            if self._closed.is_set():
                await self.flush()
                return
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not store seat states; will retry")
                await self.clock.sleep(1.0)
                self._wake.set()

    def _pending(self) -> bool:
        return bool(self._dirty or self._sent or self._files)

    async def flush(self) -> None:
        if not self._pending():
            return  # nothing to write: no turn at SQLite's writer lock either
        # The writer first, then what to write: what piles up while waiting goes in too.
        async with self._lock, self._guard(locks.BOOKKEEPING):
            dirty, self._dirty = self._dirty, {}
            marks, self._sent = self._sent, []
            files, self._files = self._files, []
            if not dirty and not marks and not files:
                return
            self._next_at = self.clock.monotonic() + self.interval
            try:
                await self._write(dirty, marks, files)
            except BaseException:
                for sid, ts in dirty.items():  # keep them for the next flush
                    self._dirty[sid] = ts + self._dirty.get(sid, [])
                self._sent[:0] = marks
                self._files[:0] = files
                raise

    async def _write(
        self,
        dirty: dict[int, list[Transition]],
        marks: list[tuple[str, datetime]],
        files: list[tuple[str, str]],
    ) -> None:
        """Seat states, their transitions, "sent" marks and recording file names: one
        statement of each kind (executemany), however many seats changed."""
        rows, gone, states = self._rows(dirty)
        async with self.sessions() as s:
            await _write_marks(s, marks, files)
            if gone:
                await s.execute(delete(SeatSession).where(SeatSession.specialist_id.in_(gone)))
            if states:
                await _write_states(s, states)
            if rows:
                await s.execute(insert(SeatTransition), rows)
            await s.commit()

    def _rows(
        self, dirty: dict[int, list[Transition]]
    ) -> tuple[list[dict[str, Any]], list[int], dict[int, dict[str, Any]]]:
        """The transition rows, the seats signed out, and the states of the others."""
        rows: list[dict[str, Any]] = []
        gone: list[int] = []
        states: dict[int, dict[str, Any]] = {}
        for sid, transitions in dirty.items():
            seat = self._seats(sid)
            if seat is None:
                continue
            rows += [
                {
                    "specialist_id": sid,
                    "seat": t.seat,
                    "from_state": t.from_state.value,
                    "to_state": t.to_state.value,
                    "trigger": t.trigger,
                    "reason": t.reason,
                    "attempt_id": t.attempt_id,
                    "at": t.at,
                }
                for t in transitions
            ]
            if seat.state is SeatState.OFFLINE:
                gone.append(sid)
                continue
            states[sid] = {
                "seat": seat.device,
                "state": seat.state.value,
                "pause_reason": seat.pause_reason,
                "attempt_id": seat.attempt_id,
                "since": seat.since or self.clock.now(),
            }
        return rows, gone, states


async def _write_marks(
    s: AsyncSession, marks: list[tuple[str, datetime]], files: list[tuple[str, str]]
) -> None:
    if files:
        await s.execute(
            update(_ATTEMPTS)
            .where(
                _ATTEMPTS.c.attempt_id == bindparam("file_id"),
                _ATTEMPTS.c.recording_file.is_(None),
            )
            .values(recording_file=bindparam("file_")),
            [{"file_id": attempt_id, "file_": name} for attempt_id, name in files],
        )
    if marks:
        await s.execute(
            update(_ATTEMPTS)
            .where(_ATTEMPTS.c.attempt_id == bindparam("sent_id"))
            .values(
                sent_at=func.coalesce(
                    _ATTEMPTS.c.sent_at,
                    bindparam("sent_at_", type_=_ATTEMPTS.c.sent_at.type),
                ),
                state=case(
                    (_ATTEMPTS.c.state == AttemptState.DIALING.value, AttemptState.SENT.value),
                    else_=_ATTEMPTS.c.state,
                ),
            ),
            [{"sent_id": attempt_id, "sent_at_": at} for attempt_id, at in marks],
        )


async def _write_states(s: AsyncSession, states: dict[int, dict[str, Any]]) -> None:
    have = set(
        await s.scalars(
            select(SeatSession.specialist_id).where(SeatSession.specialist_id.in_(list(states)))
        )
    )
    known = [{"sid": sid, **v} for sid, v in states.items() if sid in have]
    if known:
        await s.execute(
            update(_SEAT_SESSIONS).where(_SEAT_SESSIONS.c.specialist_id == bindparam("sid")),
            known,
        )
    new = [{"specialist_id": sid, **v} for sid, v in states.items() if sid not in have]
    if new:
        # A seat device signed in anew: whoever held it before is gone.
        await s.execute(delete(SeatSession).where(SeatSession.seat.in_([v["seat"] for v in new])))
        await s.execute(insert(SeatSession), new)


__all__ = ["SeatStore", "WriteGuard"]
