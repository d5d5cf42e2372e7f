"""Database engine, sessions and migrations. Nothing here is module-level state:
`bootstrap()` makes one engine per process and passes it on."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import io
import logging
import time
import weakref
from functools import cache
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
    per commit; nothing else.

    A listener that raises changes what it listens to (a rollback that fails leaves the
    connection out of the pool, and turns a task's cancellation into another error), so
    each one swallows its own failures: this is a diagnosis, never a behaviour."""

    def __init__(self, engine: Any) -> None:
        self._open: dict[int, tuple[float, asyncio.Task[Any] | None, str]] = {}
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._ended)
        event.listen(engine, "rollback", self._ended)
        event.listen(engine, "handle_error", self._failed)
        for name in ("checkin", "invalidate", "close"):
            event.listen(engine.pool, name, self._gone)

    @staticmethod
    def _key(conn: Connection) -> int | None:
        try:
            return id(conn.connection.dbapi_connection)
        except Exception:  # an invalidated connection: the pool events clean it up
            return None

    def _statement(self, conn: Connection, _c: Any, statement: str, *_args: Any) -> None:
        key = self._key(conn)
        if key is None or key in self._open or statement.lstrip()[:6].upper() not in _WRITES:
            return
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running loop (migrations in a thread)
            task = None
        self._open[key] = (time.monotonic(), task, statement[:120])

    def _ended(self, conn: Connection) -> None:
        key = self._key(conn)
        if key is not None:
            self._open.pop(key, None)

    def _gone(self, dbapi_conn: Any, *_args: Any) -> None:
        self._open.pop(id(dbapi_conn), None)

    def _failed(self, ctx: Any) -> None:
        if "database is locked" not in str(ctx.original_exception):
            return
        try:
            self._log_holders(self._key(ctx.connection) if ctx.connection is not None else None)
        except Exception:
            log.exception("could not name the holder of SQLite's write lock")

    def _log_holders(self, victim: int | None) -> None:
        now = time.monotonic()
        for key, (since, task, first) in list(self._open.items()):
            if key == victim:
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


class _SqliteCursors:
    """Closes a connection's cursors, in its own thread, before the connection is closed.

    Python 3.11's sqlite3 closes with `sqlite3_close_v2`: a connection closed while one of
    its statements is still active (a task cancelled between a statement and the fetch of its
    rows, a streamed result dropped half-read) lives on as a zombie that keeps its transaction,
    and with it SQLite's write lock, until the garbage collector frees that cursor. Every
    other writer meanwhile waits out its busy timeout and fails with "database is locked".
    Ending the statements first lets the close roll the transaction back at once."""

    def __init__(self, engine: Any) -> None:
        self._cursors: dict[int, weakref.WeakSet[Any]] = {}
        event.listen(engine, "before_cursor_execute", self._executing)
        for name in ("invalidate", "close", "close_detached"):
            event.listen(engine.pool, name, self._closing)

    def _executing(self, conn: Connection, cursor: Any, *_args: Any) -> None:
        raw = getattr(getattr(cursor, "_cursor", None), "_cursor", None)  # the sqlite3 cursor
        if raw is None:
            return
        key = _SqliteWriters._key(conn)
        if key is not None:
            self._cursors.setdefault(key, weakref.WeakSet()).add(raw)

    def _closing(self, dbapi_conn: Any, *_args: Any) -> None:
        cursors = list(self._cursors.pop(id(dbapi_conn), ()))
        driver = getattr(dbapi_conn, "_connection", None)  # the aiosqlite connection
        queue = getattr(driver, "_tx", None)
        if not cursors or queue is None or getattr(driver, "_connection", None) is None:
            return

        def close_all() -> None:
            for cursor in cursors:
                try:
                    cursor.close()
                except Exception:  # already closed, or its connection is: nothing to end
                    pass

        # aiosqlite runs its thread's queue in order: this goes before the close queued next.
        queue.put_nowait((None, close_all))


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        _SqliteWriters(engine.sync_engine)
        _SqliteCursors(engine.sync_engine)
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


@cache
def expected_heads() -> frozenset[str]:
    """The migrations' heads this code needs; read once per process, since alembic loads
    every migration file to find them (a third of wiring a service in the tests)."""
    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


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
