"""`callcenter tokens create|list|revoke` — API tokens. A token's secret is printed once, when
it is created, and stored only hashed; lists show an id and a short prefix."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.bootstrap import Container, bootstrap
from crm_sync.auth import TokenError, create_token, list_tokens, parse_expiry, revoke_token
from crm_sync.models import Specialist


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tokens", help="API tokens: create, list, revoke")
    tsub = p.add_subparsers(dest="tokens_command", required=True)
    c = tsub.add_parser("create", help="issue a token; it is printed once and stored hashed")
    c.add_argument("who", help="specialist id, seat (PJSIP/8001) or exact name")
    c.add_argument("--label", help="what the token is for")
    c.add_argument(
        "--expires",
        help="30d, 12h, 2w; a date (2027-01-31: works through that day, desk time); or "
        "a date-time with its zone (default: no expiry)",
    )
    c.set_defaults(func=_create)
    ls = tsub.add_parser("list", help="tokens that let someone in (id, prefix, who, expiry)")
    ls.add_argument("who", nargs="?", help="only this user's (id, seat or exact name)")
    ls.add_argument("--all", action="store_true", help="revoked and expired ones too")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=_list)
    r = tsub.add_parser("revoke", help="revoke a token at once (its id from `tokens list`)")
    r.add_argument("token_id", type=int, help="the token's id (#N in `tokens list`)")
    r.set_defaults(func=_revoke)


def _with_session(work: Callable[[Container, AsyncSession], Awaitable[int]]) -> int:
    async def run() -> int:
        container = await bootstrap()
        try:
            async with container.sessions() as session:
                try:
                    return await work(container, session)
                except TokenError as exc:
                    print(exc.reason, file=sys.stderr)
                    return 2
        finally:
            await container.close()

    return asyncio.run(run())


async def _user(session: AsyncSession, who: str) -> Specialist | None:
    cond = [Specialist.seat == who, Specialist.name == who]
    if who.isdigit():
        cond.append(Specialist.id == int(who))
    return (await session.scalars(select(Specialist).where(or_(*cond)))).first()


def _no_user(who: str) -> int:
    print(f"no specialist {who!r}: see `callcenter specialists list`", file=sys.stderr)
    return 2


def _create(args: argparse.Namespace) -> int:
    async def work(container: Container, session: AsyncSession) -> int:
        now = container.clock.now()
        expires = None
        if args.expires:
            try:
                expires = parse_expiry(args.expires, now, container.settings.timezone)
            except ValueError as exc:
                print(str(exc), file=sys.stderr)
                return 2
        user = await _user(session, args.who)
        if user is None:
            return _no_user(args.who)
        secret, info = await create_token(
            session, user.id, now, label=args.label, expires_at=expires
        )
        await session.commit()
        print(secret)
        print(
            f"token #{info.id} for {info.specialist}"
            + (f", expires {info.expires_at:%Y-%m-%d %H:%M} UTC" if info.expires_at else "")
            + ": shown this once; revoke it with `callcenter tokens revoke "
            + f"{info.id}`",
            file=sys.stderr,
        )
        return 0

    return _with_session(work)


def _list(args: argparse.Namespace) -> int:
    async def work(container: Container, session: AsyncSession) -> int:
        who = None
        if args.who:
            user = await _user(session, args.who)
            if user is None:
                return _no_user(args.who)
            who = user.id
        tokens = await list_tokens(
            session, container.clock.now(), specialist_id=who, include_inactive=args.all
        )
        if args.json:
            print(json.dumps([t.to_dict() for t in tokens], ensure_ascii=False, indent=2))
        elif not tokens:
            print("no tokens" + ("" if args.all else " that let someone in (--all for every one)"))
        else:
            for t in tokens:
                print(t.line())
        return 0

    return _with_session(work)


def _revoke(args: argparse.Namespace) -> int:
    async def work(container: Container, session: AsyncSession) -> int:
        info = await revoke_token(session, args.token_id, container.clock.now())
        await session.commit()
        print(f"revoked: {info.line()}")
        return 0

    return _with_session(work)
