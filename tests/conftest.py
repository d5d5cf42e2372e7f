"""Shared fixtures. Database tests run twice: on SQLite and on the machine's real PostgreSQL.

Each backend gets a fresh database, migrated with the project's Alembic scripts, once per
test run (under `pytest -n`, as `make test` runs, once per worker: a PostgreSQL database of
its own, named at random, and a SQLite file in the worker's own temporary folder); after each
test every table is emptied except the seeded reference data.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.database import (
    create_engine,
    is_postgres,
    load_models,
    session_factory,
    upgrade,
)
from tests import loop_guard
from tests.chromium_support import SharedChromium

FIXTURES = Path(__file__).parent / "fixtures"
PG_ADMIN_URL = os.environ.get(
    "CALLCENTER_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
# Reference data seeded by migrations: kept between tests.
SEEDED_TABLES = {"contact_results", "alembic_version"}


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashes() -> Iterator[None]:
    """Passwords hashed with argon2's cheapest parameters in this process. The service's
    (argon2-cffi's defaults: 64 MiB, 3 passes) take 0.1-1.5 s a hash depending on the load,
    and every wired app hashes a few (each `Accounts` one dummy, each test login one); what
    the tests check, a right password accepted and a wrong one refused, does not depend on
    the cost. Processes the tests start (the CLI, the demo) keep the defaults."""
    from functools import partial

    from argon2 import PasswordHasher

    from callcenter.pages import accounts

    cheap = partial(PasswordHasher, time_cost=1, memory_cost=8, parallelism=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(accounts, "PasswordHasher", cheap)
        yield


@pytest.fixture(autouse=True)
def _release_the_tests_apps() -> Iterator[None]:
    """aiohttp keeps each (handler, apps) pair it built middlewares for in a module-level
    cache of 1,024 entries, so the web apps of the last few hundred tests stayed alive with
    their engines, routes and statement caches (840,000 objects more after 80 web tests,
    194,000 with the cache dropped): memory, and more for every full collection to walk. A
    service has one app; the cache is dropped after each test here."""
    yield
    from aiohttp import web_app

    web_app._cached_build_middleware.cache_clear()


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedChromium]:
    """The test process's one Chromium (tests/chromium_support.py), started by the first
    browser test that asks for it; each test gets its own contexts (`browser` fixture)."""
    shared = SharedChromium(tmp_path_factory.mktemp("chromium"))
    try:
        yield shared
    finally:
        shared.stop()


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


def _run(coro: object) -> None:
    import asyncio

    asyncio.run(coro)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite file, migrated once per test process; each test gets a copy."""
    path = tmp_path_factory.mktemp("db") / "template.db"
    _run(upgrade(f"sqlite+aiosqlite:///{path}"))
    # Everything into the main file (WAL mode), so that copying that one file is complete.
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def _sqlite_url(_sqlite_template: Path, tmp_path: Path) -> str:
    # A file of its own per test, not one file emptied between tests: a copy costs less than
    # ~40 DELETEs twice, and nothing a test leaves behind (a connection some task never gave
    # back, still in a write transaction) can hold the next test's SQLite write lock.
    path = tmp_path / "test.db"
    shutil.copyfile(_sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
def _postgres_url() -> Iterator[str]:
    import asyncpg  # type: ignore[import-untyped]

    name = f"cc_test_{uuid.uuid4().hex[:10]}"
    admin = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")

    async def create() -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    _run(create())
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    _run(upgrade(url))
    yield url
    _run(drop())


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The URL of a migrated, empty test database on each backend."""
    fixture = "_sqlite_url" if request.param == "sqlite" else "_postgres_url"
    return str(request.getfixturevalue(fixture))


# The sequences of the emptied tables back to their start, as TRUNCATE ... RESTART IDENTITY
# would: serial and identity columns alike (pg_depend links each to its table).
_RESTART_SEQUENCES = """
SELECT setval(seq.oid, ps.start_value, false)
  FROM pg_depend d
  JOIN pg_class seq ON seq.oid = d.objid AND seq.relkind = 'S'
  JOIN pg_class tbl ON tbl.oid = d.refobjid
  JOIN pg_namespace ns ON ns.oid = seq.relnamespace
  JOIN pg_sequences ps ON ps.schemaname = ns.nspname AND ps.sequencename = seq.relname
 WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
   AND d.deptype IN ('a', 'i') AND ps.last_value IS NOT NULL AND tbl.relname IN ({names})
"""


async def _empty_tables(engine: AsyncEngine) -> None:
    metadata = load_models()
    # Children before parents, so that no foreign key objects.
    names = [t.name for t in reversed(metadata.sorted_tables) if t.name not in SEEDED_TABLES]
    if engine.dialect.name == "postgresql":
        # owner_queue: PostgreSQL's only, outside the models (migration 0010_owner_queue); last,
        # as deleting specialists fires its clean-up trigger.
        names.append("owner_queue")
        # DELETE, not TRUNCATE: a TRUNCATE of ~40 tables gives each new files (0.3-1.5 s a
        # time, twice per test, most of what the PostgreSQL half of the suite took); deleting
        # the few rows a test wrote takes milliseconds. One round trip for all of it.
        script = "; ".join(f"DELETE FROM {name}" for name in names)
        listed = ", ".join(f"'{name}'" for name in names)
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.execute(
                f"{script}; {_RESTART_SEQUENCES.format(names=listed)}"
            )
        return
    async with engine.begin() as conn:
        for name in names:
            await conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    shared = is_postgres(eng)  # SQLite: a fresh file per test (`_sqlite_url`)
    if shared:
        await _empty_tables(eng)
    try:
        yield eng
    finally:
        if shared:
            await _empty_tables(eng)
        await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
async def session(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessions() as s:
        yield s


# The garbage collector, tuned for a test process: the default (a young collection every
# 700 allocations) ran ~130 collections a second through the web and dialer tests, a sixth
# of their CPU (gc.callbacks, tests/test_api_contract.py + test_web_signin.py +
# test_board_api.py: 5.3 s of 30 s; 1.9 s with these). What the tests check does not depend
# on when cycles are collected; the service keeps Python's thresholds (docs/benchmarks.md).
GC_THRESHOLDS = (10_000, 20, 50)


def pytest_configure(config: pytest.Config) -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    loop_guard.install()


def pytest_collection_finish(session: pytest.Session) -> None:
    """What exists once the tests are collected (modules, test items, the models) lives to
    the end: frozen, so the full collections stop walking it again and again."""
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests first: `make test` hands out whole files to its workers in this order
    (`--dist loadfile --no-loadscope-reorder`), so the files of the long tests start at once,
    each on its own worker, while the others share out the short ones, instead of one long
    test left running alone at the end. The order is the same in every worker, as xdist
    requires."""
    items.sort(key=lambda item: not _long(item))  # stable: the rest keep their order


def _long(item: pytest.Item) -> bool:
    timeout = item.get_closest_marker("timeout")
    return item.get_closest_marker("slow") is not None or bool(
        timeout and timeout.args and timeout.args[0] > 300
    )
