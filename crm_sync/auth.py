"""Who is asking: per-user API tokens.

A token is shown once when created and stored only as its SHA-256 (and a short prefix to tell
tokens apart in lists), so a database dump or a log line never reveals a usable secret. A
token may carry an expiry and can be revoked; a refused token is answered with why and what
to do. Every user is a `Specialist` row with a role (specialist, supervisor, maintainer);
specialists may act only on their own leads.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from common.principal import Principal

# Re-exported for the callers (and other branches) that still import them from here; new code
# imports `common.web` / `common.principal`.
from common.web import (  # noqa: F401
    CLOCK,
    PRINCIPAL,
    ApiError,
    json_response,
    principal,
    require_own,
    require_supervisor,
)
from crm_sync.models import Base, Specialist

TOKEN_PREFIX_LEN = 11  # "cc_" and 8 of the 43 secret characters: shown in lists, never enough


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    specialist_id: Mapped[int] = mapped_column(ForeignKey("specialists.id", ondelete="CASCADE"))
    label: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))
    revoked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    prefix: Mapped[str | None] = mapped_column(String(16))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def issue_token(
    session: AsyncSession,
    specialist_id: int,
    label: str | None = None,
    *,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> str:
    """Create a token for a user; the caller shows it once and commits."""
    token = "cc_" + secrets.token_urlsafe(32)
    row = ApiToken(
        token_sha256=_digest(token),
        specialist_id=specialist_id,
        label=label,
        expires_at=expires_at,
        prefix=token[:TOKEN_PREFIX_LEN],
    )
    if now is not None:
        row.created_at = now
    session.add(row)
    await session.flush()
    return token


class TokenRefused(Exception):
    """A token that does not let its bearer in; the message says why and what to do."""


ASK_FOR_A_TOKEN = "ask a supervisor for a new one (callcenter tokens create, or POST /api/tokens)"


async def authenticate(session: AsyncSession, token: str, now: datetime) -> Principal:
    """The user a token belongs to, or `TokenRefused` (unknown, revoked, expired, or its user
    deactivated)."""
    row = (
        await session.execute(
            select(
                Specialist.id,
                Specialist.name,
                Specialist.role,
                Specialist.active,
                ApiToken.revoked_at,
                ApiToken.expires_at,
            )
            .join(ApiToken, ApiToken.specialist_id == Specialist.id)
            .where(ApiToken.token_sha256 == _digest(token))
        )
    ).first()
    if row is None:
        raise TokenRefused(f"unknown token: check that it was copied whole, or {ASK_FOR_A_TOKEN}")
    if row.revoked_at is not None:
        raise TokenRefused(
            f"this token was revoked on {row.revoked_at:%Y-%m-%d %H:%M} UTC; {ASK_FOR_A_TOKEN}"
        )
    if row.expires_at is not None and row.expires_at <= now:
        raise TokenRefused(
            f"this token expired on {row.expires_at:%Y-%m-%d %H:%M} UTC; {ASK_FOR_A_TOKEN}"
        )
    if not row.active:
        raise TokenRefused("this user is deactivated; a supervisor can activate them again")
    return Principal(user_id=row.id, name=row.name, role=row.role)


# ---------------------------------------------------------------------------------------------
# Managing tokens (the `tokens` command and the supervisors' API)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenInfo:
    """A token as lists show it: never its secret."""

    id: int
    prefix: str | None
    specialist_id: int
    specialist: str
    role: str
    label: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    state: str  # active, expired, revoked

    def to_dict(self) -> dict[str, Any]:
        def iso(d: datetime | None) -> str | None:
            return d.isoformat() if d else None

        return {
            "id": self.id,
            "prefix": self.prefix,
            "specialist_id": self.specialist_id,
            "specialist": self.specialist,
            "role": self.role,
            "label": self.label,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "state": self.state,
        }

    def line(self) -> str:
        shown = f"{self.prefix}…" if self.prefix else "(issued before prefixes)"
        expiry = f"expires {self.expires_at:%Y-%m-%d %H:%M} UTC" if self.expires_at else "no expiry"
        if self.revoked_at:
            expiry = f"revoked {self.revoked_at:%Y-%m-%d %H:%M} UTC"
        return (
            f"#{self.id}  {shown:15} {self.specialist} (#{self.specialist_id}, {self.role})  "
            f"{self.state}, {expiry}" + (f"  [{self.label}]" if self.label else "")
        )


class TokenError(Exception):
    """A token request that cannot be done; `status` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _state(t: ApiToken, now: datetime) -> str:
    if t.revoked_at is not None:
        return "revoked"
    if t.expires_at is not None and t.expires_at <= now:
        return "expired"
    return "active"


