"""Sign-in, sessions and logins for the web pages.

`Accounts` owns the passwords (argon2id via argon2-cffi), the lockout (five wrong passwords
lock a login for 15 minutes; a supervisor's password reset lifts it), a per-address limit on
tries, and the sessions (a random id in a cookie, stored hashed, with its own CSRF token).
Time comes from the clock so tests drive lockouts and expiry with a VirtualClock.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.pages.exceptions import (
    PagesError,
    SignInRefused,
    TooManyTries,
    UnknownUser,
)
from callcenter.pages.models import WebLogin, WebSession
from common.clock import Clock
from crm_sync.auth import ApiToken, Principal
from crm_sync.models import (
    Specialist,
)

log = logging.getLogger(__name__)

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=12)  # one working day; then sign in again
PER_ADDRESS_TRIES = 20  # wrong passwords from one address per minute, across all names
MIN_PASSWORD = 8


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class SignedIn:
    session_id: str  # the cookie value; shown only to the browser
    csrf_token: str
    principal: Principal


@dataclass(frozen=True, slots=True)
class SessionInfo:
    principal: Principal
    csrf_token: str


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise PagesError(f"a password needs at least {MIN_PASSWORD} characters")


class Accounts:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        hasher: PasswordHasher | None = None,
        tz: str = "Asia/Shanghai",
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.tz = tz
        self.hasher = hasher or PasswordHasher()
        # Compared against when the name is unknown, so both cases cost one hash.
        self._dummy = self.hasher.hash(secrets.token_hex(8))
        self._tries: dict[str, deque[float]] = {}

    # -- passwords -------------------------------------------------------------------------
    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def _verify(self, hashed: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self.hasher.verify(hashed, password)
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)

    def _address_allows(self, address: str) -> bool:
        now = self.clock.monotonic()
        tries = self._tries.setdefault(address, deque())
        while tries and tries[0] <= now - 60:
            tries.popleft()
        return len(tries) < PER_ADDRESS_TRIES

    def _address_failed(self, address: str) -> None:
        self._tries.setdefault(address, deque()).append(self.clock.monotonic())

    # -- sign-in and sessions --------------------------------------------------------------
    async def sign_in(self, username: str, password: str, address: str) -> SignedIn:
        if not self._address_allows(address):
            raise TooManyTries(
                "too many wrong passwords from this computer; wait a minute", "too_many"
            )
        now = self.clock.now()
        async with self.sessions() as s:
            login = (
                await s.scalars(select(WebLogin).where(WebLogin.username == username.strip()))
            ).one_or_none()
            if login is None:
                await self._verify(self._dummy, password)
                self._address_failed(address)
                raise SignInRefused("wrong user name or password", "wrong")
            if login.locked_until is not None and login.locked_until > now:
                self._address_failed(address)
                until = f"{login.locked_until.astimezone(ZoneInfo(self.tz)):%H:%M}"
                raise SignInRefused(
                    f"this login is locked after too many wrong passwords; try again after "
                    f"{until} or ask your supervisor to reset the password",
                    "locked",
                    until=until,
                )
            if not await self._verify(login.password_hash, password):
                self._address_failed(address)
                login.failed_count += 1
                if login.failed_count >= MAX_FAILURES:
                    login.locked_until = now + LOCKOUT
                    login.failed_count = 0
                    log.warning("login %s locked after %d wrong passwords", username, MAX_FAILURES)
                await s.commit()
                raise SignInRefused("wrong user name or password", "wrong")
            user = await s.get(Specialist, login.specialist_id)
            if login.disabled_at is not None or user is None or not user.active:
                raise SignInRefused("this login is disabled; ask your supervisor", "disabled")
            login.failed_count = 0
            login.locked_until = None
            sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            s.add(
                WebSession(
                    sid_sha256=_digest(sid),
                    specialist_id=user.id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + SESSION_LIFETIME,
                    address=address[:64],
                )
            )
            await s.commit()
            log.info("specialist %s signed in to the web pages", user.id)
            return SignedIn(sid, csrf, Principal(user.id, user.name, user.role))

    async def session(self, session_id: str) -> SessionInfo | None:
        """The signed-in user of a cookie, or None (unknown, expired, disabled)."""
        if not session_id:
            return None
        async with self.sessions() as s:
            row = (
                await s.execute(
                    select(
                        WebSession.csrf_token,
                        WebSession.expires_at,
                        Specialist.id,
                        Specialist.name,
                        Specialist.role,
                        Specialist.active,
                        WebLogin.disabled_at,
                    )
                    .join(Specialist, Specialist.id == WebSession.specialist_id)
                    .join(WebLogin, WebLogin.specialist_id == Specialist.id)
                    .where(WebSession.sid_sha256 == _digest(session_id))
                )
            ).first()
        if row is None or row.expires_at <= self.clock.now():
            return None
        if not row.active or row.disabled_at is not None:
            return None
        return SessionInfo(Principal(row.id, row.name, row.role), row.csrf_token)

    async def sign_out(self, session_id: str) -> None:
        async with self.sessions() as s:
            await s.execute(delete(WebSession).where(WebSession.sid_sha256 == _digest(session_id)))
            await s.commit()

    # -- managing logins (supervisors; `callcenter users`) -----------------------------------
    async def _specialist(self, s: AsyncSession, who: str | int) -> Specialist:
        if isinstance(who, str) and who.isascii() and who.isdigit():
            who = int(who)
        if isinstance(who, int):
            # Beyond the id column's range nobody can be meant (PostgreSQL would refuse it).
            user = await s.get(Specialist, who) if 0 < who < 2**31 else None
        else:
            user = (
                await s.scalars(
                    select(Specialist)
                    .outerjoin(WebLogin, WebLogin.specialist_id == Specialist.id)
                    .where(
                        or_(
                            Specialist.name == who,
                            Specialist.seat == who,
                            WebLogin.username == who,
                        )
                    )
                )
            ).first()
        if user is None:
            raise UnknownUser(
                f"no specialist {who!r}: give an id, seat or name (`callcenter specialists`)"
            )
        return user

    async def add(self, who: str | int, username: str, password: str) -> dict[str, Any]:
        username = username.strip()
        if not username or len(username) > 64 or any(c.isspace() for c in username):
            raise PagesError("a user name is 1 to 64 characters without spaces")
        check_password_rules(password)
        hashed = await self._hash(password)
        async with self.sessions() as s:
            user = await self._specialist(s, who)
            taken = await s.scalar(select(WebLogin).where(WebLogin.username == username))
            if taken is not None:
                raise PagesError(f"user name {username!r} is taken; choose another")
            if await s.get(WebLogin, user.id) is not None:
                raise PagesError(f"{user.name} has a login already; reset the password instead")
            s.add(
                WebLogin(
                    specialist_id=user.id,
                    username=username,
                    password_hash=hashed,
                    failed_count=0,
                    password_set_at=self.clock.now(),
                )
            )
            await s.commit()
            return _user_view(user, username, None)

    async def set_password(self, who: str | int, password: str) -> dict[str, Any]:
        """Reset a password: lifts a lockout, re-enables nothing, ends the user's sessions."""
        check_password_rules(password)
        hashed = await self._hash(password)
        async with self.sessions() as s:
            user = await self._specialist(s, who)
            login = await s.get(WebLogin, user.id)
            if login is None:
                raise UnknownUser(f"{user.name} has no login yet: add one first")
            login.password_hash = hashed
            login.password_set_at = self.clock.now()
            login.failed_count = 0
            login.locked_until = None
            await s.execute(delete(WebSession).where(WebSession.specialist_id == user.id))
            await s.commit()
            return _user_view(user, login.username, login.disabled_at)

    async def disable(self, who: str | int) -> dict[str, Any]:
        """No more sign-ins: ends the web sessions and revokes the API tokens too."""
        now = self.clock.now()
        async with self.sessions() as s:
            user = await self._specialist(s, who)
            login = await s.get(WebLogin, user.id)
            if login is not None:
                login.disabled_at = now
            await s.execute(delete(WebSession).where(WebSession.specialist_id == user.id))
            await s.execute(
                update(ApiToken)
                .where(ApiToken.specialist_id == user.id, ApiToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            await s.commit()
            return _user_view(user, login.username if login else None, now)

    async def list(self) -> list[dict[str, Any]]:
        async with self.sessions() as s:
            rows = await s.execute(
                select(Specialist, WebLogin.username, WebLogin.disabled_at, WebLogin.locked_until)
                .outerjoin(WebLogin, WebLogin.specialist_id == Specialist.id)
                .order_by(Specialist.id)
            )
            out = []
            for user, username, disabled_at, locked_until in rows:
                view = _user_view(user, username, disabled_at)
                view["locked"] = locked_until is not None and locked_until > self.clock.now()
                out.append(view)
            return out


def _user_view(
    user: Specialist, username: str | None, disabled_at: datetime | None
) -> dict[str, Any]:
    return {
        "id": user.id,
        "name": user.name,
        "seat": user.seat,
        "role": user.role,
        "username": username,
        "disabled": disabled_at is not None,
    }
