"""`callcenter outbox status|list|show|retry|park|purge`: the CRM outbox by hand (docs/crm.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.bootstrap import bootstrap
from crm_sync import outbox as ops
from crm_sync.exceptions import CrmError
from crm_sync.models import OutboxState


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("outbox", help="results on their way to the CRM: status, retry, park")
    osub = p.add_subparsers(dest="outbox_command", required=True)
    st = osub.add_parser("status", help="counts by topic and state, oldest undelivered age")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=_status)
    ls = osub.add_parser("list", help="messages, oldest first")
    ls.add_argument("--state", choices=[s.value for s in OutboxState])
    ls.add_argument("--topic", help="e.g. attempt.result")
    ls.add_argument("--key", help="e.g. lead:42")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true", help="print JSON (with each history)")
    ls.set_defaults(func=_list)
    show = osub.add_parser("show", help="one message with its history of tries")
    show.add_argument("id", type=int)
    show.set_defaults(func=_show)
    retry = osub.add_parser("retry", help="try parked or waiting messages again now")
    retry.add_argument("ids", type=int, nargs="+")
    retry.set_defaults(func=_retry)
    park = osub.add_parser("park", help="stop trying messages (their lead's next ones go on)")
    park.add_argument("ids", type=int, nargs="+")
    park.add_argument("--reason", required=True, help="why, for whoever looks later")
    park.set_defaults(func=_park)
    purge = osub.add_parser("purge", help="delete delivered messages older than N days")
    purge.add_argument(
        "--older-than-days", type=float, help="default: crm.retention_days from the settings"
    )
    purge.set_defaults(func=_purge)


def _run(work: Callable[[AsyncSession, float], Awaitable[int]]) -> int:
    async def run() -> int:
        container = await bootstrap()
        try:
            async with container.sessions() as session:
                try:
                    code = await work(session, container.settings.crm.retention_days)
                except (CrmError, ValueError) as exc:
                    await session.rollback()
                    print(f"error: {exc}", file=sys.stderr)
                    return 2
                await session.commit()
                return code
        finally:
            await container.close()

    return asyncio.run(run())


def _now() -> datetime:
    return datetime.now(UTC)


def _status(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, _retention: float) -> int:
        st = await ops.status(session, _now())
        if args.json:
            print(json.dumps(st.as_dict(), ensure_ascii=False))
            return 0
        print(f"pending {st.pending}, parked {st.parked}")
        age = st.oldest_undelivered_age
        print("oldest undelivered: " + ("none" if age is None else f"{age:.0f} s old"))
        for topic in sorted(st.counts):
            counts = ", ".join(f"{k} {v}" for k, v in sorted(st.counts[topic].items()))
            print(f"  {topic}: {counts}")
        return 0

    return _run(work)


def _list(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, _retention: float) -> int:
        rows = await ops.list_messages(
            session, state=args.state, topic=args.topic, key=args.key, limit=args.limit
        )
        if args.json:
            print(json.dumps([ops.message_view(m) for m in rows], ensure_ascii=False))
            return 0
        for m in rows:
            why = m.parked_reason or m.last_error or ""
            print(f"{m.id}\t{m.state}\t{m.topic}\t{m.key}\ttries {m.attempts}\t{why}")
        return 0

    return _run(work)


def _show(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, _retention: float) -> int:
        m = await ops.get(session, args.id)
        print(json.dumps(ops.message_view(m) | {"payload": m.payload}, ensure_ascii=False))
        return 0

    return _run(work)


def _retry(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, _retention: float) -> int:
        n = await ops.retry(session, args.ids, _now())
        print(f"{n} message(s) will be tried again now")
        return 0 if n else 1

    return _run(work)


def _park(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, _retention: float) -> int:
        n = await ops.park(session, args.ids, args.reason, _now())
        print(f"{n} message(s) parked")
        return 0 if n else 1

    return _run(work)


def _purge(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, retention: float) -> int:
        days = retention if args.older_than_days is None else args.older_than_days
        n = await ops.purge(session, _now(), timedelta(days=days))
        print(f"{n} delivered message(s) purged")
        return 0

    return _run(work)
