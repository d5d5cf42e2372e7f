"""The result writer unit: every finished attempt's result goes into the database in one
transaction (attempt, lead, phone, outbox: `dialer.results.record_result`), then
`AttemptSettled` tells the other units (trunk slot, campaign count, seat) and the
`on_attempt_ended` hook (recordings) is called.

Finished calls are queued (`SettleResults` via call events, `queue`) and written by
`result_writers` tasks in batches; `FinishAttempt` writes one at once (a release, a skip, a
reconciliation)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.dberrors import is_disconnect
from dialer import locks
from dialer.domain import AttemptSettled, FinishAttempt
from dialer.models import CallAttempt
from dialer.outcomes import NOT_SENT, SKIPPED
from dialer.results import Effects, Finished, record_result
from dialer.runtime import DialerRuntime
from dialer.state import AttemptEnded, AttemptEndedHook, LiveCall
from schedules.retry import RetryConfig
from schedules.windows import CallingHours

log = logging.getLogger(__name__)

Item = tuple[LiveCall, Finished]


class ResultWriter:
    def __init__(
        self,
        rt: DialerRuntime,
        retry: RetryConfig,
        hours_for: Callable[[str], CallingHours],
        hook: Callable[[], AttemptEndedHook | None],
    ) -> None:
        self.rt = rt
        self.retry = retry
        self._hours_for = hours_for
        self._hook = hook  # read at each call: the composition root may set it late
        self.queue: asyncio.Queue[Item | None] = asyncio.Queue()
        self.writing = 0
        rt.bus.register(FinishAttempt, self._on_finish)

    def _on_finish(self, cmd: FinishAttempt) -> Any:
        return self.finish(cmd.live, cmd.finished)

    def put(self, live: LiveCall, fin: Finished) -> None:
        self.queue.put_nowait((live, fin))

    def close(self) -> None:
        """Each writer finishes what is queued before this and returns."""
        for _ in range(self.rt.config.result_writers):
            self.queue.put_nowait(None)

    async def run(self) -> None:
        """Writes results in batches: one transaction for whatever is queued (up to
        `result_batch`), falling back to one transaction per result if the batch fails."""
        while True:
            first = await self.queue.get()
            if first is None:  # stop: everything queued before it is written
                return
            batch = [first]
            while len(batch) < self.rt.config.result_batch and not self.queue.empty():
                item = self.queue.get_nowait()
                if item is None:
                    self.queue.put_nowait(None)
                    break
                batch.append(item)
            self.writing += 1
            try:
                await self._finish_many(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning(
                    "a batch of %d results failed; writing them one by one",
                    len(batch),
                    exc_info=True,
                )
                await self._one_by_one(batch)
            finally:
                self.writing -= 1

    async def _one_by_one(self, batch: Sequence[Item]) -> None:
        for live, fin in batch:
            await self._finish_when_possible(live, fin)

    async def _finish_when_possible(self, live: LiveCall, fin: Finished) -> None:
        """Write one result; while the database is unreachable (restarting, cut), keep it
        and try again with a backoff instead of dropping it: the call's real outcome is
        known only here, and a dropped one left the attempt in flight, its lead blocked."""
        delay = self.rt.config.database_retry_seconds
        while True:
            try:
                await self.finish(live, fin)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_disconnect(exc):
                    log.exception(
                        "attempt %s: could not record the result; it stays in flight "
                        "for reconciliation",
                        live.attempt_id,
                    )
                    return
                self.rt.stats["result_retries"] += 1
                log.warning(
                    "attempt %s: database unreachable (%s); result kept, writing it again in %.0fs",
                    live.attempt_id,
                    exc,
                    delay,
                )
            await self.rt.clock.sleep(delay)
            delay = min(delay * 2, self.rt.config.database_retry_max_seconds)

    async def _apply(
        self, s: AsyncSession, live: LiveCall, fin: Finished, now: datetime
    ) -> Effects | None:
        q = select(CallAttempt).where(CallAttempt.attempt_id == live.attempt_id)
        if self.rt.pg:
            q = q.with_for_update()
        attempt = (await s.scalars(q)).one_or_none()
        if attempt is None or attempt.ended_at is not None:
            return None
        return await record_result(
            s, attempt, fin, now=now, hours_for=self._hours_for, retry=self.retry
        )

    async def _finish_many(self, batch: Sequence[Item]) -> None:
        now = self.rt.clock.now()
        done: list[tuple[LiveCall, Finished, Effects | None]] = []
        async with self.rt.write_guard(locks.RESULTS), self.rt.sessions() as s:
            for live, fin in batch:
                done.append((live, fin, await self._apply(s, live, fin, now)))
            await s.commit()
        for live, fin, eff in done:
            await self._after(live, fin, eff, now)

    async def finish(self, live: LiveCall, fin: Finished) -> Effects | None:
        now = self.rt.clock.now()
        eff: Effects | None = None
        for attempt_no in range(3):
            try:
                async with self.rt.write_guard(locks.RESULTS), self.rt.sessions() as s:
                    eff = await self._apply(s, live, fin, now)
                    await s.commit()
                break
            except IntegrityError:
                if attempt_no == 2:
                    raise
        await self._after(live, fin, eff, now)
        return eff

    async def _after(
        self, live: LiveCall, fin: Finished, eff: Effects | None, now: datetime
    ) -> None:
        """What follows a committed result: the other units hear of it, then the hook."""
        self.rt.live.pop(live.attempt_id, None)
        if eff is not None:
            self.rt.stats[f"outcome:{fin.outcome}"] += 1
            self.rt.stats["results"] += 1
        self.rt.bus.publish(AttemptSettled(live, fin, eff, now))
        hook = self._hook()
        if eff is None or hook is None or fin.outcome in (NOT_SENT, SKIPPED):
            return
        try:
            await hook(
                AttemptEnded(
                    live.attempt_id,
                    live.lead_id,
                    live.specialist_id,
                    live.seat,
                    fin.outcome,
                    now,
                    fin.talk_seconds,
                    fin.recording,
                    live.server,
                )
            )
        except Exception:
            log.exception("attempt %s: on_attempt_ended hook failed", live.attempt_id)


__all__ = ["ResultWriter"]
