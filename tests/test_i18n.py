"""The message catalogs (callcenter.pages.i18n): compiled once a process, fresh each load."""

from __future__ import annotations

from callcenter.desk.wiring import LOCALE as DESK_LOCALE
from callcenter.pages import i18n


def test_a_catalog_merged_into_by_one_app_is_not_changed_for_the_next() -> None:
    desk, pages = i18n.load(DESK_LOCALE)["zh_CN"], i18n.load()["zh_CN"]
    known = set(pages._catalog)  # type: ignore[attr-defined]
    only_desk = next(m for m in desk._catalog if m and m not in known)  # type: ignore[attr-defined]
    assert pages.gettext(only_desk) == only_desk  # a desk message, untranslated by the pages
    pages.merge(desk)  # what the desk's wiring does with its own catalog
    assert pages.gettext(only_desk) == desk.gettext(only_desk)
    assert i18n.load()["zh_CN"].gettext(only_desk) == only_desk
