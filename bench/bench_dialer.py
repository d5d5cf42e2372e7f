"""Dialer benchmark: prints figures (not a test). The PBX simulator runs in its own process
(`callcenter pbx-sim`), so the CPU measured is the dialer's alone.

1. Latency from a seat becoming ready to its Originate being answered "queued" by the PBX,
   with 200 signed-in seats (seat-first, short calls, 2 s wrap-up): p50/p99 for the burst
   when all 200 turn ready at once, and in steady state as calls end and seats free up.
2. Throughput: automatic reminder calls (30 s playback) ramped up at a fixed rate of new
   calls per second; the highest rate the process keeps up with, the concurrent calls it
   holds, and its CPU per 100 concurrent calls.

    .venv/bin/python bench/bench_dialer.py                      # SQLite (embedded default)
    .venv/bin/python bench/bench_dialer.py --db postgresql+asyncpg://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callcenter.database import create_engine, session_factory, upgrade
from common.clock import ScaledClock
from dialer.ami.supervisor import AmiConfig
from dialer.engine import AmiServerSpec, DialerConfig, DialerEngine
from dialer.originate import DialPlan
from dialer.services import DialerService
from tests.test_dialer_support import seed

MONDAY_1000 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sim(port: int, scenario: Path | None = None) -> subprocess.Popen[bytes]:
    extra = ["--scenario", str(scenario)] if scenario is not None else []
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "callcenter",
            "pbx-sim",
            "--port",
            str(port),
            "--user",
            "dialer",
            "--secret",
            "secret",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the PBX simulator did not start")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, round(p / 100 * (len(v) - 1)))]


async def fresh_db(url: str | None, tmp: Path) -> str:
    if url is None:
        url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    else:
        import asyncpg

        admin = url.rsplit("/", 1)[0] + "/postgres"
        name = url.rsplit("/", 1)[1]
        conn = await asyncpg.connect(admin.replace("postgresql+asyncpg://", "postgresql://"))
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
    await upgrade(url)
    return url


def engine_for(sessions, clock, port: int, config: DialerConfig) -> DialerEngine:  # type: ignore[no-untyped-def]
    spec = AmiServerSpec(
        "bench",
        AmiConfig(port=port, username="dialer", secret="secret", action_timeout=30.0),
        DialPlan(family="pjsip"),
    )
    return DialerEngine(sessions, clock, [spec], config=config)


def freeze_startup_objects() -> None:
    gc.collect()
    gc.freeze()


async def loop_lag(out: list[float], step: float = 0.005) -> None:
    """How late the event loop wakes a 5 ms sleeper: stalls in the dialer's own process."""
    while True:
        t = time.monotonic()
        await asyncio.sleep(step)
        out.append(time.monotonic() - t - step)


async def latency(
    url: str,
    seats: int,
    seconds: float,
    preclaim: bool,
    scenario: Path | None,
    trunk_cps: float,
) -> None:
    port = free_port()
    sim = start_sim(port, scenario)
    db = create_engine(url)
    sessions = session_factory(db)
    try:
        async with sessions() as s:
            # Conversations as at the desk: mostly long calls (7: ~57 s), some short (0: ~5 s),
            # so seats free up one by one (~3-4 a second): the dialer is not saturated.
            specs, _ = await seed(
                s,
                specialists=seats,
                leads=[("renewal", "7770"[i % 4], i % seats) for i in range(seats * 10)],
            )
        clock = ScaledClock(MONDAY_1000, 1.0)
        engine = engine_for(
            sessions, clock, port, DialerConfig(wrap_up_seconds=2.0, preclaim=preclaim)
        )
        service = DialerService(engine)
        await engine.start()
        freeze_startup_objects()  # as `callcenter serve` does once it has started
        await engine.wait_connected()
        # The trunk must not be the bottleneck here: this measures the dialer. Its pace spaces
        # new calls evenly (1 ms apart at 1,000/s, the most the service accepts), so 30 seats
        # turning ready together would wait up to 30 ms for the trunk alone: set through the
        # engine, 10,000/s (0.1 ms apart) unless --trunk-cps says otherwise.
        await engine.set_campaign("renewal", trunk_max_calls=10_000, trunk_max_cps=trunk_cps)
        await service.start_campaign("renewal")
        await asyncio.gather(*(service.sign_in(sid, ready=True) for sid in specs))
        t0 = time.monotonic()
        # The burst: each seat's first call. Steady state: the calls after the last of them
        # (a seat whose first call was short may dial again while the burst still queues).
        first: dict[int, float] = {}
        while len(first) < seats and time.monotonic() - t0 < 60:
            await asyncio.sleep(0.05)
            for sid, _, _, x in list(engine.latencies):
                first.setdefault(sid, x)
        burst = [x * 1000 for x in first.values()]
        mark = len(engine.latencies)
        lags: list[float] = []
        lag_task = asyncio.ensure_future(loop_lag(lags))
        await asyncio.sleep(seconds)
        lag_task.cancel()
        rows = list(engine.latencies)[mark:]
        steady = [x * 1000 for *_, x in rows]
        handed = [x * 1000 for _, _, x, _ in rows]
        # Calls of one script last the same: seats that started together free up together.
        ready = sorted(at for _, at, _, _ in rows)
        wave = max((bisect.bisect(ready, at + 0.1) - i for i, at in enumerate(ready)), default=0)
        calls = engine.stats["originates"]
        print({k: v for k, v in engine.stats.items() if k.startswith("outcome")})
        await engine.stop()
        print(
            f"latency, {seats} seats ready at once (burst): n={len(burst)} "
            f"p50={pct(burst, 50):.1f} ms p99={pct(burst, 99):.1f} ms max={max(burst):.1f} ms"
        )
        print(
            f"latency, steady state over {seconds:.0f} s: n={len(steady)} "
            f"p50={pct(steady, 50):.1f} ms p99={pct(steady, 99):.1f} ms "
            f"max={max(steady) if steady else float('nan'):.1f} ms "
            f"({calls / (time.monotonic() - t0):.0f} Originates/s)"
        )
        print(
            f"  of which until the Originate is handed to the AMI link (the rest is the PBX's "
            f"reply): p50={pct(handed, 50):.1f} ms p99={pct(handed, 99):.1f} ms; "
            f"at most {wave} seats turned ready within 100 ms"
        )
        print(
            f"event-loop lag over the steady state: p99={pct(lags, 99) * 1000:.1f} ms "
            f"max={max(lags, default=0) * 1000:.1f} ms; "
            f"pre-claims {engine.stats['preclaimed']}, released {engine.stats['preclaim_released']}"
        )
    finally:
        sim.kill()
        await db.dispose()


