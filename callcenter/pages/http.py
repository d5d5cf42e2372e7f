"""The web pages: sign-in and the seat page with its JSON. Live seat updates (server-sent
events) are `events_http.py`, the supervisors' login management `users_http.py`. Thin:
validate → service → serialise (or render).

A browser signs in with a user name and password and then carries a session cookie
(HttpOnly, SameSite=Lax, Secure over TLS); the auth middleware (callcenter.web) turns it into
the same Principal a token gives, so the page also uses the JSON API, and checks the
session's CSRF token (header X-CSRF-Token or form field csrf_token) on every POST.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web

from callcenter.pages import i18n
from callcenter.pages.accounts import SESSION_LIFETIME, Accounts
from callcenter.pages.exceptions import PagesError
from callcenter.pages.live import SeatHub
from callcenter.pages.services import SeatPages
from crm_sync.api import endpoint
from crm_sync.auth import ApiError, Principal, json_response, principal
from dialer.exceptions import DialerError

log = logging.getLogger(__name__)

ACCOUNTS = web.AppKey("accounts", Accounts)
SEAT_PAGES = web.AppKey("seat_pages", SeatPages)
SEAT_HUB = web.AppKey("seat_hub", SeatHub)
TRANSLATIONS = web.AppKey("translations", dict)
JINJA = {lang: web.AppKey(f"jinja_{lang}", jinja2.Environment) for lang in i18n.LANGUAGES}
CSRF = web.RequestKey("csrf_token", str)

SESSION_COOKIE = "cc_session"
LOGIN_CSRF_COOKIE = "cc_login_csrf"
PUBLIC = ("/login", "/static/")
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KEEPALIVE_SECONDS = 15.0  # a comment line so proxies keep an idle stream open
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

routes = web.RouteTableDef()
routes.static("/static", Path(__file__).with_name("static"))


# -- the session cookie (the auth middleware's CookieAuth) -----------------------------------


class SessionCookies:
    def is_public(self, request: web.Request) -> bool:
        return request.path == "/login" or request.path.startswith("/static/")

    async def authenticate(self, request: web.Request) -> Principal | None:
        sid = request.cookies.get(SESSION_COOKIE, "")
        if not sid:
            return None
        info = await request.app[ACCOUNTS].session(sid)
        if info is None:
            return None
        if request.method in UNSAFE:
            sent = request.headers.get("X-CSRF-Token", "")
            if not sent and request.content_type in (
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            ):
                sent = str((await request.post()).get("csrf_token", ""))
            if not sent or not secrets.compare_digest(sent, info.csrf_token):
                log.warning(
                    "%s %s refused: missing or wrong CSRF token", request.method, request.path
                )
                raise ApiError(403, "missing or wrong CSRF token: reload the page and try again")
        request[CSRF] = info.csrf_token
        return info.principal

    def refuse(self, request: web.Request) -> None:
        if not request.path.startswith("/api/"):
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='/')}")


# -- helpers -----------------------------------------------------------------------------------


def _render(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    status: int = 200,
    envs: dict[str, web.AppKey[jinja2.Environment]] = JINJA,
) -> web.Response:
    """A page in the request's language; `envs`: another package's templates (desk, reports)."""
    lang = i18n.language(request)
    resp = aiohttp_jinja2.render_template(
        template, request, {**context, "lang": lang}, app_key=envs[lang], status=status
    )
    if request.query.get("lang") in i18n.LANGUAGES:
        resp.set_cookie(i18n.LANG_COOKIE, lang, max_age=365 * 86400, samesite="Lax", path="/")
    resp.headers.update(SECURITY_HEADERS)
    resp.headers["Cache-Control"] = "no-store"
    return resp


render = _render


def _error(exc: PagesError) -> ApiError:
    return ApiError(exc.status, exc.reason, code=exc.code, params=exc.params)


async def _call(coro: Any) -> Any:
    try:
        return await coro
    except PagesError as exc:
        raise _error(exc) from None
    except DialerError as exc:
        raise ApiError(exc.status, exc.reason) from None


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def _time(value: object, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ApiError(400, f"{name} is not a time, e.g. 2026-01-06T10:00+08:00") from None
    if parsed.tzinfo is None:
        raise ApiError(400, f"{name} needs a time zone offset, e.g. {value}+08:00")
    return parsed


def _text(body: dict[str, Any], name: str, limit: int = 2000) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ApiError(400, f"{name} must be text of at most {limit} characters")
    return value.strip() or None


def _safe_next(value: str | None) -> str:
    # Only a path on this site: never //host or a scheme (an open redirect).
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/seat"


# -- sign-in and sign-out ------------------------------------------------------------------------


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    """The sign-in page."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    resp = _render(
        request, "login.html", {"csrf": token, "next": _safe_next(request.query.get("next"))}
    )
    resp.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/login",
    )
    return resp


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    """Sign in with a user name and password; sets the session cookie."""
    form = await request.post()
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    sent = str(form.get("csrf_token", ""))
    username = str(form.get("username", ""))
    next_ = _safe_next(str(form.get("next", "")))
    if not token or not secrets.compare_digest(token, sent):
        # A sign-in form posted from another site (login CSRF) or a stale page.
        return _render(
            request,
            "login.html",
            {
                "csrf": token or secrets.token_urlsafe(24),
                "next": next_,
                "error": "stale",
                "username": username,
            },
            status=403,
        )
    try:
        done = await request.app[ACCOUNTS].sign_in(
            username, str(form.get("password", "")), request.remote or "?"
        )
    except PagesError as exc:
        return _render(
            request,
            "login.html",
            {
                "csrf": token,
                "next": next_,
                "error": exc.code,
                "params": exc.params,
                "username": username,
            },
            status=exc.status,
        )
    resp = web.HTTPSeeOther(next_)
    resp.set_cookie(
        SESSION_COOKIE,
        done.session_id,
        httponly=True,
        samesite="Lax",
        secure=request.secure,
        path="/",
        max_age=int(SESSION_LIFETIME.total_seconds()),
    )
    resp.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
    raise resp


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    """Sign out of the web pages (the seat stays as it is: sign out of the seat first)."""
    principal(request)
    await request.app[ACCOUNTS].sign_out(request.cookies.get(SESSION_COOKIE, ""))
    resp = web.HTTPSeeOther("/login")
    resp.del_cookie(SESSION_COOKIE, path="/")
    raise resp


