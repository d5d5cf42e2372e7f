"""Review API: list, fetch, stream (HTTP Range), review, keep.

Handlers only parse, call `RecordingsService` (from `app[RECORDINGS]`) and serialise. The audio
handler is given a recording id; the file comes from the row's storage key through the store.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from common.web import ApiError, principal
from crm_sync.api import (
    Body,
    Code,
    Id,
    Limit,
    Note,
    Offset,
    PathParams,
    Query,
    Timestamp,
    View,
    When,
    endpoint,
)
from recordings.exceptions import StoreError, UnsafePath
from recordings.listing import RecordingFilter
from recordings.services import RecordingsService
from recordings.store import RecordingStore

log = logging.getLogger(__name__)

RECORDINGS = web.AppKey("recordings", RecordingsService)
routes = web.RouteTableDef()
_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$", re.IGNORECASE)
Seconds = Annotated[float, Field(ge=0, le=86_400)]


class RecordingPath(PathParams):
    id: Id


class RecordingQuery(Query):
    specialist_id: Id | None = None
    since: When | None = Field(default=None, alias="from")
    until: When | None = Field(default=None, alias="to")
    outcome: Code | None = None
    contact_result: Code | None = None
    min_duration: Seconds | None = None
    max_duration: Seconds | None = None
    reviewed: bool | None = None
    status: Code | None = None
    campaign: Code | None = Field(default=None, description="the campaign kind, e.g. renewal")
    limit: Limit = 50
    offset: Offset = 0


class AudioQuery(Query):
    token: str | None = Field(
        default=None,
        max_length=200,
        description="the API token, for an <audio> element that cannot send headers",
    )


class ReviewBody(Body):
    scores: dict[Code, Annotated[int, Field(ge=0, le=1000)]] = Field(
        description="a score per rubric item (GET /api/recordings/rubric), 0..score_max"
    )
    passed: bool
    comment: Note | None = None
    callback_at: When | None = Field(
        default=None, description="a failed review may book a callback for the lead"
    )


class KeepBody(Body):
    keep: bool


class RecordingSummary(View):
    id: int
    attempt_id: str
    lead_id: int | None
    specialist_id: int | None
    outcome: str | None
    contact_result: str | None
    status: str
    ended_at: Timestamp
    duration_seconds: float | None
    talk_seconds: float | None
    speech_seconds: float | None
    silence_ratio: float | None
    format: str | None
    keep: bool
    reviewed: bool


class RecordingPage(View):
    total: int
    items: list[RecordingSummary]


class Rubric(View):
    items: list[str]
    score_max: int


class ReviewView(View):
    id: int
    reviewer_id: int | None
    scores: dict[str, int]
    total: int
    passed: bool
    comment: str | None
    callback_at: Timestamp | None
    created_at: Timestamp


class RecordingDetail(RecordingSummary):
    source_name: str | None
    stored_at: Timestamp | None
    size_bytes: int | None
    sha256: str | None
    error: str | None
    waveform: list[Any]
    audio_url: str | None
    lead: dict[str, Any] | None
    reviews: list[ReviewView]
    rubric: Rubric


class KeepView(View):
    id: int
    keep: bool


def _service(request: web.Request) -> RecordingsService:
    return request.app[RECORDINGS]


@routes.get("/api/recordings")
@endpoint(query=RecordingQuery, response=RecordingPage, tags=("recordings",))
async def list_recordings(request: web.Request, query: RecordingQuery) -> dict[str, Any]:
    """List recordings, newest first.

    Filters: specialist_id, from, to (ISO 8601 with offset), outcome, contact_result,
    min_duration, max_duration (seconds), reviewed (true/false), status, campaign (the
    campaign kind: renewal, lapsed, trial, callback), limit, offset.
    Specialists see only their own calls.
    """
    f = RecordingFilter(
        specialist_id=query.specialist_id,
        since=query.since,
        until=query.until,
        outcome=query.outcome,
        contact_result=query.contact_result,
        min_duration=query.min_duration,
        max_duration=query.max_duration,
        reviewed=query.reviewed,
        status=query.status,
        campaign=query.campaign,
        limit=query.limit,
        offset=query.offset,
    )
    return await _service(request).list(principal(request), f)


@routes.get("/api/recordings/rubric")
@endpoint(response=Rubric, tags=("recordings",))
async def rubric(request: web.Request) -> dict[str, Any]:
    """The review rubric: items and the maximum score per item."""
    return _service(request).rubric()


@routes.get("/api/recordings/{id}")
@endpoint(path=RecordingPath, response=RecordingDetail, errors=(404,), tags=("recordings",))
async def get_recording(request: web.Request, path: RecordingPath) -> dict[str, Any]:
    """One recording with its call details, waveform summary and reviews."""
    return await _service(request).get(principal(request), path.id)


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The single byte range asked for, as (start, end inclusive); None = whole file.

    Raises ApiError(416) for a bytes range that cannot be satisfied. Several ranges at once,
    and a range in a unit other than bytes, are answered with the whole file (RFC 9110
    §14.2: a server ignores a Range it does not understand; players ask for one range).
    """
    header = header.strip()
    if not header or "," in header:
        return None
    unit, eq, _ = header.partition("=")
    if not eq or unit.strip().lower() != "bytes":
        return None
    m = _RANGE.match(header)
    if m is None:
        raise ApiError(416, "unsupported Range (use bytes=START-END)", size=size)
    a, b = m.groups()
    if a == "" and b == "":
        raise ApiError(416, "empty range", size=size)
    if a == "":  # suffix: the last N bytes
        n = int(b)
        if n == 0 or size == 0:
            raise ApiError(416, "range not satisfiable", size=size)
        return max(0, size - n), size - 1
    start = int(a)
    end = size - 1 if b == "" else min(int(b), size - 1)
    if start >= size or (b != "" and int(b) < start):
        raise ApiError(416, "range not satisfiable", size=size)
    return start, end


