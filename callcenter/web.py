"""The aiohttp application: authentication, JSON errors, OpenAPI, and each package's routes.

Handlers stay thin (validate → service → serialise); the packages' `http.py` modules own
their routes and read their services from `app[...]` keys set by `bootstrap`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.auth import (
    PRINCIPAL,
    ApiError,
    Principal,
    authenticate,
    json_response,
    principal,
)

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
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason)
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        return json_error(400, f"bad request: {exc}")
    except Exception:
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
        user = await authenticate(session, token)
    if user is None:
        raise ApiError(401, "unknown or revoked token")
    request[PRINCIPAL] = user
    return await handler(request)


def openapi_document(app: web.Application) -> dict[str, Any]:
    """An OpenAPI 3.1 document built from the routes and their handlers' docstrings."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if not path or route.method in ("HEAD", "*") or not path.startswith("/api/"):
            continue  # the web pages (/login, /seat, …) are not part of the JSON API
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
) -> web.Application:
    app = web.Application(middlewares=[error_middleware, auth_middleware])
    app[SESSIONS] = sessions
    app.router.add_get("/api/openapi.json", openapi_handler)
    app.router.add_get("/api/me", whoami_handler)
    for table in route_tables:
        app.add_routes(table)
    return app
