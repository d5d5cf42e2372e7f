"""`callcenter pbx-sim --port 5038` — run the simulated Asterisk (AMI) for demos, manual
tests and load tests. See docs/simulator.md."""

from __future__ import annotations

import argparse
import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

from common.clock import Clock, ScaledClock, SystemClock
from dialer.simulator import PbxSimulator, Scenario

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "pbx-sim",
        help="run the PBX simulator (an AMI server that behaves like Asterisk 22)",
        description=(
            "Customers behave by the last digit of the number (0 answers, 1 busy, 2 no answer, "
            "3 congestion, 4 hangs up early, 5 switched off, 6 wrong number, 7 long call, "
            "8/9 press 1/2) unless --scenario gives answer rates and ring/talk distributions."
        ),
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5038)
    p.add_argument("--user", default="dialer", help="AMI user name (default %(default)s)")
    p.add_argument("--secret", default="dialer-secret", help="AMI secret (default %(default)s)")
    p.add_argument(
        "--read",
        default="all",
        help="the user's manager.conf read classes, e.g. call,cdr,user,dialplan: "
        "events of other classes are not sent (default %(default)s)",
    )
    p.add_argument(
        "--monitor-dir",
        type=Path,
        default=None,
        help="write MixMonitor WAV files here (default: none written)",
    )
    p.add_argument("--scenario", type=Path, default=None, help="scenario file (.json or .toml)")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="run the PBX clock this many times faster than real time",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        scenario = Scenario.load(args.scenario) if args.scenario else None
    except (OSError, ValueError) as exc:
        print(f"pbx-sim: bad scenario file: {exc}")
        return 2
    if args.speed <= 0:
        print("pbx-sim: --speed must be positive")
        return 2
    clock: Clock = SystemClock() if args.speed == 1 else ScaledClock(datetime.now(UTC), args.speed)
    try:
        asyncio.run(_serve(args, clock, scenario))
    except OSError as exc:
        print(f"pbx-sim: cannot listen on {args.host}:{args.port}: {exc}")
        return 1
    return 0


async def _serve(args: argparse.Namespace, clock: Clock, scenario: Scenario | None) -> None:
    sim = PbxSimulator(
        clock=clock,
        users={args.user: args.secret},
        monitor_dir=args.monitor_dir,
        scenario=scenario,
        read={args.user: args.read},
    )
    await sim.start(args.host, args.port)
    print(
        f"pbx-sim: AMI on {sim.host}:{sim.port} (user {args.user}, speed x{args.speed:g})",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
