"""Sign-in, sessions and logins for the web pages, and what the seat page shows.

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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.pages.exceptions import (
    AppointmentRefused,
    PagesError,
    SignInRefused,
    TooManyTries,
    UnknownUser,
)
from callcenter.pages.models import WebLogin, WebSession
from common.clock import Clock
from crm_sync.auth import ApiToken, Principal
from crm_sync.models import (
    ContactResult,
    Customer,
    Lead,
    Phone,
    Policy,
    Specialist,
)
from crm_sync.sales import record_sale
from dialer.models import CallAttempt, Campaign
from dialer.services import DialerService
from recordings.models import Recording, RecordingStatus
from schedules.windows import CallingHours

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


# -- the appointment picker: only times inside the calling windows -----------------------------


def appointment_refusal(hours: CallingHours, when: datetime, now: datetime) -> PagesError | None:
    """Why a callback time cannot be booked (None when it can): the past, a day off, or
    outside the day's calling windows (the reason names the windows)."""
    if when.tzinfo is None:
        return AppointmentRefused("the time needs a time zone", "no_zone")
    if when <= now:
        return AppointmentRefused("this time is in the past; choose a later one", "past")
    local = when.astimezone(ZoneInfo(hours.tz))
    day = f"{local:%Y-%m-%d}"
    if not hours.is_calling_day(local.date()):
        return AppointmentRefused(
            f"{day} is not a working day (weekend or public holiday); choose another day",
            "day_off",
            day=day,
        )
    if not any(when in slot for slot in hours.slots_on(local.date())):
        windows = ", ".join(str(w) for w in hours.windows)
        return AppointmentRefused(
            f"{local:%H:%M} is outside the calling windows ({windows}); choose a time inside",
            "outside",
            time=f"{local:%H:%M}",
            windows=windows,
        )
    return None


def check_appointment(hours: CallingHours, when: datetime, now: datetime) -> None:
    refusal = appointment_refusal(hours, when, now)
    if refusal is not None:
        raise refusal


def appointment_slots(hours: CallingHours, now: datetime, days: int = 10) -> list[dict[str, str]]:
    """The openings of the next working days, for the picker (local wall-clock times)."""
    tz = ZoneInfo(hours.tz)
    out = []
    day = now.astimezone(tz).date()
    seen = 0
    while seen < days:
        slots = hours.slots_on(day)
        if slots:
            seen += 1
            for slot in slots:
                if slot.end > now:
                    start = max(slot.start, now)
                    out.append(
                        {
                            "day": day.isoformat(),
                            "start": start.astimezone(tz).strftime("%H:%M"),
                            "end": slot.end.astimezone(tz).strftime("%H:%M"),
                        }
                    )
        day += timedelta(days=1)
    return out


# -- what the seat page shows --------------------------------------------------------------------


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


async def contact_results(s: AsyncSession) -> list[dict[str, Any]]:
    """The standard contact results (标准联系结果) a specialist may choose."""
    rows = await s.scalars(
        select(ContactResult)
        .where(ContactResult.telephony.is_(False))
        .order_by(ContactResult.sort_order, ContactResult.code)
    )
    return [
        {"code": r.code, "label_zh": r.label_zh, "label_en": r.label_en, "final": r.final}
        for r in rows
    ]


