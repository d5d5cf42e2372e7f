"""The simulator under load: N concurrent seat-first calls (long calls, digit 7), one AMI
client consuming every event. Reports how late the simulator's timers fire (p50/p99, in
real milliseconds) and events/s, for growing N, to find its ceiling.

    .venv/bin/python bench/bench_simulator.py [--calls 1000 2000 4000] [--speed 20] [--cps 100]

With --cps the originates are paced (as the dialer paces a trunk) instead of sent at once.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.clock import ScaledClock
from dialer.ami.connection import AmiConnection
from dialer.simulator import PbxSimulator


async def run(n: int, speed: float, cps: float = 0.0) -> dict[str, float]:
    clock = ScaledClock(datetime.now(UTC), speed)
    sim = PbxSimulator(clock=clock, users={"dialer": "s"})
    late: list[float] = []
    sim.pbx.lateness_probe = lambda due, actual: late.append((actual - due) / speed)
    await sim.start("127.0.0.1", 0)
    conn = AmiConnection(
        sim.host, sim.port, username="dialer", secret="s", event_parser=lambda m: m
    )
    events = 0

    def count(_: object) -> None:
        nonlocal events
        events += 1

    conn.subscribe(count)
    await conn.connect()
    t0 = time.perf_counter()

    def originate(i: int) -> Any:
        return conn.send(
            "Originate",
            {
                "Channel": f"Local/8{i:05d}@seats",
                "Context": "dialer",
                "Exten": f"1390{i:06d}7",
                "Async": "true",
            },
            timeout=60,
        )

    if cps <= 0:  # all at once: the originate storm
        await asyncio.gather(*(originate(i) for i in range(n)))
    else:  # paced as the dialer paces a trunk (real seconds)
        sends = []
        for i in range(n):
            sends.append(asyncio.ensure_future(originate(i)))
            await asyncio.sleep(t0 + (i + 1) / cps - time.perf_counter())
        await asyncio.gather(*sends)
    peak = 0
    while sim.pbx.calls:
        peak = max(peak, len(sim.pbx.calls))
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - t0
    await conn.close()
    await sim.stop()
    late.sort()
    return {
        "calls": n,
        "peak_concurrent": peak,
        "events": events,
        "seconds": elapsed,
        "events_per_s": events / elapsed,
        "late_p50_ms": 1000 * statistics.median(late),
        "late_p99_ms": 1000 * late[int(0.99 * (len(late) - 1))],
        "late_max_ms": 1000 * late[-1],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, nargs="+", default=[1000, 2000, 4000])
    ap.add_argument(
        "--speed",
        type=float,
        default=20.0,
        help="ScaledClock speed (a ~60 s call lasts 60/speed real seconds)",
    )
    ap.add_argument(
        "--cps",
        type=float,
        default=0.0,
        help="originates per real second (default 0: all at once)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for n in args.calls:
        r = asyncio.run(run(n, args.speed, args.cps))
        print(
            f"{r['calls']:>6} calls (peak {r['peak_concurrent']:>5} concurrent): "
            f"{r['events']:>8} events in {r['seconds']:.1f}s = {r['events_per_s']:>8,.0f} ev/s; "
            f"timer lateness p50 {r['late_p50_ms']:.1f} ms, p99 {r['late_p99_ms']:.1f} ms, "
            f"max {r['late_max_ms']:.1f} ms (real time)",
            flush=True,
        )


if __name__ == "__main__":
    main()