def _info(t: ApiToken, user: Specialist, now: datetime) -> TokenInfo:
    return TokenInfo(
        t.id,
        t.prefix,
        user.id,
        user.name,
        user.role,
        t.label,
        t.created_at,
        t.expires_at,
        t.revoked_at,
        _state(t, now),
    )


async def list_tokens(
    session: AsyncSession,
    now: datetime,
    *,
    specialist_id: int | None = None,
    include_inactive: bool = False,
) -> list[TokenInfo]:
    """Tokens, oldest first; by default only those that still let someone in."""
    q = select(ApiToken, Specialist).join(Specialist, ApiToken.specialist_id == Specialist.id)
    if specialist_id is not None:
        q = q.where(ApiToken.specialist_id == specialist_id)
    rows = (await session.execute(q.order_by(ApiToken.id))).all()
    out = [_info(t, u, now) for t, u in rows]
    return out if include_inactive else [t for t in out if t.state == "active"]


def _may_manage(actor_role: str | None, user: Specialist) -> None:
    """A maintainer's token is a maintainer's business (no one gains rights they lack)."""
    if actor_role is not None and user.role == "maintainer" and actor_role != "maintainer":
        raise TokenError(403, "tokens of a maintainer are managed by a maintainer")


async def create_token(
    session: AsyncSession,
    specialist_id: int,
    now: datetime,
    *,
    label: str | None = None,
    expires_at: datetime | None = None,
    actor_role: str | None = None,
) -> tuple[str, TokenInfo]:
    """A new token (its secret, shown once, and its listing); the caller commits."""
    user = await session.get(Specialist, specialist_id)
    if user is None:
        raise TokenError(
            404,
            f"no specialist {specialist_id}: see GET /api/specialists or "
            "callcenter specialists list",
        )
    _may_manage(actor_role, user)
    if not user.active:
        raise TokenError(409, f"{user.name} is deactivated: activate them first")
    if expires_at is not None and expires_at <= now:
        raise TokenError(400, "the expiry must be in the future")
    secret = await issue_token(session, user.id, label, expires_at=expires_at, now=now)
    row = (
        await session.scalars(select(ApiToken).where(ApiToken.token_sha256 == _digest(secret)))
    ).one()
    return secret, _info(row, user, now)


async def revoke_token(
    session: AsyncSession, token_id: int, now: datetime, *, actor_role: str | None = None
) -> TokenInfo:
    """Revoke a token at once (idempotent: revoking it again keeps the first time); the
    caller commits."""
    row = await session.get(ApiToken, token_id)
    if row is None:
        raise TokenError(404, f"no token #{token_id}: see the token list for ids")
    user = await session.get(Specialist, row.specialist_id)
    assert user is not None  # the foreign key cascades
    _may_manage(actor_role, user)
    if row.revoked_at is None:
        row.revoked_at = now
        await session.flush()
    return _info(row, user, now)


_DURATION = re.compile(r"^(\d{1,5})\s*([dhw])$")


def parse_expiry(text: str, now: datetime, tz: str) -> datetime:
    """`30d`, `12h`, `2w`; a date (the token works through that day, in `tz`); or an ISO
    date-time with its zone. Raises ValueError with what is accepted."""
    text = text.strip()
    m = _DURATION.match(text.lower())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        if n == 0:
            raise ValueError("an expiry of 0 would refuse the token at once")
        return (
            now + {"h": timedelta(hours=n), "d": timedelta(days=n), "w": timedelta(weeks=n)}[unit]
        )
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=ZoneInfo(tz))
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ValueError(
            f"expiry {text!r}: give a duration (30d, 12h, 2w), a date (2027-01-31: the token "
            "works through that day) or a date-time with its zone (2027-01-31T18:00+08:00)"
        )
    return when
