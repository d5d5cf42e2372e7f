"""Message catalogs: zh_CN is the default, en ships too. The .po files are the source; they
are compiled in memory at start-up (Babel), so no binary .mo is committed or built."""

from __future__ import annotations

import io
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
    out = {}
    for lang in LANGUAGES:
        po = locale_dir / lang / "LC_MESSAGES" / "messages.po"
        with po.open("rb") as f:
            catalog = read_po(f, locale=lang)
        buf = io.BytesIO()
        write_mo(buf, catalog)
        buf.seek(0)
        out[lang] = Translations(buf, domain="messages")
    return out


def language(request: web.Request) -> str:
    """?lang= (remembered in a cookie by the page), else the cookie, else Chinese."""
    for value in (request.query.get("lang"), request.cookies.get(LANG_COOKIE)):
        if value in LANGUAGES:
            return value
    return DEFAULT
