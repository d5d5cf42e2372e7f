"""`callcenter users add|passwd|disable|list` — web sign-in logins (the seat page).

Passwords are read from the terminal (no echo) or, for scripts, one line on stdin with
--password-stdin; never from the command line, where `ps` and shell history would keep them.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from callcenter.bootstrap import bootstrap
from callcenter.pages.accounts import Accounts
from callcenter.pages.exceptions import PagesError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("users", help="web sign-in logins for specialists and supervisors")
    usub = p.add_subparsers(dest="users_command", required=True)
    add = usub.add_parser("add", help="create a login for a specialist")
    add.add_argument("who", help="specialist id, seat (PJSIP/8001) or exact name")
    add.add_argument("username", help="the name they sign in with")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(func=lambda a: _run(lambda acc: acc.add(a.who, a.username, _password(a))))
    pw = usub.add_parser("passwd", help="set a new password (lifts a lockout)")
    pw.add_argument("who", help="user name, specialist id, seat or name")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    pw.set_defaults(func=lambda a: _run(lambda acc: acc.set_password(a.who, _password(a))))
    off = usub.add_parser("disable", help="no more sign-ins (web sessions end, tokens revoked)")
    off.add_argument("who", help="user name, specialist id, seat or name")
    off.set_defaults(func=lambda a: _run(lambda acc: acc.disable(a.who)))
    ls = usub.add_parser("list", help="every user with their login")
    ls.set_defaults(func=lambda a: _run(lambda acc: acc.list()))


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise PagesError("the two passwords differ; nothing was changed")
    return first


def _run(work: Callable[[Accounts], Awaitable[Any]]) -> int:
    async def run() -> int:
        container = await bootstrap()
        try:
            try:
                result = await work(Accounts(container.sessions, container.clock))
            except PagesError as exc:
                print(f"error: {exc.reason}", file=sys.stderr)
                return 2
            print(json.dumps(result, ensure_ascii=False, indent=2))
            return 0
        finally:
            await container.close()

    try:
        return asyncio.run(run())
    except PagesError as exc:
        print(f"error: {exc.reason}", file=sys.stderr)
        return 2