async def throughput(
    db_url: str | None, tmp: Path, rates: list[float], hold: float, digit: str
) -> None:
    for rate in rates:
        run_dir = tmp / f"rate-{rate:g}"
        run_dir.mkdir()
        url = await fresh_db(db_url, run_dir)
        port = free_port()
        sim = start_sim(port)
        db = create_engine(url)
        sessions = session_factory(db)
        try:
            n = int(rate * (hold + 35)) + 100
            async with sessions() as s:
                await seed(s, specialists=0, leads=[("renewal", digit, None)] * n)
            clock = ScaledClock(MONDAY_1000, 1.0)
            engine = engine_for(
                sessions, clock, port, DialerConfig(automatic_tick_seconds=1.0, claim_batch=400)
            )
            service = DialerService(engine)
            await engine.start()
            await engine.wait_connected()
            # The engine's own setter: the service caps concurrency at 1,000 per campaign, and
            # this measures how many calls one process holds.
            await engine.set_campaign(
                "reminder",
                concurrency=100_000,
                trunk_max_calls=100_000,
                trunk_max_cps=rate,
                message="tt-monkeys&tt-monkeys",  # ~31 s per call
            )
            import psutil

            simproc = psutil.Process(sim.pid)
            s0 = sum(simproc.cpu_times()[:2])
            t0 = time.monotonic()
            c0 = time.process_time()
            await service.start_campaign("reminder")
            peak = 0
            samples: list[tuple[float, int, float]] = []
            while time.monotonic() - t0 < hold:
                await asyncio.sleep(1.0)
                # Calls up in the PBX as the tracker sees them (not rows awaiting a write).
                live = sum(len(sv.tracker.active()) for sv in engine._servers.values())
                peak = max(peak, live)
                samples.append((time.monotonic() - t0, live, time.process_time() - c0))
            sent = engine.stats["originates"]
            sim_cpu = (sum(simproc.cpu_times()[:2]) - s0) / (time.monotonic() - t0)
            backlog = engine._results.qsize() + len(engine._live) - live
            wall = time.monotonic() - t0
            # CPU over the last 10 s, when the concurrency is highest.
            (ta, la, ca), (tb, lb, cb) = samples[-11], samples[-1]
            cpu = (cb - ca) / (tb - ta)
            mean_live = (la + lb) / 2
            await engine.stop(grace=0)
            achieved = sent / wall
            print(
                f"throughput at {rate:.0f} new calls/s asked: {achieved:.1f}/s sent "
                f"({'kept up' if achieved >= 0.95 * rate else 'FELL BEHIND'}), "
                f"peak {peak} concurrent calls, CPU {cpu * 100:.0f}% of one core at "
                f"~{mean_live:.0f} calls = {cpu * 100 / max(mean_live, 1) * 100:.1f}% per "
                f"100 concurrent calls; results waiting to be written: {backlog}; "
                f"simulator CPU {sim_cpu * 100:.0f}%"
            )
        finally:
            sim.kill()
            await db.dispose()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    ap.add_argument("--seats", type=int, default=200)
    ap.add_argument("--steady-seconds", type=float, default=20.0)
    ap.add_argument("--rates", default="20,50,100", help="new calls/s to try, comma-separated")
    ap.add_argument("--hold", type=float, default=40.0, help="seconds per throughput run")
    ap.add_argument(
        "--digit",
        default="0",
        help="customers' behaviour in the throughput runs: 0 ~5 s calls, 7 ~58 s",
    )
    ap.add_argument(
        "--no-preclaim",
        action="store_true",
        help="claim only when a seat is ready (the design before the pre-claim), to compare",
    )
    ap.add_argument(
        "--scenario",
        type=Path,
        default=None,
        help="latency: the simulator's scenario file instead of the fixed script by last digit "
        "(bench/scenarios/desk.toml: every call its own length)",
    )
    ap.add_argument(
        "--trunk-cps",
        type=float,
        default=10_000.0,
        help="latency: the trunk's new calls per second (default %(default)s: not a limit)",
    )
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=getattr(logging, os.environ.get("BENCH_LOG", "ERROR")))
    with tempfile.TemporaryDirectory() as tmp:
        print(
            f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
            f"database {'SQLite' if args.db is None else 'PostgreSQL'}"
        )
        if not args.skip_latency:
            url = await fresh_db(args.db, Path(tmp))
            await latency(
                url,
                args.seats,
                args.steady_seconds,
                not args.no_preclaim,
                args.scenario,
                args.trunk_cps,
            )
        if not args.skip_throughput:
            await throughput(
                args.db,
                Path(tmp),
                [float(r) for r in args.rates.split(",")],
                args.hold,
                args.digit,
            )


if __name__ == "__main__":
    asyncio.run(main())
