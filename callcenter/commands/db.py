"""`callcenter db upgrade|status`."""

from __future__ import annotations

import argparse
import asyncio

from callcenter.database import create_engine, current_heads, expected_heads, upgrade
from callcenter.settings import load_settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("db", help="database schema: upgrade, status")
    dsub = p.add_subparsers(dest="db_command", required=True)
    up = dsub.add_parser("upgrade", help="apply every pending migration")
    up.set_defaults(func=_upgrade)
    st = dsub.add_parser("status", help="show the schema revision")
    st.set_defaults(func=_status)


def _upgrade(args: argparse.Namespace) -> int:
    url = load_settings().effective_database_url
    create_engine(url)  # creates the SQLite data folder when needed
    asyncio.run(upgrade(url))
    print(f"database schema is up to date ({', '.join(sorted(expected_heads()))})")
    return 0


def _status(args: argparse.Namespace) -> int:
    async def run() -> int:
        engine = create_engine(load_settings().effective_database_url)
        try:
            have = await current_heads(engine)
        finally:
            await engine.dispose()
        want = expected_heads()
        print(f"database: {', '.join(sorted(have)) or 'empty'}; code: {', '.join(sorted(want))}")
        if have != want:
            print("out of date: run `callcenter db upgrade`")
            return 1
        return 0

    return asyncio.run(run())
