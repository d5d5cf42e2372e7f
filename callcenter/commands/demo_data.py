"""`callcenter demo-data --policies N [--out FILE] [--format csv|xlsx] [--seed S]`."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from callcenter.settings import load_settings
from common.clock import SystemClock
from crm_sync.demo import write_demo_file


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo-data",
        help="write a realistic core-system export (CSV or XLSX) for demos and benchmarks",
    )
    p.add_argument("--policies", type=int, default=200, help="number of rows (default 200)")
    p.add_argument("--out", type=Path, help="output file (default demo-renewals.<format>)")
    p.add_argument("--format", choices=["csv", "xlsx"], help="default: from --out, else csv")
    p.add_argument("--seed", type=int, default=1, help="same seed and day, same file")
    p.add_argument(
        "--encoding",
        choices=["utf-8-sig", "utf-8", "gb18030"],
        default="utf-8-sig",
        help="CSV encoding (default UTF-8 with BOM, as Excel saves 'CSV UTF-8')",
    )
    p.add_argument(
        "--today",
        type=date.fromisoformat,
        help="the day expiry dates count from (YYYY-MM-DD; default today)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.policies < 1:
        print("error: --policies must be at least 1")
        return 2
    fmt = args.format or (
        "xlsx" if args.out is not None and args.out.suffix.lower() == ".xlsx" else "csv"
    )
    out = args.out or Path(f"demo-renewals.{fmt}")
    today = args.today or SystemClock().now().astimezone(ZoneInfo(load_settings().timezone)).date()
    write_demo_file(
        out, args.policies, seed=args.seed, today=today, file_format=fmt, encoding=args.encoding
    )
    print(f"wrote {args.policies} policies to {out}")
    return 0
