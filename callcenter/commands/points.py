"""`callcenter points rules|rule|recompute` and `callcenter reports refresh`: the points rules
(积分规则) and their recomputation, and the reports' rollup by hand (docs/reports.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from callcenter.bootstrap import Container, bootstrap
from common.errors import DomainError
from common.principal import Principal
from crm_sync import sales
from crm_sync.models import LeadKind, Specialist
from crm_sync.points import RuleInvalid, parse_bands


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("points", help="points rules (积分规则) and recomputing a period's points")
    psub = p.add_subparsers(dest="points_command", required=True)
    ls = psub.add_parser("rules", help="the rules, per kind of lead and the day each starts")
    ls.set_defaults(func=_rules)
    add = psub.add_parser("rule", help="a rule from a day on (tomorrow or later)")
    add.add_argument("--kind", required=True, choices=[k.value for k in LeadKind])
    add.add_argument("--from", dest="start", required=True, type=date.fromisoformat)
    add.add_argument(
        "--band",
        action="append",
        required=True,
        metavar="PREMIUM:POINTS",
        help="from this premium on, these points (repeat: --band 0:10 --band 2000:20)",
    )
    add.add_argument("--red-star", type=int, default=0, help="bonus points for a red star")
    add.add_argument("--by", required=True, type=int, help="the supervisor's specialist id")
    add.set_defaults(func=_rule)
    rc = psub.add_parser("recompute", help="score a period's sales again (same answer each time)")
    rc.add_argument("--from", dest="start", required=True, type=date.fromisoformat)
    rc.add_argument("--to", dest="end", required=True, type=date.fromisoformat)
    rc.add_argument("--json", action="store_true", help="print JSON")
    rc.set_defaults(func=_recompute)

    r = sub.add_parser("reports", help="the reports' daily rollup")
    rsub = r.add_subparsers(dest="reports_command", required=True)
    rf = rsub.add_parser("refresh", help="roll the days of a period up again")
    rf.add_argument("--from", dest="start", required=True, type=date.fromisoformat)
    rf.add_argument("--to", dest="end", required=True, type=date.fromisoformat)
    rf.set_defaults(func=_refresh)


def _run(work: Callable[[Container], Awaitable[int]]) -> int:
    async def run() -> int:
        container = await bootstrap()
        try:
            return await work(container)
        except DomainError as exc:
            print(f"error: {exc.reason}", file=sys.stderr)
            return 2
        finally:
            await container.close()

    return asyncio.run(run())


def _print(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _rules(_args: argparse.Namespace) -> int:
    async def work(c: Container) -> int:
        async with c.sessions() as s:
            _print(await sales.list_rules(s))
        return 0

    return _run(work)


def _bands(values: list[str]) -> list[tuple[Decimal, int]]:
    try:
        return parse_bands(values)
    except RuleInvalid as exc:
        raise SystemExit(f"--band: {exc}") from None


def _rule(args: argparse.Namespace) -> int:
    bands = _bands(args.band)

    async def work(c: Container) -> int:
        now = c.clock.now()
        async with c.sessions() as s:
            spec = await s.get(Specialist, args.by)
            if spec is None or spec.role not in ("supervisor", "maintainer"):
                print(f"error: specialist {args.by} is not a supervisor", file=sys.stderr)
                return 2
            today = now.astimezone(ZoneInfo(c.settings.timezone)).date()
            who = Principal(spec.id, spec.name, spec.role)
            view = await sales.add_rule(
                s, who, args.kind, args.start, bands, args.red_star, now, today
            )
            await s.commit()
        _print(view)
        return 0

    return _run(work)


def _recompute(args: argparse.Namespace) -> int:
    async def work(c: Container) -> int:
        async with c.sessions() as s:
            done = await sales.recompute_points(s, args.start, args.end, None, datetime.now(UTC))
            await s.commit()
        if args.json:
            _print(done.as_dict())
        else:
            print(
                f"{done.sales} sales from {args.start} to {args.end}: {done.points} points, "
                f"{done.changed} changed"
            )
        return 0

    return _run(work)


def _refresh(args: argparse.Namespace) -> int:
    from callcenter.reports.services import check_period
    from callcenter.reports.wiring import reports_service
    from schedules.config import DeskCalendar

    async def work(c: Container) -> int:
        service = reports_service(c, DeskCalendar.from_settings(c.settings))
        period = check_period(args.start, args.end)
        n = await service.refresh(period, force=True, progress=True)
        print(f"rolled up {n} day(s)")
        return 0

    return _run(work)