async def lead_details(
    s: AsyncSession, who: Principal, lead_id: int, now: datetime, tz: str
) -> dict[str, Any] | None:
    """Everything the screen pop shows beyond the call itself: every phone of the customer
    with its accuracy, the vehicle, last year's policy, the attempts with their outcomes and
    the recordings the asker may play, the campaign and why the lead is called now.
    None when the lead is not the asker's (a specialist must not learn it exists)."""
    lead = await s.get(Lead, lead_id)
    if lead is None or not who.can_see_specialist(lead.owner_id):
        return None
    policy = await s.get(Policy, lead.policy_id)
    assert policy is not None
    customer = await s.get(Customer, policy.policyholder_id)
    phones = (
        await s.scalars(
            select(Phone).where(Phone.customer_id == policy.policyholder_id).order_by(Phone.id)
        )
    ).all()
    attempts = (
        await s.execute(
            select(CallAttempt, Recording.id, Campaign.name)
            .outerjoin(
                Recording,
                (Recording.attempt_id == CallAttempt.attempt_id)
                & (Recording.status == RecordingStatus.STORED.value),  # only what can play
            )
            .outerjoin(Campaign, Campaign.id == CallAttempt.campaign_id)
            .where(CallAttempt.lead_id == lead.id)
            .order_by(CallAttempt.created_at.desc(), CallAttempt.id.desc())
            .limit(30)
        )
    ).all()
    history = []
    for a, recording_id, _campaign in attempts:
        playable = recording_id is not None and who.can_see_specialist(a.specialist_id)
        history.append(
            {
                "attempt_id": a.attempt_id,
                "at": _iso(a.created_at),
                "number": a.number,
                "outcome": a.outcome,
                "contact_result": a.contact_result,
                "talk_seconds": a.talk_seconds,
                "recording_id": recording_id if playable else None,
            }
        )
    campaign = attempts[0][2] if attempts else None
    return {
        "lead": {
            "id": lead.id,
            "kind": lead.kind,
            "status": lead.status,
            "contact_result": lead.contact_result,
            "callback_at": _iso(lead.callback_at),
            "attempt_count": lead.attempt_count,
            "distributed_on": _iso(lead.distributed_on),
        },
        "customer": {
            "name": customer.name if customer else None,
            "address": customer.address if customer else None,
        },
        "phones": [
            {
                "id": p.id,
                "number": p.e164 or p.raw,
                "kind": p.kind,
                "role": p.role,
                "accuracy": p.accuracy,
                "accuracy_reason": p.accuracy_reason,
                "do_not_call": p.do_not_call,
                "valid": p.valid,
            }
            for p in phones
        ],
        "policy": {
            "policy_number": policy.policy_number,
            "previous_policy_number": policy.previous_policy_number,
            "plate_number": policy.plate_number,
            "make_model": policy.make_model,
            "use_type": policy.use_type,
            "expiry_date": policy.expiry_date.isoformat(),
            "days_to_expiry": (policy.expiry_date - now.astimezone(ZoneInfo(tz)).date()).days,
            "premium": str(policy.premium) if policy.premium is not None else None,
            "renewed": policy.renewed,
        },
        "history": history,
        "campaign": campaign or lead.kind,
        "why": why_now(lead, policy, now, tz),
    }


def why_now(lead: Lead, policy: Policy, now: datetime, tz: str) -> dict[str, Any]:
    """Why the dialer chose this lead now, as a reason code and its figures (the page words
    it in the person's language)."""
    z = ZoneInfo(tz)
    if lead.callback_at is not None and lead.callback_at <= now + timedelta(minutes=30):
        return {"code": "appointment", "at": lead.callback_at.astimezone(z).strftime("%H:%M")}
    if lead.attempt_count:
        return {"code": "retry", "attempts": lead.attempt_count}
    days = (policy.expiry_date - now.astimezone(z).date()).days
    if days < 0:
        return {"code": "lapsed", "days": -days}
    return {"code": "expiry", "days": days}


async def my_day(
    s: AsyncSession, who: Principal, now: datetime, hours: CallingHours
) -> dict[str, Any]:
    """Today's queue (counts by kind, what is due), what was finished today, appointments,
    and node 3: every lead handed out on the last working day needs a contact result by
    17:00 today; the ones still missing one are listed."""
    tz = ZoneInfo(hours.tz)
    today = now.astimezone(tz).date()
    day_start = datetime.combine(today, time(0, 0), tzinfo=tz)
    mine = Lead.owner_id == who.user_id
    open_ = Lead.status.in_(("assigned", "scheduled"))
    queue_rows = await s.execute(
        select(
            Lead.kind,
            func.count(),
            func.sum(
                case(
                    (or_(Lead.next_attempt_at.is_(None), Lead.next_attempt_at <= now), 1),
                    else_=0,
                )
            ),
        )
        .where(mine, open_)
        .group_by(Lead.kind)
    )
    queue = {kind: {"total": int(total), "due": int(due or 0)} for kind, total, due in queue_rows}
    finished = (
        await s.execute(
            select(
                Lead.id,
                Lead.contact_result,
                Lead.contact_result_at,
                Policy.plate_number,
                Customer.name,
            )
            .join(Policy, Policy.id == Lead.policy_id)
            .join(Customer, Customer.id == Policy.policyholder_id)
            .where(mine, Lead.contact_result_at >= day_start)
            .order_by(Lead.contact_result_at.desc())
            .limit(50)
        )
    ).all()
    appointments = (
        await s.execute(
            select(Lead.id, Lead.callback_at, Policy.plate_number, Customer.name)
            .join(Policy, Policy.id == Lead.policy_id)
            .join(Customer, Customer.id == Policy.policyholder_id)
            .where(mine, Lead.callback_at >= day_start, Lead.status != "closed")
            .order_by(Lead.callback_at)
            .limit(50)
        )
    ).all()
    handed_on = previous_working_day(hours, today)
    missing = (
        await s.execute(
            select(Lead.id, Policy.plate_number, Customer.name, Lead.kind)
            .join(Policy, Policy.id == Lead.policy_id)
            .join(Customer, Customer.id == Policy.policyholder_id)
            .where(mine, Lead.distributed_on == handed_on, Lead.contact_result.is_(None))
            .order_by(Lead.id)
            .limit(200)
        )
    ).all()
    deadline = datetime.combine(today, time(17, 0), tzinfo=tz)
    return {
        "today": today.isoformat(),
        "queue": queue,
        "finished": [
            {"lead_id": r[0], "result": r[1], "at": _iso(r[2]), "plate": r[3], "customer": r[4]}
            for r in finished
        ],
        "appointments": [
            {"lead_id": r[0], "at": _iso(r[1]), "plate": r[2], "customer": r[3]}
            for r in appointments
        ],
        "deadline": {
            "handed_out_on": _iso(handed_on),
            "due_at": deadline.isoformat(),
            "seconds_left": max(0, int((deadline - now).total_seconds())),
            "missing": [
                {"lead_id": r[0], "plate": r[1], "customer": r[2], "kind": r[3]} for r in missing
            ],
        },
    }


