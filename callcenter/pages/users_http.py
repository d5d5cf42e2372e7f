"""The supervisors' login management over HTTP (`/api/users`): list, add a login, reset a
password, disable. Thin: validate → `Accounts` → serialise."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from callcenter.pages.http import ACCOUNTS, _call
from crm_sync.api import ONE_LINE, Body, Id, Name, PathParams, View, endpoint

routes = web.RouteTableDef()


class UserView(View):
    id: int
    name: str
    seat: str | None
    role: str
    username: str | None = Field(description="the sign-in name; null: no login yet")
    disabled: bool
    locked: bool | None = Field(
        default=None, description="locked after wrong passwords (in the list only)"
    )


# A password is checked by the service (length, with a reason); the model keeps out what no
# password is: NUL (PostgreSQL text refuses it) and a line break.
Password = Annotated[
    str, Field(max_length=1024, pattern=ONE_LINE, description="at least 8 characters")
]


class NewLogin(Body):
    specialist: Id | Name = Field(description="the specialist's id, seat (PJSIP/8001) or name")
    username: Name = Field(description="1 to 64 characters without spaces")
    password: Password


class NewPassword(Body):
    password: Password


class UserPath(PathParams):
    who: Name = Field(description="the user's id, seat, name or sign-in name")


@routes.get("/api/users")
@endpoint(supervisor=True, response=list[UserView], tags=("users",))
async def list_users(request: web.Request) -> list[dict[str, Any]]:
    """Supervisor: every user with their login name, role and whether disabled or locked."""
    users: list[dict[str, Any]] = await request.app[ACCOUNTS].list()
    return users


@routes.post("/api/users")
@endpoint(
    supervisor=True,
    body=NewLogin,
    response=UserView,
    status=201,
    errors=(404,),
    tags=("users",),
)
async def add_user(request: web.Request, body: NewLogin) -> dict[str, Any]:
    """Supervisor: create a login for a specialist (a web sign-in name and password)."""
    view: dict[str, Any] = await _call(
        request.app[ACCOUNTS].add(body.specialist, body.username, body.password)
    )
    return view


@routes.post("/api/users/{who}/password")
@endpoint(
    supervisor=True,
    path=UserPath,
    body=NewPassword,
    response=UserView,
    errors=(404,),
    tags=("users",),
)
async def reset_password(request: web.Request, path: UserPath, body: NewPassword) -> dict[str, Any]:
    """Supervisor: set a new password (lifts a lockout; the user's sessions end)."""
    view: dict[str, Any] = await _call(request.app[ACCOUNTS].set_password(path.who, body.password))
    return view


@routes.post("/api/users/{who}/disable")
@endpoint(supervisor=True, path=UserPath, response=UserView, errors=(404,), tags=("users",))
async def disable_user(request: web.Request, path: UserPath) -> dict[str, Any]:
    """Supervisor: no more sign-ins for this user (web sessions end, API tokens revoked)."""
    view: dict[str, Any] = await _call(request.app[ACCOUNTS].disable(path.who))
    return view
