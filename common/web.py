"""The HTTP helpers every package's `http.py` uses: JSON responses, `ApiError`, the request's
principal and the access checks. The error middleware that answers them is in
`callcenter.web`."""

from __future__ import annotations

import json

from aiohttp import web

from common.clock import Clock
from common.principal import Principal


def json_response(data: object, status: int = 200) -> web.Response:
    """JSON with Chinese text as UTF-8, not \\u escapes: the seat page and curl show names."""
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


class ApiError(Exception):
    """An HTTP error with a status and a reason the caller can act on."""

    def __init__(self, status: int, reason: str, **details: object) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.details = details


def require_supervisor(principal: Principal) -> None:
    if not principal.is_supervisor:
        raise ApiError(403, "this needs a supervisor's or maintainer's token")


def require_own(principal: Principal, owner_id: int | None, what: str = "lead") -> None:
    """Specialists act only on their own leads and recordings."""
    if not principal.can_see_specialist(owner_id):
        # 404, not 403: a specialist must not learn that another's lead exists.
        raise ApiError(404, f"no such {what}")


PRINCIPAL = web.RequestKey("principal", Principal)
# The clock that judges token expiry (the service's clock; the demo's runs fast).
CLOCK = web.AppKey("clock", Clock)


def principal(request: web.Request) -> Principal:
    """The authenticated user of a request (set by the web app's auth middleware)."""
    p = request.get(PRINCIPAL)
    if p is None:  # pragma: no cover - the middleware guarantees it
        raise ApiError(401, "not authenticated")
    return p


__all__ = [
    "CLOCK",
    "PRINCIPAL",
    "ApiError",
    "json_response",
    "principal",
    "require_own",
    "require_supervisor",
]
