"""Rows for the calendar's database tests, created directly (no import file needed)."""

from __future__ import annotations

import itertools
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.models import Branch, Customer, Lead, Phone, Policy, Specialist
from dialer.models import AttemptState, CallAttempt, CampaignKind, DialMode
from dialer.results import Effects, Finished, record_result
from schedules.config import DeskCalendar

_seq = itertools.count(1)


async def specialists(session: AsyncSession, n: int, **kw: object) -> list[Specialist]:
    out = []
    for _ in range(n):
        i = next(_seq)
        s = Specialist(name=f"专员{i}", seat=f"PJSIP/{8000 + i}", **kw)
        session.add(s)
        out.append(s)
    await session.flush()
    return out


async def branch(session: AsyncSession, code: str = "SZ") -> Branch:
    b = Branch(code=f"{code}{next(_seq)}", name=f"{code} 分公司", email="b@example.com")
    session.add(b)
    await session.flush()
    return b


async def policy_with_lead(
    session: AsyncSession,
    expiry: date,
    *,
    kind: str | None = "renewal",
    status: str = "new",
    due_on: date | None = None,
    renewed: bool = False,
    underwritten_at: datetime | None = None,
    branch_id: int | None = None,
    owner_id: int | None = None,
    distributed_on: date | None = None,
    contact_result: str | None = None,
) -> tuple[Policy, Lead | None]:
    i = next(_seq)
    holder = Customer(name=f"客户{i}", match_key=f"c{i}")
    holder.phones.append(Phone(raw=f"1380000{i:04d}", e164=f"+86138000{i:05d}", kind="mobile"))
    p = Policy(
        policy_number=f"P{i:07d}",
        policyholder=holder,
        expiry_date=expiry,
        renewed=renewed,
        underwritten_at=underwritten_at,
        branch_id=branch_id,
    )
    session.add(p)
    await session.flush()
    lead = None
    if kind is not None:
        lead = Lead(
            policy_id=p.id,
            kind=kind,
            status=status,
            due_on=due_on,
            phone_id=holder.phones[0].id,
            owner_id=owner_id,
            distributed_on=distributed_on,
            contact_result=contact_result,
        )
        session.add(lead)
        await session.flush()
    return p, lead


async def call_ended(
    session: AsyncSession,
    lead: Lead,
    outcome: str,
    *,
    now: datetime,
    desk: DeskCalendar,
    mode: str | None = None,
    kind: str | None = None,
    key: str | None = None,
) -> Effects:
    """What the dialer writes when a call to `lead` ends with `outcome` at `now`: the attempt
    row, then the result through `dialer.results.record_result`, the one path the service uses
    (a callback lead is dialled by the automatic campaign unless a specialist owns it)."""
    phone = await session.get(Phone, lead.phone_id) if lead.phone_id else None
    if mode is None:
        automatic = lead.kind == CampaignKind.CALLBACK.value and lead.owner_id is None
        mode = DialMode.AUTOMATIC.value if automatic else DialMode.SEAT_FIRST.value
    attempt = CallAttempt(
        attempt_id=f"att-test-{next(_seq)}",
        lead_id=lead.id,
        phone_id=lead.phone_id,
        number=phone.e164 if phone is not None and phone.e164 else "0",
        specialist_id=lead.owner_id,
        mode=mode,
        campaign_kind=kind or lead.kind,
        ami_server="test",
        state=AttemptState.SENT.value,
        created_at=now,
        sent_at=now,
    )
    session.add(attempt)
    await session.flush()
    answered = outcome == "answered"
    fin = Finished(
        attempt.attempt_id, outcome, answered=answered, bridged=answered, key_pressed=key
    )
    return await record_result(
        session, attempt, fin, now=now, hours_for=desk.hours, retry=desk.retry
    )
