"""The aiohttp application: authentication, JSON errors, OpenAPI, and each package's routes.

Handlers stay thin (validate → service → serialise); the packages' `http.py` modules own
their routes and read their services from `app[...]` keys set by `bootstrap`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.clock import Clock, SystemClock
from common.errors import DomainError
from common.web import CLOCK, PRINCIPAL, ApiError, json_response, principal
from crm_sync.auth import TokenRefused, authenticate

log = logging.getLogger(__name__)

SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, reason: str, **details: object) -> web.Response:
    body: dict[str, Any] = {"error": reason, "status": status}
    body.update(details)
    return json_response(body, status=status)


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
        return json_error(exc.status, exc.reason)
    except json.JSONDecodeError as exc:  # a body that is not JSON: the caller's input
        return json_error(400, f"the body is not JSON: {exc.msg}")
    except Exception:
        # A ValueError or KeyError here is a bug (handlers validate their input), not a 400.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal error; the service log has the details")


# Paths anyone may read: the front page says what this is and where the API page is.
PUBLIC_PATHS = frozenset({"/"})


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS and request.method in ("GET", "HEAD"):
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
        try:
            user = await authenticate(session, token, request.app[CLOCK].now())
        except TokenRefused as exc:
            raise ApiError(401, str(exc)) from None
    request[PRINCIPAL] = user
    return await handler(request)


def openapi_document(app: web.Application) -> dict[str, Any]:
    """An OpenAPI 3.1 document built from the routes and their handlers' docstrings."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if not path or not path.startswith("/api/") or route.method in ("HEAD", "*"):
            continue
        doc = (route.handler.__doc__ or "").strip()
        summary, _, description = doc.partition("\n")
        op: dict[str, Any] = {
            "summary": summary or route.handler.__name__,
            "security": [{"bearer": []}],
            "responses": {
                "200": {"description": "OK"},
                "400": {"description": "invalid input", "content": _error_schema()},
                "401": {"description": "missing or unknown token", "content": _error_schema()},
                "403": {"description": "not allowed for this role", "content": _error_schema()},
                "404": {"description": "not found (or not yours)", "content": _error_schema()},
            },
        }
        if description.strip():
            op["description"] = description.strip()
        params = [seg[1:-1].split(":")[0] for seg in path.split("/") if seg.startswith("{")]
        if params:
            op["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ]
        paths.setdefault(path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Renewal desk call center API", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": dict(sorted(paths.items())),
    }


def _error_schema() -> dict[str, Any]:
    return {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
                "required": ["error", "status"],
            }
        }
    }


async def openapi_handler(request: web.Request) -> web.Response:
    """The OpenAPI document of this API."""
    return web.json_response(openapi_document(request.app))


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


async def front_page(request: web.Request) -> web.Response:
    """What this service is, and where its API page is (no token needed)."""
    return web.Response(text=FRONT_PAGE, content_type="text/html", charset="utf-8")


async def whoami_handler(request: web.Request) -> web.Response:
    """Who the token belongs to."""
    p = principal(request)
    return web.json_response({"id": p.user_id, "name": p.name, "role": p.role})


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
) -> web.Application:
    app = web.Application(middlewares=[error_middleware, auth_middleware])
    app[SESSIONS] = sessions
    app[CLOCK] = clock or SystemClock()
    app.router.add_get("/", front_page)
    app.router.add_get("/api/openapi.json", openapi_handler)
    app.router.add_get("/api/me", whoami_handler)
    for table in route_tables:
        app.add_routes(table)
    return app
