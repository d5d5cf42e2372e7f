"""What becomes of each message a relay round tried (pure: verdicts in, the writes out).

    backoff, retry_delay    when a failed message is tried again
    plan_round(...)         a RoundPlan: the delivered ids per sink, the ids released untried,
                            and the columns each other tried message gets

`crm_sync.relay` claims and delivers, then asks `plan_round` and writes its answer in one
transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from crm_sync.models import OutboxState
from crm_sync.sinks import Outgoing, Verdict, VerdictKind

HISTORY_KEEP = 20  # tries kept per message
MAX_RETRY_AFTER = 86_400.0  # a receiver asking for more than a day is taken as a day


def backoff(tries: int, base: float, cap: float, rand: float) -> float:
    """Seconds before try number `tries + 1`: exponential (`base`, doubled per try, at most
    `cap`) with "equal jitter" (half fixed, half random by `rand` in [0, 1)), so that keys
    that failed together do not all come back together."""
    delay = min(cap, base * 2.0 ** max(0, tries - 1))
    return delay / 2 + rand * delay / 2


def retry_delay(
    tries: int, base: float, cap: float, rand: float, retry_after: float | None
) -> float:
    """The backoff, or the receiver's `Retry-After` when it asks for longer."""
    delay = backoff(tries, base, cap, rand)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


@dataclass(slots=True)
class Claimed:
    """A message leased by this relay, with what its row says about earlier tries."""

    message: Outgoing
    attempts: int
    history: list[dict[str, Any]] | None


@dataclass(slots=True)
class RoundReport:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    parked: int = 0
    released: int = 0
    outcomes: list[tuple[int, Verdict]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MessageUpdate:
    """The columns one tried message gets, besides a plain delivery's."""

    item: Claimed
    verdict: Verdict
    values: dict[str, Any]
    tries: int = 0  # the message's tries so far, this one included (failures only)
    delay: float | None = None  # seconds until the retry; None when parked or delivered


@dataclass(slots=True)
class RoundPlan:
    delivered: dict[str, list[int]]  # by sink name
    released: list[int]
    updates: list[MessageUpdate]  # in the order the messages were tried
    report: RoundReport


@dataclass(frozen=True, slots=True)
class Retrying:
    """How this relay retries: the backoff's base and cap, and its source of jitter."""

    base: float
    cap: float
    rand: Callable[[], float]


def history_entry(now: datetime, verdict: Verdict, relay: str, sink: str) -> dict[str, Any]:
    return {
        "at": now.isoformat(),
        "sink": verdict.sink or sink,
        "relay": relay,
        "result": verdict.kind.value,
        "status": verdict.status,
        "detail": verdict.detail,
    }


def _failed(
    item: Claimed, verdict: Verdict, entry: dict[str, Any], now: datetime, retrying: Retrying
) -> MessageUpdate:
    """A retry at `now + delay`, or parked with the receiver's answer; the lease released."""
    tries = item.attempts + 1
    values: dict[str, Any] = {
        "attempts": tries,
        "last_error": verdict.detail,
        "history": [*(item.history or []), entry][-HISTORY_KEEP:],
        "lease_owner": None,
        "lease_until": None,
    }
    if verdict.kind == VerdictKind.PARK:
        values |= {"state": OutboxState.PARKED.value, "parked_reason": verdict.detail}
        return MessageUpdate(item, verdict, values, tries)
    delay = retry_delay(tries, retrying.base, retrying.cap, retrying.rand(), verdict.retry_after)
    values["next_try_at"] = now + timedelta(seconds=delay)
    return MessageUpdate(item, verdict, values, tries, delay)


def plan_round(
    results: Sequence[tuple[Claimed, Verdict | None]],
    now: datetime,
    *,
    relay: str,
    sink: str,
    retrying: Retrying,
) -> RoundPlan:
    """The round's verdicts (None: not tried) -> what the relay writes, and its report."""
    delivered: dict[str, list[int]] = {}
    for c, v in results:
        if v and v.kind == VerdictKind.DELIVERED:
            delivered.setdefault(v.sink or sink, []).append(c.message.id)
    released = [c.message.id for c, v in results if v is None]
    report = RoundReport(
        claimed=len(results),
        delivered=sum(map(len, delivered.values())),
        released=len(released),
    )
    updates: list[MessageUpdate] = []
    for item, verdict in results:
        if verdict is None:
            continue
        report.outcomes.append((item.message.id, verdict))
        if verdict.kind == VerdictKind.DELIVERED:
            if item.history:  # close a history of failures with its success
                entry = history_entry(now, verdict, relay, sink)
                history = [*item.history, entry][-HISTORY_KEEP:]
                updates.append(MessageUpdate(item, verdict, {"history": history}))
            continue
        update = _failed(item, verdict, history_entry(now, verdict, relay, sink), now, retrying)
        if update.delay is None:
            report.parked += 1
        else:
            report.retried += 1
        updates.append(update)
    return RoundPlan(delivered, released, updates, report)
