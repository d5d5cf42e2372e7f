"""`callcenter distribute [--date D] [--dry-run] [--json]`: the daily random equal allocation.

Runs the renewal timeline for the day (NEW -> DUE, lapsed and callback leads), then deals the
due leads to the eligible specialists, in one transaction, and prints what it closed (leads
taken back from specialists included), who got how many and who was skipped and why.
`--dry-run` does all of it and rolls back. A day more than three days from today is refused
(with what it would close) unless `--force`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date

from callcenter.database import (
    SchemaOutOfDate,
    create_engine,
    ensure_schema_current,
    session_factory,
)
from callcenter.settings import Settings, load_settings
from common.clock import Clock, SystemClock
from schedules.config import DeskCalendar
from schedules.exceptions import DistributionDayRefused
from schedules.holidays import HolidayFileError
from schedules.services import DayWork, DeskService


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "distribute",
        help="deal today's due leads to the specialists (随机等额分配)",
        description=(
            "Applies the renewal timeline for the day, then deals the due leads so that every "
            "eligible specialist's count for the day differs by at most one. Running it again "
            "the same day deals only leads that became due since."
        ),
    )
    p.add_argument("--date", help="the distribution day, YYYY-MM-DD (default: today, local)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="show the deal and the leads it would close or take back; write nothing",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="run for a day more than 3 days from today (refused without it)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--seed", type=int, help="shuffle seed (default: a fresh random one)")
    p.add_argument(
        "--no-timeline", action="store_true", help="deal only; do not apply the timeline first"
    )
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
        desk = DeskCalendar.from_settings(settings)
    except (HolidayFileError, ValueError) as exc:
        print(f"bad settings: {exc}", file=sys.stderr)
        return 2
    try:
        day = date.fromisoformat(args.date) if args.date else None
    except ValueError:
        print(f"--date {args.date!r} is not YYYY-MM-DD", file=sys.stderr)
        return 2
    return asyncio.run(distribute(args, settings, desk, day, SystemClock()))


async def distribute(
    args: argparse.Namespace,
    settings: Settings,
    desk: DeskCalendar,
    day: date | None,
    clock: Clock,
) -> int:
    engine = create_engine(settings.effective_database_url)
    try:
        try:
            await ensure_schema_current(engine)
        except SchemaOutOfDate as exc:
            print(str(exc), file=sys.stderr)
            return 1
        try:
            work = await DeskService(session_factory(engine), desk, clock).distribute(
                day,
                dry_run=args.dry_run,
                seed=args.seed,
                timeline=not args.no_timeline,
                force=args.force,
            )
        except DistributionDayRefused as exc:
            if args.json:
                body = {"error": exc.reason, "would": exc.preview.to_dict()}
                print(json.dumps(body, ensure_ascii=False, indent=2))
            else:
                print(f"refused: {exc.reason}", file=sys.stderr)
                print("what it would do:")
                _print(exc.preview, dry_run=True)
            return 2
    finally:
        await engine.dispose()
    if args.json:
        print(json.dumps(work.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print(work, dry_run=args.dry_run)
    return 0


def _print(work: DayWork, *, dry_run: bool) -> None:
    for n in work.notes:
        print(n)
    if work.timeline is not None:
        print(("(would be) " if dry_run else "") + work.timeline.line())
        print("\n".join(work.timeline.closing_lines(dry_run)))
    print("\n".join(work.distribution.lines()))
