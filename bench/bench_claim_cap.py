"""Benchmark: a seat's claim query with and without the daily cap per number.

Fills a scratch database (migrated to every head) with specialists, their assigned renewal
leads and ended call attempts (one of them today per lead, the rest spread over the past
weeks), then times `dialer.queues.SeatQueue.candidates` (the query a ready seat runs) without
a cap and with `daily_cap=3`, which counts each candidate number's calls since the start of
the day through `ix_call_attempts_number_created` (migration 0012_dialing_rules).

    .venv/bin/python bench/bench_claim_cap.py sqlite+aiosqlite:////tmp/cap.db
    .venv/bin/python bench/bench_claim_cap.py postgresql+asyncpg://postgres@127.0.0.1/scratch \\
        --attempts 1000000

The database must be empty (a new PostgreSQL database, a SQLite file that does not exist).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from callcenter.database import upgrade
from crm_sync.models import Branch, Customer, Lead, Phone, Policy, Specialist
from dialer import queues
from dialer.models import CallAttempt

NOW = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # Monday 10:00 in Asia/Shanghai
DAY_START = datetime(2026, 1, 4, 16, 0, tzinfo=UTC)  # Monday 00:00 in Asia/Shanghai


async def _fill(sessions: async_sessionmaker[Any], specs: int, per: int, history: int) -> list[int]:
    async with sessions() as s:
        branch = Branch(code="B", name="b")
        s.add(branch)
        await s.flush()
        people = [
            Specialist(name=f"s{i}", seat=f"PJSIP/{9000 + i}", branch_id=branch.id)
            for i in range(specs)
        ]
        s.add_all(people)
        await s.flush()
        n = specs * per
        await s.execute(
            insert(Customer), [{"name": f"c{i}", "match_key": f"c{i}"} for i in range(n)]
        )
        cids = list((await s.scalars(select(Customer.id).order_by(Customer.id))).all())
        numbers = [f"+86139{i:08d}" for i in range(n)]
        await s.execute(
            insert(Phone),
            [
                {"customer_id": c, "raw": x, "e164": x, "kind": "mobile"}
                for c, x in zip(cids, numbers, strict=True)
            ],
        )
        pids = list((await s.scalars(select(Phone.id).order_by(Phone.id))).all())
        expiry = (NOW + timedelta(days=25)).date()
        await s.execute(
            insert(Policy),
            [
                {"policy_number": f"P{i}", "policyholder_id": c, "branch_id": branch.id,
                 "expiry_date": expiry}
                for i, c in enumerate(cids)
            ],
        )  # fmt: skip
        pols = list((await s.scalars(select(Policy.id).order_by(Policy.id))).all())
        await s.execute(
            insert(Lead),
            [
                {"policy_id": p, "kind": "renewal", "phone_id": ph, "status": "assigned",
                 "owner_id": people[i % specs].id, "distributed_on": NOW.date(),
                 "due_on": NOW.date()}
                for i, (p, ph) in enumerate(zip(pols, pids, strict=True))
            ],
        )  # fmt: skip
        lids = list((await s.scalars(select(Lead.id).order_by(Lead.id))).all())
        rows = []
        for k in range(history):
            i = k % n
            at = NOW - timedelta(hours=(k // n) * 7 + 1)  # the first round is today
            rows.append(
                {"attempt_id": f"att-{uuid.uuid4()}", "lead_id": lids[i], "phone_id": pids[i],
                 "number": numbers[i], "mode": "seat_first", "campaign_kind": "renewal",
                 "ami_server": "pbx1", "state": "ended", "outcome": "busy", "created_at": at,
                 "ended_at": at}
            )  # fmt: skip
            if len(rows) == 5000:
                await s.execute(insert(CallAttempt), rows)
                rows = []
        if rows:
            await s.execute(insert(CallAttempt), rows)
        await s.commit()
        if s.get_bind().dialect.name == "postgresql":
            await s.execute(text("ANALYZE"))
        return [p.id for p in people]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("url", help="an empty database")
    ap.add_argument("--specialists", type=int, default=200)
    ap.add_argument("--leads", type=int, default=10, help="leads per specialist")
    ap.add_argument("--attempts", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    await upgrade(args.url)
    engine = create_async_engine(args.url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    people = await _fill(sessions, args.specialists, args.leads, args.attempts)
    pg = engine.dialect.name == "postgresql"
    for cap in (None, 3):
        query = queues.SeatQueue(lock=pg, daily_cap=cap)
        ms = []
        for r in range(args.runs):
            async with sessions() as s, s.begin():
                t = time.perf_counter()
                await query.candidates(
                    s, people[r % len(people)], ["renewal"], now=NOW, limit=20, day_start=DAY_START
                )
                ms.append((time.perf_counter() - t) * 1000)
        ms.sort()
        print(
            f"{engine.dialect.name} daily_cap={cap}: p50 {statistics.median(ms):.2f} ms, "
            f"p95 {ms[int(len(ms) * 0.95)]:.2f} ms ({args.specialists} specialists x "
            f"{args.leads} leads, {args.attempts} attempts)"
        )
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
