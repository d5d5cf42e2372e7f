"""The seat page's event stream (no browser): a page that goes away ends its stream
quietly, on the fully wired service."""

from __future__ import annotations

import logging

import pytest

from callcenter.pages.http import SEAT_HUB
from tests.seat_page_support import Site, drive_until, sign_in, site_fixture  # noqa: F401

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


async def test_a_closed_seat_page_ends_its_stream_without_an_error_in_the_log(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    c = site.client
    wang = site.specialists[0]
    hub = c.app[SEAT_HUB]
    await sign_in(c, "wangfang")
    await site.service.dialer.sign_in(wang)
    stream = await c.get("/api/seat/events")
    assert (await stream.content.readuntil(b"\n\n")).startswith(b"event: seat")
    assert hub.watching(wang) == 1
    stream.close()  # the tab is closed: the server hears of it at its next write

    async def ended() -> bool:
        if hub.watching(wang):
            await site.service.dialer.pause(wang, "break")
            await site.service.dialer.ready(wang)
        return hub.watching(wang) == 0

    with caplog.at_level(logging.INFO):
        await drive_until(site.clock, ended)
        await c.get("/api/me")  # a round trip: the handler's end has been logged
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
