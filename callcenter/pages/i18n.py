"""Message catalogs: zh_CN is the default, en ships too. The .po files are the source; they
are compiled in memory at start-up (Babel), so no binary .mo is committed or built."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from aiohttp import web
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALE_DIR = Path(__file__).with_name("locale")
LANGUAGES = ("zh_CN", "en")
DEFAULT = "zh_CN"
LANG_COOKIE = "cc_lang"


def N_(message: str) -> str:
    """Marks a string for extraction (pybabel) without translating it here."""
    return message


def load(locale_dir: Path = LOCALE_DIR) -> dict[str, Translations]:
    """Fresh catalogs on each call (a caller may merge others into them), compiled once."""
    return {
        lang: Translations(io.BytesIO(_compiled(locale_dir, lang)), domain="messages")
        for lang in LANGUAGES
    }


@cache
def _compiled(locale_dir: Path, lang: str) -> bytes:
    """The .po compiled to .mo bytes. Reading the .po is most of a catalog's cost and every
    wired app loads several (pages, desk, board, reports): the bytes are shared, read-only."""
    with (locale_dir / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    return buf.getvalue()


def language(request: web.Request) -> str:
    """?lang= (remembered in a cookie by the page), else the cookie, else Chinese."""
    for value in (request.query.get("lang"), request.cookies.get(LANG_COOKIE)):
        if value in LANGUAGES:
            return value
    return DEFAULT
