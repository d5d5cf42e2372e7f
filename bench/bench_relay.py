"""Outbox relay: throughput to a loopback webhook receiver, and the lag from commit to the
receiver's acceptance.

The receiver runs in its own process (aiohttp; it checks every signature and drops duplicates
by Idempotency-Key, as a real one would) and notes the wall time it accepted each message.

  throughput: N messages over K leads already in the outbox; the relay starts and the clock
              runs until the receiver has accepted all of them (messages/s);
  lag:        a writer commits one message per transaction at R messages/s while the relay
              runs (woken by NOTIFY on PostgreSQL, polling on SQLite); lag = accepted - committed,
              p50/p99 over the run.

    .venv/bin/python bench/bench_relay.py [--db postgresql|sqlite] [--messages 20000]
        [--keys 2000] [--rate 200] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import SecretStr
from sqlalchemy import func, insert, select, text

from callcenter.database import create_engine, session_factory, upgrade
from crm_sync import signing
from crm_sync.models import OutboxMessage
from crm_sync.relay import OutboxRelay, RelayOptions
from crm_sync.sinks import WebhookSink
from schedules.clock import SystemClock

SECRET = "bench-secret"
PG_ADMIN = os.environ.get(
    "CALLCENTER_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


def _receiver(port_q: Any, done_q: Any, stop: Any) -> None:
    from aiohttp import web

    accepted: dict[int, float] = {}
    duplicates = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal duplicates
        body = await request.read()
        try:
            signing.verify(request.headers.get(signing.HEADER), body, [SECRET], time.time(), 300)
        except signing.SignatureError as exc:
            return web.Response(status=401, text=str(exc))
        key = int(request.headers["Idempotency-Key"])
        if key in accepted:
            duplicates += 1
        else:
            accepted[key] = time.time()
        return web.Response(status=204)

    async def count(_request: web.Request) -> web.Response:
        return web.json_response({"accepted": len(accepted)})

    async def main() -> None:
        app = web.Application()
        app.add_routes([web.post("/hook", hook), web.get("/count", count)])
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port_q.put(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        while not stop.is_set():  # noqa: ASYNC110 (a multiprocessing event, not asyncio's)
            await asyncio.sleep(0.05)
        done_q.put((accepted, duplicates))
        await runner.cleanup()

    asyncio.run(main())


class ReceiverProcess:
    def __init__(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self.port_q, self.done_q, self.stop = ctx.Queue(), ctx.Queue(), ctx.Event()
        self.proc = ctx.Process(target=_receiver, args=(self.port_q, self.done_q, self.stop))
        self.proc.start()
        self.port = int(self.port_q.get(timeout=20))
        self.url = f"http://127.0.0.1:{self.port}/hook"

    async def accepted(self) -> int:
        import aiohttp

        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{self.port}/count") as r:
            return int((await r.json())["accepted"])

    def finish(self) -> tuple[dict[int, float], int]:
        self.stop.set()
        result: tuple[dict[int, float], int] = self.done_q.get(timeout=60)
        self.proc.join(10)
        return result


async def make_db(kind: str) -> tuple[str, Any]:
    if kind == "sqlite":
        folder = tempfile.mkdtemp(prefix="bench-relay-")
        url = f"sqlite+aiosqlite:///{folder}/bench.db"
        await upgrade(url)
        return url, None
    import asyncpg  # type: ignore[import-untyped]

    name = f"cc_bench_relay_{uuid.uuid4().hex[:8]}"
    admin = PG_ADMIN.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    await upgrade(url)

    async def drop() -> None:
        c = await asyncpg.connect(admin)
        await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await c.close()

    return url, drop


def payload(key: int, n: int) -> dict[str, Any]:
    # The size of a real attempt.result document (~600 bytes of JSON).
    return {
        "attempt_id": f"att-{uuid.uuid4()}",
        "lead_id": key,
        "specialist_id": 17,
        "number": "+8613900001234",
        "mode": "customer_first",
        "campaign_kind": "renewal",
        "outcome": "no_answer",
        "cause": 19,
        "tech_cause": None,
        "dial_status": "NOANSWER",
        "ring_seconds": 30.0,
        "talk_seconds": None,
        "key_pressed": None,
        "recording": None,
        "unknown": False,
        "contact_result": "no_answer",
        "next_attempt_at": "2026-01-05T07:30:00+00:00",
        "reason": f"no answer ({n}), next window",
        "ended_at": "2026-01-05T02:01:00+00:00",
    }


def relay_for(engine: Any, url: str, concurrency: int) -> OutboxRelay:
    clock = SystemClock()
    sink = WebhookSink(url, [SecretStr(SECRET)], clock, timeout=10, connections=concurrency)
    options = RelayOptions(batch=500, key_batch=20, concurrency=concurrency, lease=60, poll=0.05)
    return OutboxRelay(engine, clock, sink, options, name="bench")


async def throughput(db: str, messages: int, keys: int, concurrency: int) -> dict[str, Any]:
    url, drop = await make_db(db)
    engine = create_engine(url)
    receiver = ReceiverProcess()
    try:
        now = SystemClock().now()
        rows = [
            {
                "topic": "attempt.result",
                "key": f"lead:{n % keys}",
                "payload": payload(n % keys, n),
                "created_at": now,
                "attempts": 0,
            }
            for n in range(messages)
        ]
        async with session_factory(engine).begin() as s:
            for i in range(0, len(rows), 5000):
                await s.execute(insert(OutboxMessage), rows[i : i + 5000])
        if db == "postgresql":
            # What autovacuum does within a minute (migration 0013 tunes it for this table):
            # a backlog built up over an outage is analysed long before it drains.
            async with engine.connect() as conn:
                await conn.execute(text("ANALYZE outbox"))
        relay = relay_for(engine, receiver.url, concurrency)
        cpu0, t0 = time.process_time(), time.perf_counter()
        await relay.start()
        # Asks the receiver process (over HTTP) how many it has: nothing to wait on here.
        while await receiver.accepted() < messages and time.perf_counter() - t0 < 600:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        await relay.stop()
        accepted, duplicates = receiver.finish()
        return {
            "db": db,
            "messages": messages,
            "keys": keys,
            "accepted": len(accepted),
            "duplicates": duplicates,
            "seconds": round(elapsed, 2),
            "per_second": round(messages / elapsed),
            "relay_cpu_seconds": round(cpu, 2),
        }
    finally:
        if receiver.proc.is_alive():
            receiver.proc.kill()
        await engine.dispose()
        if drop is not None:
            await drop()


async def lag(db: str, rate: float, seconds: float, keys: int, concurrency: int) -> dict[str, Any]:
    url, drop = await make_db(db)
    engine = create_engine(url)
    writer_engine = create_engine(url)
    receiver = ReceiverProcess()
    committed: dict[int, float] = {}
    try:
        relay = relay_for(engine, receiver.url, concurrency)
        await relay.start()
        sessions = session_factory(writer_engine)
        total = int(rate * seconds)
        t0 = time.perf_counter()
        for n in range(total):
            # Paced on the wall clock: the benchmark is the one place that means it.
            target = t0 + n / rate
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            key = random.randrange(keys)
            async with sessions.begin() as s:
                msg = OutboxMessage(
                    topic="attempt.result",
                    key=f"lead:{key}",
                    payload=payload(key, n),
                    created_at=SystemClock().now(),
                )
                s.add(msg)
                await s.flush()
                mid = msg.id
            committed[mid] = time.time()
        deadline = time.perf_counter() + 30
        while await receiver.accepted() < total and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        await relay.stop()
        accepted, duplicates = receiver.finish()
        lags = sorted((accepted[m] - c) * 1000 for m, c in committed.items() if m in accepted)
        async with session_factory(engine)() as s:
            pending = await s.scalar(select(func.count()).where(OutboxMessage.state == "pending"))
        q = statistics.quantiles(lags, n=100)
        return {
            "db": db,
            "rate": rate,
            "seconds": seconds,
            "messages": total,
            "accepted": len(accepted),
            "duplicates": duplicates,
            "pending_after": pending,
            "lag_ms_p50": round(q[49], 1),
            "lag_ms_p99": round(q[98], 1),
            "lag_ms_max": round(lags[-1], 1),
        }
    finally:
        if receiver.proc.is_alive():
            receiver.proc.kill()
        await engine.dispose()
        await writer_engine.dispose()
        if drop is not None:
            await drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-lag", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    load = os.getloadavg()[0]
    if not args.skip_throughput:
        result = asyncio.run(throughput(args.db, args.messages, args.keys, args.concurrency))
        print(json.dumps({"throughput": result, "load": round(load, 2)}))
    if not args.skip_lag:
        result = asyncio.run(lag(args.db, args.rate, args.seconds, 500, args.concurrency))
        print(json.dumps({"lag": result, "load": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
