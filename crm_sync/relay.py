"""The outbox relay: delivers every `outbox` row to the configured sink, at least once, in
order per key.

Each round is three steps:

1. **Claim** (one short transaction). Only the *head* of a key (its oldest pending message)
   is ever claimed, and only when it is due (`next_try_at`) and not leased by a live relay.
   On PostgreSQL the heads are locked `FOR UPDATE SKIP LOCKED`, so relays in several
   processes never claim the same key at once; each claimed key's next messages (up to
   `key_batch`) come along, and all of them get this relay's lease. While a head is leased
   nobody else claims the key, so a lead's messages never overtake each other.
2. **Deliver**, outside any transaction: keys in parallel (`concurrency`), a key's messages
   one after another. A message that must be retried stops its key for this round (the
   messages behind it wait); a parked message (a dead letter) does not block its key.
3. **Record** the verdicts (one transaction): delivered, retry at `now + backoff` (the
   receiver's `Retry-After` if longer), parked with the receiver's answer; leases released.
   What becomes of each message is decided by `crm_sync.relay_verdicts.plan_round` (pure).

A relay that dies between 2 and 3 loses nothing: its leases run out and another relay (or
the same after a restart) delivers those messages again. That is the "at least once": the
outbox id travels as `Idempotency-Key`, so the receiver drops what it has already seen.

The relay sleeps on its clock when there is nothing to do: until the earliest retry is due,
or until woken: PostgreSQL's `NOTIFY callcenter_outbox` (a trigger on `outbox`, fired at
commit) wakes it at once; SQLite has no notifications and is polled every `poll` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import Row, Select, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from common.pglisten import PgListener
from crm_sync.models import OutboxMessage, OutboxState
from crm_sync.relay_verdicts import (
    Claimed,
    MessageUpdate,
    Retrying,
    RoundReport,
    plan_round,
)
from crm_sync.sinks import Outgoing, Sink, Verdict, VerdictKind
from schedules.clock import Clock

log = logging.getLogger(__name__)

CHANNEL = "callcenter_outbox"
PENDING = OutboxState.PENDING.value
_o = OutboxMessage
_COLUMNS = (_o.id, _o.topic, _o.key, _o.payload, _o.created_at, _o.attempts, _o.history)


@dataclass(frozen=True, slots=True)
class RelayOptions:
    batch: int = 500
    key_batch: int = 20
    concurrency: int = 32
    lease: float = 60.0
    poll: float = 0.5
    idle_poll: float = 30.0  # PostgreSQL's safety net behind NOTIFY
    # Rounds in flight at once on PostgreSQL (one claims while another delivers); SQLite: 1,
    # its claims are not SKIP LOCKED.
    workers: int = 2
    retry_base: float = 1.0
    retry_max: float = 900.0


def relay_name() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        sink: Sink,
        options: RelayOptions | None = None,
        *,
        name: str | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self.sink = sink
        self.options = options or RelayOptions()
        self.name = name or relay_name()
        self._rand = rand
        self._pg = engine.dialect.name == "postgresql"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener = PgListener(engine, "outbox relay")
        self._listener.listen(CHANNEL, lambda _payload: self._wake.set())
        # Set once by stop() and never cleared: the workers share and clear `_wake`, so a
        # worker still in its idle query when stop() came could otherwise wait out its poll.
        self._stopped = asyncio.Event()

    # -- one round -------------------------------------------------------------------------

    @cached_property
    def _heads(self) -> Select[Any]:
        """The due heads: each key's oldest pending message, if due and not leased; run with
        `now`. Built once per relay: every round runs it, and building it cost a relay that
        polls an empty outbox more than running it."""
        o = OutboxMessage
        earlier = aliased(OutboxMessage)
        now = bindparam("now", type_=o.next_try_at.type)
        heads = (
            select(*_COLUMNS)
            .where(
                o.state == PENDING,
                o.delivered_at.is_(None),
                or_(o.next_try_at.is_(None), o.next_try_at <= now),
                or_(o.lease_until.is_(None), o.lease_until < now),
                ~exists().where(earlier.key == o.key, earlier.state == PENDING, earlier.id < o.id),
            )
            .order_by(o.id)
            .limit(self.options.batch)
        )
        return heads.with_for_update(skip_locked=True, of=o) if self._pg else heads

    async def _followers(self, s: AsyncSession, heads: Sequence[Row[Any]]) -> list[Row[Any]]:
        """The messages behind the heads, a fair share per key of the room left in the batch
        (a lead with a backlog drains key_batch at a time). Nobody else claims them: only
        heads are ever claimed, and these heads are ours now."""
        room = self.options.batch - len(heads)
        if room <= 0 or self.options.key_batch <= 1:
            return []
        o = OutboxMessage
        per_key = min(self.options.key_batch - 1, max(1, room // len(heads)))
        rn = func.row_number().over(partition_by=o.key, order_by=o.id).label("rn")
        ranked = (
            select(o.id, rn)
            .where(
                o.state == PENDING,
                o.key.in_([r.key for r in heads]),
                o.id.not_in([r.id for r in heads]),
            )
            .subquery()
        )
        query = (
            select(*_COLUMNS)
            .join(ranked, ranked.c.id == o.id)
            .where(ranked.c.rn <= per_key)
            .order_by(ranked.c.rn, o.id)
            .limit(room)
        )
        return list((await s.execute(query)).all())

    async def claim(self, now: datetime) -> list[list[Claimed]]:
        """Lease the due heads (and the messages behind them): one list per key, in order."""
        o = OutboxMessage
        async with self._sessions.begin() as s:
            rows = list((await s.execute(self._heads, {"now": now})).all())
            if not rows:
                return []
            rows += await self._followers(s, rows)
            await s.execute(
                update(o)
                .where(o.id.in_([r.id for r in rows]))
                .values(
                    lease_owner=self.name,
                    lease_until=now + timedelta(seconds=self.options.lease),
                )
                .execution_options(synchronize_session=False)
            )
        by_key: dict[str, list[Claimed]] = {}
        for r in sorted(rows, key=lambda r: r.id):
            by_key.setdefault(r.key, []).append(
                Claimed(
                    Outgoing(r.id, r.topic, r.key, r.payload, r.created_at),
                    r.attempts,
                    r.history,
                )
            )
        return list(by_key.values())

    async def _deliver_key(
        self, messages: list[Claimed], gate: asyncio.Semaphore, started: float
    ) -> list[tuple[Claimed, Verdict | None]]:
        """A key's messages in order; None for those not tried (released for later)."""
        out: list[tuple[Claimed, Verdict | None]] = []
        async with gate:
            stop = False
            for item in messages:
                # Stay well inside the lease: past half of it, the rest waits for a new round.
                if stop or self._clock.monotonic() - started > self.options.lease / 2:
                    out.append((item, None))
                    continue
                try:
                    verdict = await self.sink.deliver(item.message)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a sink bug must not stop the relay
                    log.exception("outbox %s: sink %s failed", item.message.id, self.sink.name)
                    verdict = Verdict(VerdictKind.RETRY, f"sink error: {type(exc).__name__}")
                out.append((item, verdict))
                if verdict.kind == VerdictKind.RETRY:
                    stop = True
        return out

    async def run_once(self) -> RoundReport:
        """Claim, deliver, record: one round. Returns what happened (empty when idle)."""
        now = self._clock.now()
        keys = await self.claim(now)
        if not keys:
            return RoundReport()
        gate = asyncio.Semaphore(self.options.concurrency)
        started = self._clock.monotonic()
        results = await asyncio.gather(*(self._deliver_key(k, gate, started) for k in keys))
        return await self._record([r for key in results for r in key])

    async def _record(self, results: Sequence[tuple[Claimed, Verdict | None]]) -> RoundReport:
        """Write what `plan_round` makes of the verdicts, in one transaction."""
        now = self._clock.now()
        retrying = Retrying(self.options.retry_base, self.options.retry_max, self._rand)
        plan = plan_round(results, now, relay=self.name, sink=self.sink.name, retrying=retrying)
        o = OutboxMessage
        async with self._sessions.begin() as s:
            for sink_name, ids in plan.delivered.items():
                await s.execute(
                    update(o)
                    .where(o.id.in_(ids))
                    .values(
                        state=OutboxState.DELIVERED.value,
                        delivered_at=now,
                        sink=sink_name,
                        attempts=o.attempts + 1,
                        next_try_at=None,
                        lease_owner=None,
                        lease_until=None,
                    )
                    .execution_options(synchronize_session=False)
                )
            if plan.released:
                await s.execute(
                    update(o)
                    .where(o.id.in_(plan.released), o.lease_owner == self.name)
                    .values(lease_owner=None, lease_until=None)
                    .execution_options(synchronize_session=False)
                )
            for change in plan.updates:
                _log_failure(change)
                await s.execute(
                    update(o)
                    .where(o.id == change.item.message.id)
                    .values(**change.values)
                    .execution_options(synchronize_session=False)
                )
        return plan.report

    # -- sleeping and waking ---------------------------------------------------------------

    async def next_due_in(self, session: AsyncSession, now: datetime) -> float | None:
        """Seconds until a pending message becomes claimable by time alone (a retry or a
        lease running out); None when none waits on time."""
        o = OutboxMessage
        row = (
            await session.execute(
                select(func.min(o.next_try_at), func.min(o.lease_until)).where(
                    o.state == PENDING,
                    or_(
                        and_(o.next_try_at.is_not(None), o.next_try_at > now),
                        and_(o.lease_until.is_not(None), o.lease_until > now),
                    ),
                )
            )
        ).one()
        times = [t for t in row if t is not None and t > now]
        return min((t - now).total_seconds() for t in times) if times else None

    def wake(self) -> None:
        self._wake.set()

    async def _idle(self) -> None:
        now = self._clock.now()
        await self._listener.ensure()
        async with self._sessions() as s:
            due = await self.next_due_in(s, now)
        if self._stopped.is_set():
            return
        limit = self.options.idle_poll if self._listener.active else self.options.poll
        timeout = limit if due is None else min(due, limit)
        waits = {
            asyncio.ensure_future(self._clock.sleep(timeout)),
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(self._stopped.wait()),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in waits:
                t.cancel()
        self._wake.clear()

    async def run_forever(self) -> None:
        log.info("outbox relay %s delivering to %s", self.name, self.sink.name)
        while not self._stopped.is_set():
            # Cleared before the claim: a NOTIFY during the round wakes the next idle at once.
            self._wake.clear()
            try:
                report = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay round failed; trying again")
                report = RoundReport()
                await self._clock.sleep(self.options.poll)
            if report.claimed == 0 or report.claimed == report.retried + report.released:
                await self._idle()

    async def start(self) -> None:
        await self._listener.ensure()
        workers = self.options.workers if self._pg else 1
        self._task = asyncio.create_task(self._run_workers(workers), name=f"outbox-{self.name}")

    async def _run_workers(self, workers: int) -> None:
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(self.run_forever())

    async def stop(self, grace: float = 5.0) -> None:
        """Let the round in progress record its verdicts (up to `grace` real seconds), so
        that a restart does not wait for this relay's leases to run out."""
        self._stopped.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            except TimeoutError:
                log.warning(
                    "outbox relay %s: still busy %.0f s after stop; cancelling it (its leases "
                    "run out on their own)",
                    self.name,
                    grace,
                )
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._listener.close()
        await self.sink.close()


def _log_failure(change: MessageUpdate) -> None:
    message, verdict = change.item.message, change.verdict
    if verdict.kind == VerdictKind.PARK:
        log.error(
            "outbox %s (%s, %s) parked: %s", message.id, message.topic, message.key, verdict.detail
        )
    elif change.delay is not None:
        log.warning(
            "outbox %s (%s, %s): try %d failed, again in %.1f s: %s",
            message.id,
            message.topic,
            message.key,
            change.tries,
            change.delay,
            verdict.detail,
        )