async def _stream(
    request: web.Request,
    store: RecordingStore,
    key: str,
    start: int,
    end: int,
    resp: web.StreamResponse,
) -> web.StreamResponse:
    await resp.prepare(request)
    if request.method != "HEAD":
        sent = 0
        try:
            async for block in store.read_range(key, start, end):
                await resp.write(block)
                sent += len(block)
            if sent != end - start + 1:
                raise StoreError(f"{key} ended after {sent} of {end - start + 1} bytes")
        except (StoreError, UnsafePath, OSError) as exc:
            # The headers are out: an error response now would land inside the body. Closing
            # the connection short of Content-Length is the one honest signal left.
            log.error("recording %s: the store failed while streaming: %s", key, exc)
            if request.transport is not None:
                request.transport.close()
            return resp
    await resp.write_eof()
    return resp


@routes.get("/api/recordings/{id}/audio")
@endpoint(
    path=RecordingPath,
    query=AudioQuery,
    errors=(206, 404, 410, 416, 503),
    media={"audio/mpeg": "MP3 audio", "audio/ogg": "Ogg Opus audio"},
    tags=("recordings",),
)
async def audio(request: web.Request, path: RecordingPath, query: AudioQuery) -> web.StreamResponse:
    """The compressed audio, with HTTP Range support (206 / 416) so a player can seek.

    The stored file is checked before any header goes out: 410 when it is missing or damaged
    (`callcenter recordings check` lists it), 503 when the store cannot be read. A store that
    fails mid-stream closes the connection short of Content-Length.
    """
    svc = _service(request)
    ref = await svc.audio(principal(request), path.id)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Type": ref.content_type,
        "ETag": f'"{ref.sha256}"',
        "Cache-Control": "private, max-age=3600",
    }
    rng_header = request.headers.get("Range", "")
    if_range = request.headers.get("If-Range")
    if if_range and if_range.strip() != headers["ETag"]:
        rng_header = ""  # the client's copy is stale: send it all
    try:
        rng = parse_range(rng_header, ref.size)
    except ApiError as exc:
        return web.Response(
            status=416,
            headers={"Content-Range": f"bytes */{ref.size}", "Accept-Ranges": "bytes"},
            text=exc.reason,
        )
    if rng is None:
        resp = web.StreamResponse(status=200, headers=headers)
        resp.content_length = ref.size
        return await _stream(request, svc.store, ref.key, 0, ref.size - 1, resp)
    start, end = rng
    resp = web.StreamResponse(
        status=206, headers={**headers, "Content-Range": f"bytes {start}-{end}/{ref.size}"}
    )
    resp.content_length = end - start + 1
    return await _stream(request, svc.store, ref.key, start, end, resp)


@routes.post("/api/recordings/{id}/reviews")
@endpoint(
    path=RecordingPath,
    body=ReviewBody,
    response=ReviewView,
    status=201,
    errors=(403, 404, 409),
    tags=("recordings",),
)
async def add_review(request: web.Request, path: RecordingPath, body: ReviewBody) -> dict[str, Any]:
    """Record a review (supervisors).

    A failed review with callback_at books a callback for the lead.
    """
    return await _service(request).review(
        principal(request),
        path.id,
        scores=body.scores,
        passed=body.passed,
        comment=body.comment,
        callback_at=body.callback_at,
    )


@routes.put("/api/recordings/{id}/keep")
@endpoint(
    path=RecordingPath, body=KeepBody, response=KeepView, errors=(403, 404), tags=("recordings",)
)
async def keep(request: web.Request, path: RecordingPath, body: KeepBody) -> dict[str, Any]:
    """Mark a recording to keep (exempt from retention) or release it (supervisors)."""
    return await _service(request).set_keep(principal(request), path.id, body.keep)
