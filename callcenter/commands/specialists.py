"""`callcenter specialists add|list|deactivate|activate|leave|return`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.bootstrap import bootstrap
from callcenter.settings import Settings
from crm_sync.exceptions import CrmError
from crm_sync.specialists import ROLES, add_specialist, list_specialists, set_specialist_state


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("specialists", help="service specialists (服务专员) and their seats")
    ssub = p.add_subparsers(dest="specialists_command", required=True)
    add = ssub.add_parser("add", help="add a specialist with a softphone seat")
    add.add_argument("--name", required=True, help="the specialist's name")
    add.add_argument("--seat", required=True, help="the endpoint the dialer rings, e.g. PJSIP/8001")
    add.add_argument("--branch", help="branch code (机构), e.g. 1301")
    add.add_argument(
        "--role",
        choices=ROLES,
        default="specialist",
        help="supervisor/maintainer: reviews, distribution, every lead (default: specialist)",
    )
    add.add_argument("--json", action="store_true", help="print the new specialist as JSON")
    add.set_defaults(func=_add)
    ls = ssub.add_parser("list", help="list specialists")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.add_argument("--active", action="store_true", help="only active specialists")
    ls.set_defaults(func=_list)
    for name, help_text, state in (
        ("deactivate", "stop handing out leads to a specialist (left the desk)", {"active": False}),
        ("activate", "make a deactivated specialist active again", {"active": True}),
        (
            "leave",
            "mark a specialist on leave (请假): no leads until they return",
            {"on_leave": True},
        ),
        ("return", "a specialist is back from leave", {"on_leave": False}),
    ):
        cmd = ssub.add_parser(name, help=help_text)
        cmd.add_argument("who", help="specialist id or seat (PJSIP/8001)")
        cmd.set_defaults(func=_state_command(name, state))


def _with_session(work: Callable[[AsyncSession, Settings], Awaitable[int]]) -> int:
    async def run() -> int:
        container = await bootstrap()
        try:
            async with container.sessions() as session:
                try:
                    code = await work(session, container.settings)
                except CrmError as exc:
                    await session.rollback()
                    print(f"error: {exc}", file=sys.stderr)
                    return 2
                await session.commit()
                return code
        finally:
            await container.close()

    return asyncio.run(run())


def _add(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, settings: Settings) -> int:
        s = await add_specialist(
            session,
            args.name,
            args.seat,
            args.branch,
            args.role,
            technologies=settings.seat_technologies,
        )
        if args.json:
            print(
                json.dumps(
                    {"id": s.id, "name": s.name, "seat": s.seat, "role": s.role},
                    ensure_ascii=False,
                )
            )
        else:
            print(f"added {s.role} #{s.id} {s.name} on {s.seat}")
        return 0

    return _with_session(work)


def _list(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession, _settings: Settings) -> int:
        rows = await list_specialists(session, include_inactive=not args.active)
        if args.json:
            print(json.dumps(rows, ensure_ascii=False, indent=2))
            return 0
        if not rows:
            print("no specialists yet: add one with `callcenter specialists add`")
            return 0
        print(f"{'id':>4}  {'name':<12} {'seat':<18} {'branch':<8} state")
        for r in rows:
            print(
                f"{r['id']:>4}  {r['name']:<12} {r['seat']:<18} {r['branch'] or '-':<8} {_state(r)}"
            )
        return 0

    return _with_session(work)


def _state(r: dict[str, Any]) -> str:
    if not r["active"]:
        return "inactive"
    return "on leave" if r["on_leave"] else "active"


def _state_command(name: str, state: dict[str, bool]) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        async def work(session: AsyncSession, _settings: Settings) -> int:
            s = await set_specialist_state(session, args.who, **state)
            label = _state({"active": s.active, "on_leave": s.on_leave})
            print(f"specialist #{s.id} {s.name} ({s.seat}): {label}")
            return 0

        return _with_session(work)

    command.__name__ = f"_{name}"
    return command
