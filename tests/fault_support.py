"""Helpers for the fault suite (no tests here; docs/reliability.md).

* `check_whole`: the one pass condition every fault test ends with, over the database
  (attempts, leads, outbox) and the PBX simulator's record of the Originates it received:
  no result lost, no lead dialled twice, no call outside a window, every attempt ended in a
  final state with a reason.
* `PgProxy`: a TCP proxy between the service and PostgreSQL that can cut every connection
  and refuse new ones for a while (the machine's PostgreSQL is shared: never restart it).
* `figure`: a fault's figures, printed and appended to `$FAULT_FIGURES` (JSON lines) so that
  `make faults` can show them in one table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.models import OutboxMessage
from dialer.models import AttemptState, CallAttempt
from schedules.windows import CallingPlan

# (clock time of the Originate, lead id, ActionID = attempt id): OriginateSpy.times
Sent = tuple[datetime, int, str]


@dataclass
class Whole:
    """What `check_whole` found: the figures and every broken rule, named."""

    attempts: int = 0
    ended: int = 0
    unknown: int = 0
    originates: int = 0
    results_in_outbox: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def assert_whole(self) -> None:
        assert not self.problems, "the service is not whole:\n  " + "\n  ".join(self.problems[:20])


async def check_whole(
    sessions: async_sessionmaker[AsyncSession],
    sent: Iterable[Sent],
    *,
    plan: CallingPlan | None = None,
    once_per_lead: bool = True,
) -> Whole:
    """The pass condition of every fault, as queries plus the simulator's Originates.

    * no result lost: every attempt has ended and has exactly one `attempt.result` message
      in the outbox;
    * no lead dialled twice: no attempt id was sent twice, every Originate has its attempt
      row (written before the dial), no Originate for a lead while another attempt of that
      lead was in flight, none after an `unknown` end before the next window, and (with
      `once_per_lead`, for tests whose customers all settle at the first call) one per lead;
    * no call outside a window: each Originate's clock time is inside its campaign's hours;
    * every attempt ends in a final state with a reason: state `ended`, an outcome and a
      reason."""
    plan = plan or CallingPlan()
    sent = sorted(sent)
    async with sessions() as s:
        rows = list((await s.scalars(select(CallAttempt))).all())
        results = [
            m.payload.get("attempt_id")
            for m in (
                await s.scalars(
                    select(OutboxMessage).where(OutboxMessage.topic == "attempt.result")
                )
            ).all()
        ]
    w = Whole(attempts=len(rows), originates=len(sent), results_in_outbox=len(results))
    by_id = {a.attempt_id: a for a in rows}
    per_result = Counter(results)
    for a in rows:
        w.outcomes[a.outcome or "none"] += 1
        w.unknown += bool(a.unknown)
        if a.ended_at is None or a.state != AttemptState.ENDED.value:
            w.problems.append(f"attempt {a.attempt_id} not final: state {a.state}")
            continue
        w.ended += 1
        if not a.outcome or not (a.reason or "").strip():
            w.problems.append(f"attempt {a.attempt_id} ended without outcome/reason")
        if per_result[a.attempt_id] != 1:
            w.problems.append(
                f"attempt {a.attempt_id}: {per_result[a.attempt_id]} results in the outbox"
            )
    per_attempt = Counter(aid for _, _, aid in sent)
    w.problems += [f"attempt {aid} sent {n} times" for aid, n in per_attempt.items() if n > 1]
    w.problems += [f"Originate {aid} has no attempt row" for aid in per_attempt if aid not in by_id]
    per_lead: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for at, lead, aid in sent:
        per_lead[lead].append((at, aid))
        a = by_id.get(aid)
        if a is not None and not plan.for_kind(a.campaign_kind).is_open(at):
            w.problems.append(f"attempt {aid} sent at {at:%H:%M:%S} UTC, outside its window")
    for lead, calls in per_lead.items():
        if once_per_lead and len(calls) > 1:
            w.problems.append(f"lead {lead} dialled {len(calls)} times")
        w.problems += _overlaps(lead, calls, by_id, plan)
    return w


def _overlaps(
    lead: int,
    calls: Sequence[tuple[datetime, str]],
    by_id: dict[str, CallAttempt],
    plan: CallingPlan,
) -> list[str]:
    """A lead's later Originate while an earlier attempt was still in flight, or before the
    next window after an attempt whose fate was unknown."""
    out: list[str] = []
    for (_, first), (at, later) in pairwise(calls):
        a = by_id.get(first)
        if a is None or a.ended_at is None:
            continue
        ended = _aware(a.ended_at)
        if at < ended:
            out.append(f"lead {lead}: {later} sent while {first} was in flight")
        elif a.unknown and at < plan.for_kind(a.campaign_kind).next_window_start(ended):
            out.append(f"lead {lead}: {later} sent before the next window after unknown {first}")
    return out


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


# -- figures -----------------------------------------------------------------------------------


def figure(fault: str, **values: Any) -> dict[str, Any]:
    """Print a fault's figures and append them to `$FAULT_FIGURES` (JSON lines)."""
    row = {"fault": fault, **values}
    print(f"FAULT FIGURES {json.dumps(row, ensure_ascii=False, default=str)}", flush=True)
    target = os.environ.get("FAULT_FIGURES")
    if target:
        with Path(target).open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return row


async def poll(
    cond: Callable[[], Awaitable[bool] | bool], *, timeout: float, what: str, every: float = 0.05
) -> float:
    """Wait in real time for `cond` (a real process runs in real time); returns the seconds it
    took. `every` is a polling interval, not a pace: the bound is `timeout`."""
    start = time.monotonic()
    while True:
        got = cond()
        if not isinstance(got, bool):
            got = await got
        if got:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not reached within {timeout:.0f}s")
        await asyncio.sleep(every)


# -- a proxy that can cut PostgreSQL away ------------------------------------------------------


class PgProxy:
    """A loopback TCP proxy in front of a database server.

    `cut()` drops every connection through it at once (what clients see of a database
    restart); `refuse()` also closes the port to new connections until `accept()`."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.refusing = False
        self.connections = 0
        self.cuts = 0
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def url(self, url: str) -> str:
        """`url` (a SQLAlchemy PostgreSQL URL on the upstream) through this proxy."""
        from sqlalchemy.engine import make_url

        return (
            make_url(url)
            .set(host="127.0.0.1", port=self.port)
            .render_as_string(hide_password=False)
        )

    def cut(self) -> int:
        """Drop every open connection at once (both directions, no goodbye)."""
        n = 0
        for w in list(self._pipes):
            w.transport.abort()
            n += 1
        self._pipes.clear()
        self.cuts += n
        return n

    def refuse(self) -> None:
        """Cut everything and refuse new connections (PostgreSQL unreachable)."""
        self.refusing = True
        self.cut()

    def accept(self) -> None:
        self.refusing = False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._pipes |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._pipes.discard(w)
                w.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


# -- a wall clock that steps -------------------------------------------------------------------


class SteppedClock:
    """The machine's clock stepped by an operator or NTP (`date -s`, a VM resumed): `now()`
    jumps by `step()`, while `monotonic()` and `sleep()` go on as before (they are the
    driven `VirtualClock`'s, which the test's Driver moves)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return self.inner.now() + self.offset  # type: ignore[no-any-return]

    def monotonic(self) -> float:
        return self.inner.monotonic()  # type: ignore[no-any-return]

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)

    def step(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)
