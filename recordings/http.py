"""Review API: list, fetch, stream (HTTP Range), review, keep.

Handlers only parse, call `RecordingsService` (from `app[RECORDINGS]`) and serialise. The audio
handler is given a recording id; the file comes from the row's storage key through the store.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

from aiohttp import web

from common.web import ApiError, principal
from recordings.exceptions import StoreError, UnsafePath
from recordings.services import RecordingFilter, RecordingsService
from recordings.store import RecordingStore

log = logging.getLogger(__name__)

RECORDINGS = web.AppKey("recordings", RecordingsService)
routes = web.RouteTableDef()
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _service(request: web.Request) -> RecordingsService:
    return request.app[RECORDINGS]


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise ApiError(404, "no such recording")
    return int(raw)


def _dt(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ApiError(400, f"{name}: not an ISO 8601 date-time") from exc
    if dt.tzinfo is None:
        raise ApiError(400, f"{name}: needs a time zone offset (e.g. +08:00)")
    return dt


def _num(value: str | None, name: str, kind: type[int] | type[float] = float) -> float | None:
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except ValueError as exc:
        raise ApiError(400, f"{name}: not a number") from exc


def _bool(value: str | None, name: str) -> bool | None:
    if value is None or value == "":
        return None
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise ApiError(400, f"{name}: true or false")


@routes.get("/api/recordings")
async def list_recordings(request: web.Request) -> web.Response:
    """List recordings, newest first.

    Filters: specialist_id, from, to (ISO 8601 with offset), outcome, contact_result,
    min_duration, max_duration (seconds), reviewed (true/false), status, limit, offset.
    Specialists see only their own calls.
    """
    q = request.query
    spec = _num(q.get("specialist_id"), "specialist_id", int)
    f = RecordingFilter(
        specialist_id=int(spec) if spec is not None else None,
        since=_dt(q.get("from"), "from"),
        until=_dt(q.get("to"), "to"),
        outcome=q.get("outcome") or None,
        contact_result=q.get("contact_result") or None,
        min_duration=_num(q.get("min_duration"), "min_duration"),
        max_duration=_num(q.get("max_duration"), "max_duration"),
        reviewed=_bool(q.get("reviewed"), "reviewed"),
        status=q.get("status") or None,
        limit=int(_num(q.get("limit"), "limit", int) or 50),
        offset=int(_num(q.get("offset"), "offset", int) or 0),
    )
    return web.json_response(await _service(request).list(principal(request), f))


@routes.get("/api/recordings/rubric")
async def rubric(request: web.Request) -> web.Response:
    """The review rubric: items and the maximum score per item."""
    return web.json_response(_service(request).rubric())


@routes.get("/api/recordings/{id}")
async def get_recording(request: web.Request) -> web.Response:
    """One recording with its call details, waveform summary and reviews."""
    return web.json_response(await _service(request).get(principal(request), _id(request)))


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The single byte range asked for, as (start, end inclusive); None = whole file.

    Raises ApiError(416) for a range that cannot be satisfied. Several ranges at once are
    answered with the whole file (allowed by RFC 9110; browsers' players ask for one).
    """
    header = header.strip()
    if not header or "," in header:
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
async def audio(request: web.Request) -> web.StreamResponse:
    """The compressed audio, with HTTP Range support (206 / 416) so a player can seek."""
    svc = _service(request)
    ref = await svc.audio(principal(request), _id(request))
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
async def add_review(request: web.Request) -> web.Response:
    """Record a review (supervisors).

    Body: {"scores": {item: 0..score_max, …}, "passed": bool, "comment": str?,
    "callback_at": ISO 8601?}. A failed review with callback_at books a callback for the lead.
    """
    body = await request.json()
    if not isinstance(body, dict):
        raise ApiError(400, "expected a JSON object")
    scores = body.get("scores")
    passed = body.get("passed")
    if not isinstance(scores, dict) or not isinstance(passed, bool):
        raise ApiError(400, "scores (object) and passed (true/false) are required")
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise ApiError(400, "comment must be a string")
    out = await _service(request).review(
        principal(request),
        _id(request),
        scores=scores,
        passed=passed,
        comment=comment,
        callback_at=_dt(body.get("callback_at"), "callback_at"),
    )
    return web.json_response(out, status=201)


@routes.put("/api/recordings/{id}/keep")
async def keep(request: web.Request) -> web.Response:
    """Mark a recording to keep (exempt from retention) or release it (supervisors).

    Body: {"keep": true|false}.
    """
    body = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("keep"), bool):
        raise ApiError(400, 'expected {"keep": true|false}')
    return web.json_response(
        await _service(request).set_keep(principal(request), _id(request), body["keep"])
    )
