"""Database engine, sessions and migrations. Nothing here is module-level state:
`bootstrap()` makes one engine per process and passes it on."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import io
import logging
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Every package that owns tables; imported so that Base.metadata knows all of them.
MODEL_MODULES = (
    "crm_sync.models",
    "schedules.models",
    "dialer.models",
    "recordings.models",
    "crm_sync.auth",
    "crm_sync.mail",
    "callcenter.pages.models",
    "callcenter.reports.models",
    "callcenter.board.models",
)


class SchemaOutOfDate(RuntimeError):
    """The database is not at the schema this code expects."""


def load_models() -> MetaData:
    for name in MODEL_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    from crm_sync.models import Base

    return Base.metadata


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC")


class _SqliteWriters:
    """Who holds SQLite's one write lock, and since when: written to the log when another
    writer gives up with "database is locked", so that the holder is named (its task and
    where it is waiting) instead of only its victim. A dict update per write statement and
    per commit; nothing else."""

    def __init__(self, engine: Any) -> None:
        self._open: dict[int, tuple[float, asyncio.Task[Any] | None, str]] = {}
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._ended)
        event.listen(engine, "rollback", self._ended)
        event.listen(engine, "handle_error", self._failed)
        event.listen(engine.pool, "checkin", self._checked_in)

    def _statement(self, conn: Connection, _c: Any, statement: str, *_args: Any) -> None:
        key = id(conn.connection.dbapi_connection)
        if key not in self._open and statement.lstrip()[:6].upper() in _WRITES:
            try:
                task = asyncio.current_task()
            except RuntimeError:  # no running loop (migrations in a thread)
                task = None
            self._open[key] = (time.monotonic(), task, statement[:120])

    def _ended(self, conn: Connection) -> None:
        self._open.pop(id(conn.connection.dbapi_connection), None)

    def _checked_in(self, dbapi_conn: Any, _record: Any) -> None:
        self._open.pop(id(dbapi_conn), None)

    def _failed(self, ctx: Any) -> None:
        if "database is locked" not in str(ctx.original_exception):
            return
        now = time.monotonic()
        victim = ctx.connection.connection.dbapi_connection if ctx.connection is not None else None
        for key, (since, task, first) in list(self._open.items()):
            if key == id(victim):
                continue
            where = "(no task, or the task has ended: a connection not given back)"
            if task is not None and not task.done():
                out = io.StringIO()
                task.print_stack(limit=20, file=out)
                where = out.getvalue()
            log.error(
                "SQLite write lock held for %.1f s by task %s, first write %r; it waits at:\n%s",
                now - since,
                task.get_name() if task is not None else "-",
                first,
                where,
            )


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        _SqliteWriters(engine.sync_engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def expected_heads() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def _upgrade_sync(url: str, target: str) -> None:
    command.upgrade(alembic_config(url), target)


async def upgrade(url: str, target: str = "heads") -> None:
    """Bring the schema up to date (alembic runs its own event loop, so in a thread)."""
    await asyncio.to_thread(_upgrade_sync, url, target)


async def current_heads(engine: AsyncEngine) -> set[str]:
    def _heads(conn: Connection) -> set[str]:
        return set(MigrationContext.configure(conn).get_current_heads())

    async with engine.connect() as conn:
        return await conn.run_sync(_heads)


async def ensure_schema_current(engine: AsyncEngine) -> None:
    have = await current_heads(engine)
    want = expected_heads()
    if have != want:
        state = ", ".join(sorted(have)) or "empty"
        raise SchemaOutOfDate(
            f"the database schema is out of date (at {state}; this version needs "
            f"{', '.join(sorted(want))}). Run `callcenter db upgrade` and start again."
        )
