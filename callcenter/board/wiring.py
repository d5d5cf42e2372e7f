"""Wiring the board into the service (called by callcenter.service.wire): this process's
publisher on the dialer's events, the hub that reads the whole desk, the figures, the
supervisors' actions, the page's templates in each language, and the tasks that run them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from callcenter.board import http
from callcenter.board.figures import BoardFigures
from callcenter.board.live import BoardHub
from callcenter.board.publisher import BoardPublisher
from callcenter.board.remedies import Remedies
from callcenter.board.services import ACTIONS_CHANNEL, Supervising
from callcenter.bootstrap import Container
from callcenter.jobs import parse_time
from callcenter.pages import i18n
from callcenter.pages.wiring import STATIC as PAGES_STATIC
from callcenter.pages.wiring import TEMPLATES as PAGES_TEMPLATES
from callcenter.pages.wiring import static_url_for
from dialer.engine import DialerEngine

log = logging.getLogger(__name__)

HERE = Path(__file__).parent


def environments() -> dict[str, jinja2.Environment]:
    """The pages' templates and catalogs, with the board's on top."""
    pages, board = i18n.load(), i18n.load(HERE / "locale")
    envs = {}
    for lang in i18n.LANGUAGES:
        env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(
                [
                    jinja2.FileSystemLoader(HERE / "templates"),
                    jinja2.FileSystemLoader(PAGES_TEMPLATES),
                ]
            ),
            autoescape=True,
            extensions=["jinja2.ext.i18n"],
            undefined=jinja2.StrictUndefined,
        )
        env.install_gettext_translations(pages[lang].merge(board[lang]), newstyle=True)  # type: ignore[attr-defined]
        env.globals["static"] = static_url_for(PAGES_STATIC)
        board_static = static_url_for(HERE / "static")
        env.globals["board_static"] = lambda name, url=board_static: url(name).replace(
            "/static/", "/board/static/", 1
        )
        envs[lang] = env
    return envs


class Board:
    def __init__(self, container: Container, engine: DialerEngine, hours_for: Any, tz: str) -> None:
        cfg = container.settings.board
        self.publisher = BoardPublisher(
            engine,
            container.sessions,
            container.clock,
            coalesce_seconds=cfg.coalesce_seconds,
            heartbeat_seconds=cfg.heartbeat_seconds,
            write_seconds=cfg.write_seconds,
        )
        figures = BoardFigures(
            container.sessions,
            hours_for,
            cfg,
            tz,
            parse_time(container.settings.result_deadline),
        )
        self.hub = BoardHub(
            container.engine, container.sessions, container.clock, cfg, figures, tz=tz
        )
        self.supervising = Supervising(
            container.sessions,
            container.clock,
            engine,
            self.publisher.owner,
            self._call,
            seats=self._seat,
            tz=tz,
        )
        self.remedies = Remedies(
            container.sessions,
            container.clock,
            hours_for,
            tz,
            self.publisher.owner,
            parse_time(container.settings.result_deadline),
        )
        # The supervisors' actions come on the board's listening connection.
        self.hub.listener.listen(ACTIONS_CHANNEL, self._action_notified)
        self.publisher.local = self.hub.take
        self.hub.local_owner = self.publisher.owner
        self._actions = asyncio.Queue[int]()
        self.cfg = cfg

    def _call(self, attempt_id: str) -> tuple[str, dict[str, Any]] | None:
        found = self.hub.entries.get(("call", attempt_id))
        return None if found is None else (found[0], found[2])

    def _seat(self, specialist_id: str) -> tuple[str, dict[str, Any]] | None:
        found = self.hub.entries.get(("seat", specialist_id))
        return None if found is None else (found[0], found[2])

    def _action_notified(self, payload: str) -> None:
        owner, _, action_id = payload.rpartition(" ")
        if owner == self.publisher.owner and action_id.isdigit():
            self._actions.put_nowait(int(action_id))

    async def run_actions(self) -> None:
        """Actions other processes addressed to this one (woken by NOTIFY; a scan for
        missed ones every heartbeat)."""
        while True:
            try:
                action_id = await asyncio.wait_for(self._actions.get(), self.cfg.heartbeat_seconds)
                ids = [action_id]
            except TimeoutError:
                ids = await self.supervising.pending_for_me()
            for i in ids:
                try:
                    await self.supervising.carry_out(i)
                except Exception:
                    log.exception("board: supervisor action %s failed", i)

    def install(self, container: Container) -> None:
        self.publisher.attach()
        container.route_tables.append(http.routes)
        container.app_values[http.BOARD_HUB] = self.hub
        container.app_values[http.SUPERVISING] = self.supervising
        container.app_values[http.REMEDIES] = self.remedies
        for lang, env in environments().items():
            container.app_values[http.BOARD_JINJA[lang]] = env

        async def board_ctx(_app: web.Application) -> AsyncIterator[None]:
            tasks = [asyncio.create_task(c, name=n) for n, c in self._coroutines().items()]
            try:
                yield
            finally:
                for t in tasks:
                    t.cancel()
                for t in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await t
                await self.hub.stop()
                with contextlib.suppress(Exception):
                    await self.publisher.withdraw()

        async def close_streams(_app: web.Application) -> None:
            self.hub.close_all()

        container.cleanup_contexts.append(board_ctx)
        container.shutdown_hooks.append(close_streams)

    def _coroutines(self) -> dict[str, Coroutine[Any, Any, None]]:
        return {
            "board-heartbeat": self.publisher.run_heartbeat(),
            "board-publisher": self.publisher.run(),
            "board-writer": self.publisher.run_writer(),
            "board-reader": self.hub.run(),
            "board-figures": self.hub.run_figures(),
            "board-actions": self.run_actions(),
        }


def install_board(container: Container, engine: DialerEngine, hours_for: Any, tz: str) -> Board:
    board = Board(container, engine, hours_for, tz)
    board.install(container)
    return board
