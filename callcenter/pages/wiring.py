"""Wiring the web pages into the service (called by callcenter.service.wire): accounts,
the seat hub on the dialer engine's seat changes, the templates in each language."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import jinja2
from aiohttp import web

from callcenter.bootstrap import Container
from callcenter.pages import events_http, http, i18n, users_http
from callcenter.pages.accounts import Accounts
from callcenter.pages.live import SeatHub
from callcenter.pages.services import SeatPages
from callcenter.web import COOKIE_AUTH
from dialer.engine import DialerEngine
from dialer.services import DialerService

HERE = Path(__file__).parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"


def static_url_for(folder: Path, prefix: str = "/static") -> Callable[[str], str]:
    """`static('seat.js')` -> '/static/seat.js?v=<content hash>': browsers may cache an asset
    for long and still get a new one after an upgrade."""
    versions: dict[str, str] = {}

    def url(name: str) -> str:
        if name not in versions:
            versions[name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()[:10]
        return f"{prefix}/{name}?v={versions[name]}"

    return url


def environments(folders: tuple[Path, ...] = (TEMPLATES,)) -> dict[str, jinja2.Environment]:
    """One environment per language over `folders` (another package's pages put their own
    templates first and still extend base.html)."""
    translations = i18n.load()
    static = static_url_for(STATIC)
    envs = {}
    for lang, tr in translations.items():
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(list(folders)),
            autoescape=True,
            extensions=["jinja2.ext.i18n"],
            undefined=jinja2.StrictUndefined,
        )
        env.install_gettext_translations(tr, newstyle=True)  # type: ignore[attr-defined]
        env.globals["static"] = static
        envs[lang] = env
    return envs


def install_pages(
    container: Container, dialer: DialerService, engine: DialerEngine, tz: str
) -> SeatHub:
    accounts = Accounts(container.sessions, container.clock, tz=tz)
    hub = SeatHub()
    engine.seat_listeners.append(hub.seat_changed)
    pages = SeatPages(container.sessions, container.clock, dialer, engine.hours_for, tz)
    container.route_tables.append(http.routes)
    container.route_tables.append(events_http.routes)
    container.route_tables.append(users_http.routes)
    container.app_values[http.ACCOUNTS] = accounts
    container.app_values[http.SEAT_PAGES] = pages
    container.app_values[http.SEAT_HUB] = hub
    container.app_values[COOKIE_AUTH] = http.SessionCookies()
    for lang, env in environments().items():
        container.app_values[http.JINJA[lang]] = env

    async def close_streams(_app: web.Application) -> None:
        hub.close_all()

    container.shutdown_hooks.append(close_streams)
    return hub
