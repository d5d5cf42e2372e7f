"""What the seat page shows (the screen pop, my day) and does (dispositions, hang-up).

The appointment picker's rules are `callcenter.pages.appointments`; sign-in, sessions and
logins are `callcenter.pages.accounts`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.pages.appointments import (
    appointment_refusal,
    appointment_slots,
    check_appointment,
    previous_working_day,
)
from callcenter.pages.exceptions import PagesError, UnknownUser
from common.clock import Clock
from crm_sync.auth import Principal
from crm_sync.models import (
    ContactResult,
    Customer,
    Lead,
    Phone,
    Policy,
)
from crm_sync.sales import record_sale
from dialer.models import CallAttempt, Campaign
from dialer.services import DialerService
from recordings.models import Recording, RecordingStatus
from schedules.windows import CallingHours

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
    history, campaign = await _attempt_history(s, who, lead.id)
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
        "phones": [_phone_view(p) for p in phones],
        "policy": _policy_view(policy, now.astimezone(ZoneInfo(tz)).date()),
        "history": history,
        "campaign": campaign or lead.kind,
        "why": why_now(lead, policy, now, tz),
    }


async def _attempt_history(
    s: AsyncSession, who: Principal, lead_id: int
) -> tuple[list[dict[str, Any]], str | None]:
    """The lead's last 30 attempts, newest first, with the recordings the asker may play; and
    the campaign of the newest."""
    attempts = (
        await s.execute(
            select(CallAttempt, Recording.id, Campaign.name)
            .outerjoin(
                Recording,
                (Recording.attempt_id == CallAttempt.attempt_id)
                & (Recording.status == RecordingStatus.STORED.value),  # only what can play
            )
            .outerjoin(Campaign, Campaign.id == CallAttempt.campaign_id)
            .where(CallAttempt.lead_id == lead_id)
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
    return history, attempts[0][2] if attempts else None


def _phone_view(p: Phone) -> dict[str, Any]:
    return {
        "id": p.id,
        "number": p.e164 or p.raw,
        "kind": p.kind,
        "role": p.role,
        "accuracy": p.accuracy,
        "accuracy_reason": p.accuracy_reason,
        "do_not_call": p.do_not_call,
        "valid": p.valid,
    }


def _policy_view(policy: Policy, today: date) -> dict[str, Any]:
    return {
        "policy_number": policy.policy_number,
        "previous_policy_number": policy.previous_policy_number,
        "plate_number": policy.plate_number,
        "make_model": policy.make_model,
        "use_type": policy.use_type,
        "expiry_date": policy.expiry_date.isoformat(),
        "days_to_expiry": (policy.expiry_date - today).days,
        "premium": str(policy.premium) if policy.premium is not None else None,
        "renewed": policy.renewed,
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


async def _queue(s: AsyncSession, mine: Any, now: datetime) -> dict[str, dict[str, int]]:
    """One's open leads per kind: how many, and how many are due now."""
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
        .where(mine, Lead.status.in_(("assigned", "scheduled")))
        .group_by(Lead.kind)
    )
    queue = {kind: {"total": int(total), "due": int(due or 0)} for kind, total, due in queue_rows}
    return queue


async def _today_lists(
    s: AsyncSession, mine: Any, day_start: datetime
) -> tuple[Sequence[Any], Sequence[Any]]:
    """What one finished today (newest first) and one's appointments from today on."""
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
    return finished, appointments


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
    queue = await _queue(s, mine, now)
    finished, appointments = await _today_lists(s, mine, day_start)
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
