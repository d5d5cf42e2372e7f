"""The aiohttp application: authentication, JSON errors, OpenAPI, and each package's routes.

Handlers stay thin (validate → service → serialise); the packages' `http.py` modules own
their routes and read their services from `app[...]` keys set by `bootstrap`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, Protocol

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Middleware
from openapi_ui_bundles import swagger_ui
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.openapi import openapi_document
from common.clock import Clock, SystemClock
from common.errors import DomainError
from common.principal import Principal
from common.web import CLOCK, PRINCIPAL, ApiError, json_response, principal
from crm_sync.api import PathParams, Problem, View, endpoint, is_public
from crm_sync.auth import TokenRefused, authenticate

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
    except DomainError as exc:  # every package's own exceptions: the one place they map
        return json_error(exc.status, exc.reason)
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


class CookieAuth(Protocol):
    """Browser sign-in (callcenter.pages): a session cookie instead of a bearer token."""

    def is_public(self, request: web.Request) -> bool: ...

    async def authenticate(self, request: web.Request) -> Principal | None:
        """The cookie's user; raises for a state-changing request without its CSRF token."""

    def refuse(self, request: web.Request) -> None:
        """No user: a page redirects to the sign-in; the API falls through to 401."""


COOKIE_AUTH = web.AppKey("cookie_auth", CookieAuth)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Only routes declared public=True need no token: `/` (off to the seat page), `/about`,
    # which says what this is and where the API page is, and the API's own description.
    # The web pages' sign-in and static files are the cookie side's (CookieAuth.is_public).
    if is_public(request.match_info.handler):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not token and request.method in ("GET", "HEAD") and request.path.endswith("/audio"):
        # An <audio src=…> element cannot send headers; only audio accepts a query token
        # (and the access log below never writes query strings).
        token = request.query.get("token", "")
    cookies = request.app.get(COOKIE_AUTH)
    if not token and cookies is not None:
        # The web pages: a session cookie gives the same Principal as a token.
        if cookies.is_public(request):
            return await handler(request)
        signed_in = await cookies.authenticate(request)
        if signed_in is not None:
            request[PRINCIPAL] = signed_in
            return await handler(request)
        cookies.refuse(request)
    if not token:
        raise ApiError(401, "missing token: send 'Authorization: Bearer <token>'")
    async with request.app[SESSIONS]() as session:
        try:
            user = await authenticate(session, token, request.app[CLOCK].now())
        except TokenRefused as exc:
            raise ApiError(401, str(exc)) from None
    request[PRINCIPAL] = user
    return await handler(request)


FRONT_PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>续保外呼中心 · Renewal desk call center</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.6; color: #222; }
code { background: #f3f3f3; padding: 0 .25rem; }
section + section { margin-top: 2rem; border-top: 1px solid #ddd; }
</style>
</head>
<body>
<section lang="zh-CN">
<h1>续保外呼中心</h1>
<p>车险续保专席的外呼服务：导入核心系统的续保清单，按随机等额分配把每天的线索分给续保专员，
只在外呼时段内拨打客户，记录并归档每一通电话，把结果写回 CRM。</p>
<p><strong><a href="/seat">续保专员：进入坐席页面</a></strong></p>
<ul>
<li><a href="/api/docs">API 页面</a>（可直接试用每个接口）·
<a href="/api/openapi.json">OpenAPI 文档</a></li>
<li>调用 API 需要令牌：<code>Authorization: Bearer &lt;令牌&gt;</code>。
令牌由主管或运维用 <code>callcenter tokens create 工号或姓名</code> 生成。</li>
</ul>
</section>
<section lang="en">
<h1>Renewal desk call center</h1>
<p>The outbound dialer of the car-insurance policy-renewal desk: it imports the renewal lists
of the core system, deals each day's leads to the specialists at random in equal shares, calls
customers only inside the calling windows, records and files every call, and writes every
result back to the CRM.</p>
<p><strong><a href="/seat?lang=en">Specialists: open the seat page</a></strong></p>
<ul>
<li><a href="/api/docs">The API page</a> (try each route) ·
<a href="/api/openapi.json">the OpenAPI document</a></li>
<li>The API needs a token: <code>Authorization: Bearer &lt;token&gt;</code>. A supervisor or
maintainer issues one with <code>callcenter tokens create ID-OR-NAME</code>.</li>
</ul>
</section>
</body>
</html>
"""


@endpoint(public=True, page=True)
async def home(request: web.Request) -> web.StreamResponse:
    """The address people open: the seat page, where a specialist works (it asks to sign in
    first); it links this service's description and the API page."""
    raise web.HTTPFound("/seat")


@endpoint(public=True, media={"text/html": "what this service is, with links"}, tags=("api",))
async def front_page(request: web.Request) -> web.StreamResponse:
    """What this service is, and where its API page is (no token needed)."""
    return web.Response(text=FRONT_PAGE, content_type="text/html", charset="utf-8")


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
    clock: Clock | None = None,
    middlewares: Iterable[Middleware] = (),
) -> web.Application:
    # Extra middlewares (the HTTP metrics) come first: they see the error middleware's answer.
    app = web.Application(middlewares=[*middlewares, error_middleware, auth_middleware])
    app[SESSIONS] = sessions
    app[OPENAPI_CACHE] = {}
    app[CLOCK] = clock or SystemClock()
    app.router.add_get("/", home)
    app.router.add_get("/about", front_page)
    app.router.add_get("/api/openapi.json", openapi_handler)
    app.router.add_get("/api/docs", docs_handler)
    app.router.add_get("/api/docs/{asset}", docs_asset_handler)
    app.router.add_get("/api/me", whoami_handler)
    for table in route_tables:
        app.add_routes(table)
    return app