def previous_working_day(hours: CallingHours, today: date) -> date:
    day = today - timedelta(days=1)
    for _ in range(30):
        if hours.is_calling_day(day):
            return day
        day -= timedelta(days=1)
    return today - timedelta(days=1)


class SeatPages:
    """What the seat page asks for, over the dialer's service (the same one the JSON API
    uses), so the page and a script see the same rules."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        dialer: DialerService,
        hours_for: Callable[[str], CallingHours],
        tz: str,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.dialer = dialer
        self.hours_for = hours_for
        self.tz = tz

    async def pop(self, who: Principal) -> dict[str, Any] | None:
        """The screen pop: the call on the seat (or the preview offer, or the call in
        wrap-up) with the lead's details; None when the seat has none."""
        call = await self.dialer.current_call(who.user_id)
        if call is None:
            return None
        async with self.sessions() as s:
            details = await lead_details(s, who, call["lead"]["id"], self.clock.now(), self.tz)
        if details is None:  # pragma: no cover - the seat's own call is always its lead
            return None
        details["customer"]["phone"] = call["customer"]["phone"]
        return {**details, "seat": call["seat"], "attempt": call["attempt"]}

    async def lead(self, who: Principal, lead_id: int) -> dict[str, Any] | None:
        async with self.sessions() as s:
            return await lead_details(s, who, lead_id, self.clock.now(), self.tz)

    async def day(self, who: Principal) -> dict[str, Any]:
        async with self.sessions() as s:
            return await my_day(s, who, self.clock.now(), self.hours_for("renewal"))

    async def results(self) -> list[dict[str, Any]]:
        async with self.sessions() as s:
            return await contact_results(s)

    def slots(self, kind: str) -> list[dict[str, str]]:
        return appointment_slots(self.hours_for(kind), self.clock.now())

    def check(self, kind: str, when: datetime) -> PagesError | None:
        return appointment_refusal(self.hours_for(kind), when, self.clock.now())

    async def dispose(
        self,
        who: Principal,
        lead_id: int,
        result: str,
        note: str | None,
        callback_at: datetime | None,
        premium: Decimal | None,
        new_policy_number: str | None = None,
    ) -> dict[str, Any]:
        """A contact result: an appointment outside the windows or working days is refused
        with the reason (the JSON API moves it into the next window instead)."""
        if callback_at is not None:
            async with self.sessions() as s:
                lead = await s.get(Lead, lead_id)
                kind = lead.kind if lead is not None and lead.owner_id == who.user_id else None
            if kind is None:
                raise UnknownUser(f"no lead {lead_id}", "no_lead")
            check_appointment(self.hours_for(kind), callback_at, self.clock.now())
        if premium is not None and result != "renewed":
            raise PagesError("a premium goes only with the result renewed", "premium_not_renewed")
        view = await self.dialer.dispose(lead_id, who.user_id, result, callback_at, note)
        if premium is not None:
            # The sale (node 7): audited, scored and sent to the CRM by crm_sync.sales.
            async with self.sessions() as s:
                view["sale"] = await record_sale(
                    s, lead_id, who, premium, new_policy_number, self.clock.now(), self.tz
                )
                await s.commit()
            view["premium"] = str(premium)
        return view

    async def hang_up(self, who: Principal) -> dict[str, Any]:
        seat = await self.dialer.seat(who.user_id)
        if seat["attempt_id"] is None or seat["state"] not in ("ringing", "on_call"):
            raise PagesError("there is no call on your seat to hang up", "no_call")
        return await self.dialer.hang_up(seat["attempt_id"])
