"""Who is asking: per-user API tokens.

A token is shown once when created and stored only as its SHA-256, so a database dump or a
log line never reveals a usable secret. Every user is a `Specialist` row with a role
(specialist, supervisor, maintainer); specialists may act only on their own leads.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from crm_sync.models import Base, Specialist

ROLES = ("specialist", "supervisor", "maintainer")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    specialist_id: Mapped[int] = mapped_column(ForeignKey("specialists.id", ondelete="CASCADE"))
    label: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))
    revoked_at: Mapped[datetime | None]


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    name: str
    role: str

    @property
    def is_supervisor(self) -> bool:
        return self.role in ("supervisor", "maintainer")

    def can_see_specialist(self, specialist_id: int | None) -> bool:
        return self.is_supervisor or specialist_id == self.user_id


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def issue_token(session: AsyncSession, specialist_id: int, label: str | None = None) -> str:
    """Create a token for a user; the caller shows it once and commits."""
    token = "cc_" + secrets.token_urlsafe(32)
    session.add(ApiToken(token_sha256=_digest(token), specialist_id=specialist_id, label=label))
    await session.flush()
    return token


async def authenticate(session: AsyncSession, token: str) -> Principal | None:
    row = (
        await session.execute(
            select(Specialist.id, Specialist.name, Specialist.role, Specialist.active)
            .join(ApiToken, ApiToken.specialist_id == Specialist.id)
            .where(ApiToken.token_sha256 == _digest(token), ApiToken.revoked_at.is_(None))
        )
    ).first()
    if row is None or not row.active:
        return None
    return Principal(user_id=row.id, name=row.name, role=row.role)


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


def principal(request: web.Request) -> Principal:
    """The authenticated user of a request (set by the web app's auth middleware)."""
    p = request.get(PRINCIPAL)
    if p is None:  # pragma: no cover - the middleware guarantees it
        raise ApiError(401, "not authenticated")
    return p
