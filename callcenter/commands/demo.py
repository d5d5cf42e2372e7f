"""`callcenter demo` — what `make run` shows a newcomer: a calling day in a few minutes."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from callcenter.demo import DemoOptions, run_demo
from callcenter.demo_folder import DemoRefused


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="play a calling day on the embedded default (its own data folder), then serve the API",
        description=(
            "Uses the same settings as every command (CALLCENTER_* variables, --config). The "
            "data folder is marked as the demo's and locked while the demo runs: a folder "
            "holding other files, or one a running demo holds, is refused, and a reset removes "
            "only what a demo wrote."
        ),
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="the demo's folder (default: CALLCENTER_DATA_DIR if set, else data/demo)",
    )
    p.add_argument("--policies", type=int, default=2000)
    p.add_argument("--specialists", type=int, default=20)
    p.add_argument(
        "--speed", type=float, default=150.0, help="clock speed-up (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--port", type=int, help="HTTP port (default: CALLCENTER_HTTP__PORT if set, else 8080)"
    )
    p.add_argument("--exit", action="store_true", help="stop after the day instead of serving")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    opts = DemoOptions(
        data_dir=args.data_dir,
        policies=args.policies,
        specialists=args.specialists,
        speed=args.speed,
        seed=args.seed,
        port=args.port,
        keep_running=not args.exit,
    )
    try:
        asyncio.run(run_demo(opts))
    except KeyboardInterrupt:
        return 0
    except DemoRefused as exc:
        print(f"demo refused: {exc}")
        return 1
    except OSError as exc:
        print(f"demo: {exc}. Is the port taken? Use make run PORT=… (or --port).")
        return 1
    return 0
