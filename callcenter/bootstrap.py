"""The composition root: the one place that knows every package and wires them together.

`bootstrap()` builds the process's objects (settings, clock, engine, sessions) once;
`build_app()` turns them into an aiohttp application whose `cleanup_ctx` owns every
background task, so stopping the app stops everything cleanly.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.database import create_engine, ensure_schema_current, session_factory
from callcenter.settings import Settings, load_settings
from callcenter.web import create_app
from common.clock import Clock, SystemClock

log = logging.getLogger(__name__)

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


@dataclass
class Container:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    route_tables: list[web.RouteTableDef] = field(default_factory=list)
    cleanup_contexts: list[CleanupCtx] = field(default_factory=list)
    app_values: dict[web.AppKey[Any], object] = field(default_factory=dict)
    # Run before the server waits for open requests (e.g. ending live event streams).
    shutdown_hooks: list[Callable[[web.Application], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        await self.engine.dispose()


async def bootstrap(
    settings: Settings | None = None,
    clock: Clock | None = None,
    *,
    check_schema: bool = True,
) -> Container:
    settings = settings or load_settings()
    engine = create_engine(settings.effective_database_url)
    if check_schema:
        try:
            await ensure_schema_current(engine)
        except Exception:
            await engine.dispose()
            raise
    return Container(
        settings=settings,
        clock=clock or SystemClock(),
        engine=engine,
        sessions=session_factory(engine),
    )


def build_app(container: Container, *, owns_engine: bool = True) -> web.Application:
    """`owns_engine=False` when someone else (a test fixture) disposes the engine."""
    app = create_app(container.sessions, container.route_tables, container.clock)
    for key, value in container.app_values.items():
        app[key] = value
    app.cleanup_ctx.extend(container.cleanup_contexts)
    app.on_shutdown.extend(container.shutdown_hooks)

    async def dispose_engine(_app: web.Application) -> AsyncIterator[None]:
        yield
        await container.close()

    if owns_engine:
        app.cleanup_ctx.append(dispose_engine)
    return app