# -- the seat page -------------------------------------------------------------------------------


@routes.get("/seat")
async def seat_page(request: web.Request) -> web.Response:
    """The seat page a specialist works in all day."""
    who = principal(request)
    pages = request.app[SEAT_PAGES]
    offset = pages.clock.now().astimezone(ZoneInfo(pages.tz)).strftime("%z")
    results = await pages.results()
    return _render(
        request,
        "seat.html",
        {
            "who": who,
            "csrf": request.get(CSRF, ""),
            "results": results,
            "results_by_code": {
                r["code"]: r["label_zh"] if i18n.language(request) == "zh_CN" else r["label_en"]
                for r in results
            },
            "desk_tz": pages.tz,
            "first_view": await _first_view(pages, who),
            # the appointment picker's times are the desk's wall-clock times
            "desk_offset": f"{offset[:3]}:{offset[3:]}",
        },
    )


@routes.get("/seat/leads/{lead_id}")
async def lead_page(request: web.Request) -> web.Response:
    """One lead: the customer, vehicle, policy, phones and history (own leads only)."""
    who = principal(request)
    try:
        lead_id = int(request.match_info["lead_id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    lead = await request.app[SEAT_PAGES].lead(who, lead_id)
    if lead is None:
        # 404, as the API: a specialist must not learn that another's lead exists.
        return _render(request, "not_found.html", {"who": who, "csrf": request.get(CSRF, "")}, 404)
    return _render(request, "lead.html", {"who": who, "csrf": request.get(CSRF, ""), "d": lead})


@routes.get("/api/seat/pop")
@endpoint(page=True)
async def pop(request: web.Request) -> web.Response:
    """The screen pop: the call on the seat with the customer's phones, vehicle, policy,
    last year's policy, the attempts and recordings, the campaign and why now."""
    data = await _call(request.app[SEAT_PAGES].pop(principal(request)))
    if data is None:
        raise ApiError(404, "no call on this seat right now")
    return json_response(data)


@routes.get("/api/seat/day")
@endpoint(page=True)
async def my_day(request: web.Request) -> web.Response:
    """My day: the queue by kind, what is due, finished, appointments, node 3's deadline."""
    return json_response(await _call(request.app[SEAT_PAGES].day(principal(request))))


@routes.get("/api/seat/appointment-slots")
@endpoint(page=True)
async def slots(request: web.Request) -> web.Response:
    """The calling windows of the next working days, for the appointment picker (?kind=)."""
    principal(request)
    kind = request.query.get("kind", "renewal")
    return json_response({"kind": kind, "slots": request.app[SEAT_PAGES].slots(kind)})


@routes.get("/api/seat/appointment-check")
@endpoint(page=True)
async def check_time(request: web.Request) -> web.Response:
    """Whether a callback time can be booked (?at=ISO time with zone&kind=), and why not."""
    principal(request)
    when = _time(request.query.get("at"), "at")
    if when is None:
        raise ApiError(400, "at is required, e.g. 2026-01-06T10:00+08:00")
    refusal = request.app[SEAT_PAGES].check(request.query.get("kind", "renewal"), when)
    if refusal is None:
        return json_response({"ok": True})
    return json_response(
        {"ok": False, "reason": refusal.reason, "code": refusal.code, "params": refusal.params}
    )


@routes.post("/api/seat/disposition")
@endpoint(page=True)
async def disposition(request: web.Request) -> web.Response:
    """The contact result of the seat's lead: {lead_id, result, note?, callback_at?, premium?,
    new_policy_number?}.

    An appointment outside the calling windows or working days is refused (422) with the
    reason; premium and the new policy number go with `renewed` only (a sales record)."""
    body = await _body(request)
    lead_id = body.get("lead_id")
    if isinstance(lead_id, bool) or not isinstance(lead_id, int):
        raise ApiError(400, "lead_id is required (a number)")
    result = body.get("result")
    if not isinstance(result, str) or not result:
        raise ApiError(400, "result is required: one of the standard contact results")
    premium: Decimal | None = None
    if body.get("premium") not in (None, ""):
        try:
            premium = Decimal(str(body["premium"]))
        except InvalidOperation:
            raise ApiError(400, "premium must be an amount, e.g. 3560.00") from None
        if not premium.is_finite() or premium <= 0 or premium >= Decimal("1e9"):
            raise ApiError(400, "premium must be an amount above 0")
    new_policy = _text(body, "new_policy_number", 64)
    view = await _call(
        request.app[SEAT_PAGES].dispose(
            principal(request),
            lead_id,
            result,
            _text(body, "note"),
            _time(body.get("callback_at"), "callback_at"),
            premium,
            new_policy,
        )
    )
    return json_response(view)


@routes.post("/api/seat/hangup")
@endpoint(page=True)
async def hang_up(request: web.Request) -> web.Response:
    """Hang up the call on one's own seat."""
    return json_response(await _call(request.app[SEAT_PAGES].hang_up(principal(request))))


async def _first_view(pages: SeatPages, who: Principal) -> dict[str, Any]:
    """The seat and its pop as the page opens, rendered into the HTML: the page is
    interactive without two API round trips first (the event stream then keeps it live)."""
    try:
        seat = await pages.dialer.seat(who.user_id)
    except DialerError:
        return {"seat": {"state": "offline"}, "pop": None}
    seat["server_now"] = pages.clock.now().isoformat()
    return {"seat": seat, "pop": await pop_or_none(pages, who)}


async def pop_or_none(pages: SeatPages, who: Principal) -> dict[str, Any] | None:
    try:
        return await pages.pop(who)
    except DialerError:
        return None
