"""The aiohttp application: authentication, JSON errors, OpenAPI, and each package's routes.

Handlers stay thin (validate → service → serialise); the packages' `http.py` modules own
their routes and read their services from `app[...]` keys set by `bootstrap`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from openapi_ui_bundles import swagger_ui
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.openapi import openapi_document
from crm_sync.api import PathParams, Problem, View, endpoint, is_public
from crm_sync.auth import PRINCIPAL, ApiError, authenticate, json_response, principal

log = logging.getLogger(__name__)

SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
OPENAPI_CACHE = web.AppKey("openapi_cache", dict[str, str])
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, reason: str, **details: object) -> web.Response:
    """Every error answer has this shape (crm_sync.api.Problem)."""
    body: dict[str, Any] = {"error": reason, "status": status}
    body.update(details)
    return json_response(Problem.model_validate(body).model_dump(exclude_none=True), status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return json_error(exc.status, exc.reason, **exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = json_error(exc.status, exc.reason)
        if isinstance(exc, web.HTTPMethodNotAllowed):
            # RFC 9110 §15.5.6: a 405 names the methods the resource takes.
            response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        return response
    except Exception:
        # A ValueError or KeyError here is a bug, not bad input: every input is checked by
        # its route's models first (crm_sync.api), so the caller gets no exception text.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal error; the service log has the details")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if is_public(request.match_info.handler):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not token and request.method in ("GET", "HEAD") and request.path.endswith("/audio"):
        # An <audio src=…> element cannot send headers; only audio accepts a query token
        # (and the access log below never writes query strings).
        token = request.query.get("token", "")
    if not token:
        raise ApiError(401, "missing token: send 'Authorization: Bearer <token>'")
    async with request.app[SESSIONS]() as session:
        user = await authenticate(session, token)
    if user is None:
        raise ApiError(401, "unknown or revoked token")
    request[PRINCIPAL] = user
    return await handler(request)


class Me(View):
    id: int
    name: str
    role: str


@endpoint(response=Me, tags=("users",))
async def whoami_handler(request: web.Request) -> dict[str, Any]:
    """Who the token belongs to."""
    p = principal(request)
    return {"id": p.user_id, "name": p.name, "role": p.role}


@endpoint(public=True, response=dict[str, Any], tags=("api",))
async def openapi_handler(request: web.Request) -> web.StreamResponse:
    """The OpenAPI document of this API (no token needed)."""
    cache = request.app[OPENAPI_CACHE]
    if "doc" not in cache:
        cache["doc"] = json.dumps(openapi_document(request.app), ensure_ascii=False)
    return web.Response(text=cache["doc"], content_type="application/json")


DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Renewal desk call center API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="/api/docs/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false
});
</script>
</body>
</html>
"""

# The Swagger UI files served from the installed package (never a CDN: the desk's network
# may have no internet, and a page that loads foreign scripts could read the token typed in).
DOCS_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "application/javascript",
    "favicon-32x32.png": "image/png",
}


@endpoint(public=True, media={"text/html": "the interactive API page"}, tags=("api",))
async def docs_handler(request: web.Request) -> web.StreamResponse:
    """The interactive API page (Swagger UI, served locally; no token needed to read it)."""
    return web.Response(text=DOCS_PAGE, content_type="text/html")


class DocsAsset(PathParams):
    asset: Literal["swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"]


@endpoint(
    public=True,
    path=DocsAsset,
    errors=(404,),
    media={
        "text/css": "a style sheet",
        "application/javascript": "a script",
        "image/png": "an icon",
    },
    tags=("api",),
)
async def docs_asset_handler(request: web.Request, path: DocsAsset) -> web.StreamResponse:
    """A file of the API page (Swagger UI's script, style sheet and icon)."""
    return web.FileResponse(
        swagger_ui.static_path / path.asset,
        headers={
            "Content-Type": DOCS_ASSETS[path.asset],
            "Cache-Control": "public, max-age=86400",
        },
    )


class AccessLogger(AbstractAccessLogger):
    """Method, path (never the query string: it may carry a token), status, size, time."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %s %.1fms",
            request.method,
            request.path,
            response.status,
            response.body_length,
            time * 1000,
        )


def make_runner(app: web.Application) -> web.AppRunner:
    return web.AppRunner(app, access_log_class=AccessLogger)


def create_app(
    sessions: async_sessionmaker[AsyncSession],
    route_tables: Iterable[web.RouteTableDef] = (),
) -> web.Application:
    app = web.Application(middlewares=[error_middleware, auth_middleware])
    app[SESSIONS] = sessions
    app[OPENAPI_CACHE] = {}
    app.router.add_get("/api/openapi.json", openapi_handler)
    app.router.add_get("/api/docs", docs_handler)
    app.router.add_get("/api/docs/{asset}", docs_asset_handler)
    app.router.add_get("/api/me", whoami_handler)
    for table in route_tables:
        app.add_routes(table)
    return app
