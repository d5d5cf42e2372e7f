"""`callcenter tokens create SPECIALIST` — issue an API token (shown once)."""

from __future__ import annotations

import argparse
import asyncio

from sqlalchemy import or_, select

from callcenter.bootstrap import bootstrap
from crm_sync.auth import issue_token
from crm_sync.models import Specialist


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tokens", help="API tokens for specialists and supervisors")
    tsub = p.add_subparsers(dest="tokens_command", required=True)
    c = tsub.add_parser("create", help="issue a token; it is printed once and stored hashed")
    c.add_argument("who", help="specialist id, seat (PJSIP/8001) or exact name")
    c.add_argument("--label", help="what the token is for")
    c.set_defaults(func=_create)


def _create(args: argparse.Namespace) -> int:
    async def run() -> int:
        container = await bootstrap()
        try:
            async with container.sessions() as session:
                cond = [Specialist.seat == args.who, Specialist.name == args.who]
                if args.who.isdigit():
                    cond.append(Specialist.id == int(args.who))
                user = (await session.scalars(select(Specialist).where(or_(*cond)))).first()
                if user is None:
                    print(f"no specialist {args.who!r}: add one with `callcenter specialists add`")
                    return 2
                token = await issue_token(session, user.id, args.label)
                await session.commit()
                print(token)
                return 0
        finally:
            await container.close()

    return asyncio.run(run())
