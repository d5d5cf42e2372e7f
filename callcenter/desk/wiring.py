"""Wiring the desk pages into the service (called by callcenter.service.wire): the pages'
services over the ones the API uses, the imports' owner, and the templates in each language
(the desk's own catalog merged over the pages' one, so the base template and the navigation
read the same in both)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, tzinfo
from pathlib import Path

import jinja2
from aiohttp import web
from babel.support import Translations

from callcenter.bootstrap import Container
from callcenter.desk import http
from callcenter.desk.imports import DeskImports
from callcenter.desk.services import DeskPages
from callcenter.pages import i18n
from callcenter.pages.accounts import Accounts
from callcenter.pages.wiring import STATIC as PAGES_STATIC
from callcenter.pages.wiring import TEMPLATES as PAGES_TEMPLATES
from callcenter.pages.wiring import static_url_for
from dialer.services import DialerService
from recordings.services import RecordingsService
from schedules.config import DeskCalendar
from schedules.services import DeskService

HERE = Path(__file__).parent
LOCALE = HERE / "locale"


def desk_time(iso: str | None, tz: tzinfo) -> str:
    """An ISO time from the API as the desk's wall clock (2026-01-05 10:30)."""
    if not iso:
        return "—"
    return datetime.fromisoformat(iso).astimezone(tz).strftime("%Y-%m-%d %H:%M")


def translations() -> dict[str, Translations]:
    """The desk's catalog with the pages' one merged in, per language."""
    pages, desk = i18n.load(), i18n.load(LOCALE)
    return {lang: desk[lang].merge(pages[lang]) for lang in i18n.LANGUAGES}


def environments(catalogs: dict[str, Translations]) -> dict[str, jinja2.Environment]:
    envs = {}
    for lang, catalog in catalogs.items():
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
        env.install_gettext_translations(catalog, newstyle=True)  # type: ignore[attr-defined]
        env.globals["static"] = static_url_for(PAGES_STATIC)
        env.globals["desk_static"] = static_url_for(HERE / "static", "/desk/static")
        env.filters["desk_time"] = desk_time
        envs[lang] = env
    return envs


def install_desk(
    container: Container,
    dialer: DialerService,
    recordings: RecordingsService,
    desk: DeskCalendar,
) -> DeskPages:
    settings = container.settings
    pages = DeskPages(
        container.sessions,
        container.clock,
        desk.tz,
        accounts=Accounts(container.sessions, container.clock, tz=desk.tz),
        dialer=dialer,
        recordings=recordings,
        distribution=DeskService(container.sessions, desk, container.clock),
        technologies=tuple(settings.seat_technologies),
    )
    imports = DeskImports(
        container.engine,
        container.clock,
        settings.data_dir / "imports",
        desk.tz,
        desk.rules,
    )
    container.route_tables.append(http.routes)
    container.app_values[http.DESK] = pages
    container.app_values[http.IMPORTS] = imports
    catalogs = translations()
    for lang, env in environments(catalogs).items():
        container.app_values[http.JINJA[lang]] = env
    container.app_values[http.GETTEXT] = {lang: c.gettext for lang, c in catalogs.items()}

    async def imports_ctx(_app: web.Application) -> AsyncIterator[None]:
        yield
        await imports.close()

    container.cleanup_contexts.append(imports_ctx)
    return pages
