"""The review API: access rules, filters, Range streaming, reviews, keep."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.web import create_app
from crm_sync.models import Lead, OutboxMessage
from recordings.config import RecordingSettings
from recordings.http import RECORDINGS, parse_range, routes
from recordings.models import Recording
from recordings.services import RecordingsService
from recordings.store import LocalStore
from schedules.clock import VirtualClock
from tests.test_recordings_helpers import add_recording, make_lead, make_user

T0 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
AUDIO = bytes(range(256)) * 40  # 10,240 bytes, every offset distinguishable


@dataclass
class Api:
    client: TestClient
    sessions: async_sessionmaker[AsyncSession]
    store: LocalStore
    clock: VirtualClock
    sup: dict[str, str]
    me: dict[str, str]
    me_id: int
    other_id: int
    mine: int
    theirs: int
    lead: int

    async def get(self, path: str, h: dict[str, str], **kw: object) -> tuple[int, Any]:
        resp = await self.client.get(path, headers=h, **kw)  # type: ignore[arg-type]
        body = await resp.json() if resp.content_type == "application/json" else await resp.read()
        return resp.status, body


@pytest.fixture
async def api(tmp_path: Path, sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Api]:
    clock = VirtualClock(T0 + timedelta(hours=1))
    store = LocalStore(tmp_path / "store")
    svc = RecordingsService(sessions, store, clock, RecordingSettings())
    app = create_app(sessions, [routes])
    app[RECORDINGS] = svc
    _, sup = await make_user(sessions, "主管", "supervisor")
    me, my_token = await make_user(sessions, "8001", "specialist")
    other, _ = await make_user(sessions, "8002", "specialist")
    lead = await make_lead(sessions, 1, owner_id=me)
    mine = await add_recording(
        sessions, store, "att-1", ended_at=T0, data=AUDIO, lead_id=lead, specialist_id=me
    )
    theirs = await add_recording(
        sessions,
        store,
        "att-2",
        ended_at=T0 + timedelta(minutes=5),
        data=b"x" * 100,
        specialist_id=other,
        duration=30.0,
        outcome="answered",
    )
    async with TestClient(TestServer(app)) as client:
        yield Api(
            client,
            sessions,
            store,
            clock,
            {"Authorization": f"Bearer {sup}"},
            {"Authorization": f"Bearer {my_token}"},
            me,
            other,
            mine,
            theirs,
            lead,
        )


async def test_supervisor_lists_every_recording_and_a_specialist_only_their_own(api: Api) -> None:
    status, body = await api.get("/api/recordings", api.sup)
    assert status == 200
    assert [i["id"] for i in body["items"]] == [api.theirs, api.mine]
    status, body = await api.get("/api/recordings", api.me)
    assert [i["id"] for i in body["items"]] == [api.mine]
    # Asking for another's calls by filter does not widen what a specialist sees.
    status, body = await api.get(f"/api/recordings?specialist_id={api.other_id}", api.me)
    assert body["items"] == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("min_duration=10", ["theirs"]),
        ("max_duration=10", ["mine"]),
        ("from=2026-01-05T10:03:00%2B08:00", ["theirs"]),
        ("to=2026-01-05T02:01:00Z", ["mine"]),
        ("outcome=busy", []),
        ("reviewed=false", ["theirs", "mine"]),
        ("specialist_id={me}", ["mine"]),
        ("campaign=renewal", ["mine"]),  # the lead's kind; "theirs" has no lead
        ("campaign=lapsed", []),
    ],
)
async def test_list_filters(api: Api, query: str, expected: list[str]) -> None:
    names = {api.mine: "mine", api.theirs: "theirs"}
    status, body = await api.get(f"/api/recordings?{query.format(me=api.me_id)}", api.sup)
    assert status == 200, body
    assert [names[i["id"]] for i in body["items"]] == expected


async def test_bad_filter_is_a_400_with_a_reason(api: Api) -> None:
    status, body = await api.get("/api/recordings?from=2026-01-05", api.sup)
    assert status == 400 and "time zone" in body["error"]


async def test_one_recording_has_call_details_and_waveform(api: Api) -> None:
    status, body = await api.get(f"/api/recordings/{api.mine}", api.me)
    assert status == 200
    assert body["waveform"] == [0.1, 0.5, 0.2]
    assert body["lead"]["id"] == api.lead
    assert body["audio_url"] == f"/api/recordings/{api.mine}/audio"


async def test_a_specialist_cannot_fetch_another_specialists_recording(api: Api) -> None:
    assert (await api.get(f"/api/recordings/{api.theirs}", api.me))[0] == 404
    assert (await api.get(f"/api/recordings/{api.theirs}/audio", api.me))[0] == 404
    assert (await api.get(f"/api/recordings/{api.theirs}/audio", api.sup))[0] == 200


async def test_a_range_in_an_unknown_unit_gets_the_whole_file(api: Api) -> None:
    # RFC 9110 §14.2: a server ignores a Range header field with a unit it does not know.
    url = f"/api/recordings/{api.mine}/audio"
    for header in ("items=1-2", "pages=0-", "seconds=5-10"):
        resp = await api.client.get(url, headers={**api.me, "Range": header})
        assert resp.status == 200, header
        assert "Content-Range" not in resp.headers
        assert await resp.read() == AUDIO, header


async def test_no_request_path_reaches_the_file_system(api: Api) -> None:
    for path in ("/api/recordings/..%2F..%2Fetc%2Fpasswd/audio", "/api/recordings/1e3/audio"):
        status, _ = await api.get(path, api.sup)
        assert status == 404


async def test_audio_is_streamed_whole_and_by_range(api: Api) -> None:
    url = f"/api/recordings/{api.mine}/audio"
    resp = await api.client.get(url, headers=api.me)
    assert resp.status == 200 and await resp.read() == AUDIO
    assert resp.headers["Accept-Ranges"] == "bytes"
    etag = resp.headers["ETag"]
    assert resp.headers["Content-Type"] == "audio/mpeg"
    cases = {
        "bytes=10-19": (10, 19),
        "bytes=10000-": (10000, len(AUDIO) - 1),
        "bytes=-5": (len(AUDIO) - 5, len(AUDIO) - 1),
        "bytes=10200-99999": (10200, len(AUDIO) - 1),
    }
    for header, (a, b) in cases.items():
        resp = await api.client.get(url, headers={**api.me, "Range": header})
        assert resp.status == 206, header
        assert resp.headers["Content-Range"] == f"bytes {a}-{b}/{len(AUDIO)}"
        assert await resp.read() == AUDIO[a : b + 1], header
    for header in ("bytes=10240-", "bytes=50-10", "bytes=-0"):
        resp = await api.client.get(url, headers={**api.me, "Range": header})
        assert resp.status == 416, header
        assert resp.headers["Content-Range"] == f"bytes */{len(AUDIO)}"
    head = await api.client.head(url, headers=api.me)
    assert head.status == 200 and head.headers["Content-Length"] == str(len(AUDIO))
    assert await head.read() == b""
    # A stale If-Range gets the whole file, a matching one the range.
    stale = await api.client.get(url, headers={**api.me, "Range": "bytes=0-3", "If-Range": '"x"'})
    assert stale.status == 200
    fresh = await api.client.get(url, headers={**api.me, "Range": "bytes=0-3", "If-Range": etag})
    assert fresh.status == 206
    # A query token works too (for <audio src=...>).
    token = api.me["Authorization"].split()[1]
    resp = await api.client.get(f"{url}?token={token}", headers={"Range": "bytes=0-3"})
    assert resp.status == 206 and await resp.read() == AUDIO[:4]


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, auth: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    """One request and its whole response on an open HTTP/1.1 connection (keep-alive)."""
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: {auth['Authorization']}\r\n\r\n".encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
async def test_audio_of_a_missing_or_damaged_file_is_one_clean_error_and_the_connection_lives(
    api: Api, damage: str
) -> None:
    async with api.sessions() as s:
        key = (await s.get(Recording, api.mine)).storage_key  # type: ignore[union-attr]
    assert key is not None
    path = api.store.path(key)
    if damage == "deleted":
        path.unlink()
    else:
        path.write_bytes(AUDIO[:100])
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        status, headers, body = await _exchange(
            reader, writer, f"/api/recordings/{api.mine}/audio", api.me
        )
        assert status == 410, body
        assert headers["content-type"].startswith("application/json")
        error = json.loads(body)
        assert "recordings check" in error["error"]
        # The same connection answers the next request: nothing was left in the stream.
        status, _, body = await _exchange(reader, writer, f"/api/recordings/{api.mine}", api.me)
        assert status == 200 and json.loads(body)["id"] == api.mine
    finally:
        writer.close()
        await writer.wait_closed()


class _FailingStore(LocalStore):
    """A store whose disk fails after the first block of a read (checked sizes are fine)."""

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        async for block in super().read_range(key, start, min(end, start + 99)):
            yield block
        raise OSError(5, "Input/output error")


async def test_a_store_failing_mid_stream_cuts_the_connection_instead_of_a_second_response(
    api: Api,
) -> None:
    failing = _FailingStore(api.store.root)
    api.client.server.app[RECORDINGS].store = failing
    reader, writer = await asyncio.open_connection(api.client.server.host, api.client.server.port)
    try:
        writer.write(
            f"GET /api/recordings/{api.mine}/audio HTTP/1.1\r\nHost: test\r\n"
            f"Authorization: {api.me['Authorization']}\r\n\r\n".encode()
        )
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), 10)  # to the end: the server closes
    finally:
        writer.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == AUDIO[:100]  # short of Content-Length, and no response inside the body


def test_parse_range_edges() -> None:
    assert parse_range("", 100) is None
    assert parse_range("bytes=0-0,5-6", 100) is None
    assert parse_range("bytes=0-", 100) == (0, 99)
    assert parse_range("bytes=-200", 100) == (0, 99)


async def test_a_review_is_recorded_on_the_rubric(api: Api) -> None:
    scores = {"greeting": 5, "accuracy": 4, "compliance": 5, "outcome_handled": 3}
    resp = await api.client.post(
        f"/api/recordings/{api.mine}/reviews",
        json={"scores": scores, "passed": True, "comment": "好"},
        headers=api.sup,
    )
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["total"] == 17
    _, body = await api.get(f"/api/recordings/{api.mine}", api.sup)
    assert body["reviewed"] is True and body["reviews"][0]["comment"] == "好"
    _, body = await api.get("/api/recordings?reviewed=true", api.sup)
    assert [i["id"] for i in body["items"]] == [api.mine]


async def test_only_supervisors_review_and_scores_must_fit_the_rubric(api: Api) -> None:
    url = f"/api/recordings/{api.mine}/reviews"
    ok = {"greeting": 1, "accuracy": 1, "compliance": 1, "outcome_handled": 1}
    resp = await api.client.post(url, json={"scores": ok, "passed": True}, headers=api.me)
    assert resp.status == 403
    for bad in ({"greeting": 1}, {**ok, "greeting": 9}, {**ok, "greeting": "5"}):
        resp = await api.client.post(url, json={"scores": bad, "passed": True}, headers=api.sup)
        assert resp.status == 400, bad


async def test_a_failed_review_books_a_callback_for_the_lead(api: Api) -> None:
    when = "2026-01-06T10:00:00+08:00"
    scores = {"greeting": 2, "accuracy": 1, "compliance": 0, "outcome_handled": 1}
    resp = await api.client.post(
        f"/api/recordings/{api.mine}/reviews",
        json={"scores": scores, "passed": False, "callback_at": when},
        headers=api.sup,
    )
    assert resp.status == 201, await resp.text()
    async with api.sessions() as s:
        lead = await s.get(Lead, api.lead)
        assert lead is not None
        assert lead.status == "scheduled"
        assert lead.callback_at == lead.next_attempt_at == datetime.fromisoformat(when)
        msgs = (await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    assert [(m.topic, m.key) for m in msgs] == [
        ("lead.callback", f"lead:{api.lead}"),
        ("lead.status", f"lead:{api.lead}"),
    ]
    # A passed review cannot book one.
    resp = await api.client.post(
        f"/api/recordings/{api.mine}/reviews",
        json={"scores": scores, "passed": True, "callback_at": when},
        headers=api.sup,
    )
    assert resp.status == 400


async def test_a_failed_review_books_its_callback_inside_the_calling_hours_and_tells_the_crm(
    api: Api,
) -> None:
    """The same booking as a specialist's `callback` (schedules.callbacks): 12:00 falls
    between the windows, so the callback is at 15:30; the CRM hears of the status change."""
    scores = {"greeting": 2, "accuracy": 1, "compliance": 0, "outcome_handled": 1}
    resp = await api.client.post(
        f"/api/recordings/{api.mine}/reviews",
        json={"scores": scores, "passed": False, "callback_at": "2026-01-06T12:00:00+08:00"},
        headers=api.sup,
    )
    assert resp.status == 201, await resp.text()
    booked = datetime.fromisoformat("2026-01-06T15:30:00+08:00")
    async with api.sessions() as s:
        lead = await s.get(Lead, api.lead)
        assert lead is not None
        assert lead.status == "scheduled"
        assert lead.callback_at == lead.next_attempt_at == booked
        status = (
            await s.scalars(select(OutboxMessage).where(OutboxMessage.topic == "lead.status"))
        ).one()
    assert status.payload["from"] == "assigned" and status.payload["to"] == "scheduled"
    assert "failed call review" in status.payload["reason"]


async def test_keep_is_a_supervisor_action(api: Api) -> None:
    url = f"/api/recordings/{api.mine}/keep"
    assert (await api.client.put(url, json={"keep": True}, headers=api.me)).status == 403
    resp = await api.client.put(url, json={"keep": True}, headers=api.sup)
    assert resp.status == 200
    _, body = await api.get(f"/api/recordings/{api.mine}", api.sup)
    assert body["keep"] is True
