"""The CRM's changes coming in: what the CRM or the core system knows first.

Four kinds (docs/crm.md#inbound-changes):

- `policy.renewed_elsewhere` `{"policy_number"}`: the policy's open leads close at once with
  the contact result `renewed_elsewhere`; the dialer checks the lead again just before the
  Originate, so a call already claimed or queued for it is not dialled.
- `phone.corrected` `{"policy_number", "phone"}`: the policyholder's corrected number becomes
  the leads' number with accuracy reset to unknown; the three-call count is per number, so it
  starts again; a lead closed as unreachable (wrong number) opens again.
- `customer.do_not_call` `{"phone", "do_not_call": true|false}`: the number is (no longer)
  called by any campaign.
- `specialist.leave` `{"specialist_id" or "seat", "on_leave": true|false}`: on leave, their
  open leads lose their owner and go back into the next distribution.

Every change carries the CRM's own `change_id` (a change sent twice is applied once) and its
`changed_at` (of two changes to the same thing, the later by the CRM's clock wins, whatever
order they arrive in). Each is audited in `crm_changes`, applied or not, and its effects are
written in the same transaction as its audit row. Reading and checking a change (its kinds,
`parse_change`, `parse_changes`) is `crm_sync.change_parsing`; this module applies them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.change_parsing import Change, ChangeKind, ChangeResult, Outcome
from crm_sync.models import (
    Accuracy,
    CrmChange,
    Lead,
    LeadStatus,
    Phone,
    PhoneRole,
    Policy,
    Specialist,
)
from crm_sync.outbox import lead_message, status_message
from crm_sync.phones import parse_phone

log = logging.getLogger(__name__)

OPEN_STATUSES = (
    LeadStatus.NEW.value,
    LeadStatus.DUE.value,
    LeadStatus.ASSIGNED.value,
    LeadStatus.SCHEDULED.value,
)
OWNED_STATUSES = (LeadStatus.ASSIGNED.value, LeadStatus.SCHEDULED.value)
# Closed leads a corrected number opens again: closed because the number did not work.
REOPENED_RESULTS = ("unreachable", "wrong_number")


async def _renewed_elsewhere(session: AsyncSession, c: Change, now: datetime) -> ChangeResult:
    policy = await session.scalar(
        select(Policy).where(Policy.policy_number == c.data["policy_number"])
    )
    if policy is None:
        return ChangeResult(c.change_id, Outcome.REJECTED, f"no policy {c.data['policy_number']}")
    leads = (
        await session.scalars(
            select(Lead)
            .where(Lead.policy_id == policy.id, Lead.status.in_(OPEN_STATUSES))
            .with_for_update()
        )
    ).all()
    reason = f"renewed elsewhere (CRM change {c.change_id})"
    for lead in leads:
        old = lead.status
        lead.status = LeadStatus.CLOSED.value
        lead.contact_result = "renewed_elsewhere"
        lead.contact_result_at = now
        lead.closed_reason = reason
        lead.next_attempt_at = None
        lead.callback_at = None
        lead.updated_at = now
        lead_message(
            session,
            "lead.contact_result",
            lead.id,
            {
                "lead_id": lead.id,
                "contact_result": "renewed_elsewhere",
                "by": "crm",
                "reason": reason,
            },
            now,
        )
        status_message(session, lead, old, reason, now)
    ids = tuple(lead.id for lead in leads)
    return ChangeResult(c.change_id, Outcome.APPLIED, f"{len(ids)} open lead(s) closed", ids)


async def _corrected_number(
    session: AsyncSession, policy: Policy, c: Change, now: datetime
) -> Phone:
    """The policyholder's stored number for the change (added as `corrected` if new),
    valid again and its accuracy back to unknown."""
    e164 = c.data["e164"]
    phone = await session.scalar(
        select(Phone).where(Phone.customer_id == policy.policyholder_id, Phone.e164 == e164)
    )
    parsed = parse_phone(c.data["phone"])
    if phone is None:
        phone = Phone(
            customer_id=policy.policyholder_id,
            role=PhoneRole.CORRECTED.value,
            kind=parsed.kind.value,
            raw=c.data["phone"],
            e164=e164,
            extension=parsed.extension,
        )
        session.add(phone)
    phone.valid = True
    phone.invalid_reason = None
    phone.accuracy = Accuracy.UNKNOWN.value
    phone.accuracy_reason = f"corrected by the CRM (change {c.change_id})"
    phone.accuracy_set_at = now
    await session.flush()
    return phone


def _call_again(lead: Lead, phone_id: int, now: datetime) -> None:
    """The lead calls the corrected number now; closed for a number that did not work, it
    opens again (its owner's, or due)."""
    lead.phone_id = phone_id
    lead.next_attempt_at = now
    lead.updated_at = now
    if lead.status == LeadStatus.CLOSED.value:
        lead.status = (
            LeadStatus.ASSIGNED.value if lead.owner_id is not None else LeadStatus.DUE.value
        )
        lead.contact_result = None
        lead.contact_result_at = None
        lead.closed_reason = None
        if lead.due_on is None or lead.due_on > now.date():
            lead.due_on = now.date()


async def _phone_corrected(session: AsyncSession, c: Change, now: datetime) -> ChangeResult:
    policy = await session.scalar(
        select(Policy).where(Policy.policy_number == c.data["policy_number"])
    )
    if policy is None:
        return ChangeResult(c.change_id, Outcome.REJECTED, f"no policy {c.data['policy_number']}")
    phone = await _corrected_number(session, policy, c, now)
    leads = (
        await session.scalars(
            select(Lead)
            .where(
                Lead.policy_id == policy.id,
                or_(
                    Lead.status.in_(OPEN_STATUSES),
                    Lead.contact_result.in_(REOPENED_RESULTS),
                ),
            )
            .with_for_update()
        )
    ).all()
    reason = f"phone corrected by the CRM (change {c.change_id})"
    for lead in leads:
        old = lead.status
        _call_again(lead, phone.id, now)
        lead_message(
            session,
            "phone.accuracy",
            lead.id,
            {"phone_id": phone.id, "accuracy": phone.accuracy, "reason": reason},
            now,
        )
        status_message(session, lead, old, reason, now)
    ids = tuple(lead.id for lead in leads)
    return ChangeResult(
        c.change_id, Outcome.APPLIED, f"{len(ids)} lead(s) now call {c.data['e164']}", ids
    )


async def _do_not_call(session: AsyncSession, c: Change, now: datetime) -> ChangeResult:
    phones = (await session.scalars(select(Phone).where(Phone.e164 == c.data["e164"]))).all()
    if not phones:
        return ChangeResult(c.change_id, Outcome.REJECTED, f"no customer has {c.data['e164']}")
    for phone in phones:
        phone.do_not_call = c.data["do_not_call"]
    word = "not to be called" if c.data["do_not_call"] else "callable again"
    return ChangeResult(c.change_id, Outcome.APPLIED, f"{len(phones)} phone(s) {word}")


async def _leave(session: AsyncSession, c: Change, now: datetime, today: date) -> ChangeResult:
    if "specialist_id" in c.data:
        who = await session.get(Specialist, c.data["specialist_id"], with_for_update=True)
    else:
        who = await session.scalar(select(Specialist).where(Specialist.seat == c.data["seat"]))
    if who is None:
        return ChangeResult(c.change_id, Outcome.REJECTED, f"no specialist {c.subject}")
    who.on_leave = c.data["on_leave"]
    if not who.on_leave:
        return ChangeResult(c.change_id, Outcome.APPLIED, f"specialist {who.id} is back")
    leads = (
        await session.scalars(
            select(Lead)
            .where(Lead.owner_id == who.id, Lead.status.in_(OWNED_STATUSES))
            .with_for_update()
        )
    ).all()
    reason = f"owner {who.id} on leave (CRM change {c.change_id}): back to distribution"
    for lead in leads:
        old = lead.status
        lead.owner_id = None
        lead.distributed_on = None
        lead.status = LeadStatus.DUE.value
        if lead.due_on is None or lead.due_on > today:
            lead.due_on = today
        lead.updated_at = now
        status_message(session, lead, old, reason, now)
    ids = tuple(lead.id for lead in leads)
    return ChangeResult(
        c.change_id, Outcome.APPLIED, f"{len(ids)} open lead(s) back to distribution", ids
    )


async def apply_change(
    session: AsyncSession, change: Change, now: datetime, source: str, today: date | None = None
) -> ChangeResult:
    """Apply one change in the caller's transaction (the caller commits), audited."""
    seen = await session.scalar(select(CrmChange).where(CrmChange.change_id == change.change_id))
    if seen is not None:
        return ChangeResult(
            change.change_id, Outcome.DUPLICATE, f"already received ({seen.outcome})"
        )
    later = await session.scalar(
        select(CrmChange.change_id).where(
            CrmChange.kind == change.kind.value,
            CrmChange.subject == change.subject,
            CrmChange.outcome == Outcome.APPLIED.value,
            CrmChange.changed_at > change.changed_at,
        )
    )
    if later is not None:
        result = ChangeResult(
            change.change_id, Outcome.STALE, f"change {later} (later by the CRM's clock) wins"
        )
    elif change.kind == ChangeKind.RENEWED_ELSEWHERE:
        result = await _renewed_elsewhere(session, change, now)
    elif change.kind == ChangeKind.PHONE_CORRECTED:
        result = await _phone_corrected(session, change, now)
    elif change.kind == ChangeKind.DO_NOT_CALL:
        result = await _do_not_call(session, change, now)
    else:
        result = await _leave(session, change, now, today or now.date())
    session.add(
        CrmChange(
            change_id=change.change_id,
            kind=change.kind.value,
            subject=change.subject,
            changed_at=change.changed_at,
            received_at=now,
            source=source,
            outcome=result.outcome.value,
            detail=result.detail,
            payload=dict(change.raw),
        )
    )
    # A unique change id: the same change arriving twice at once fails here (see below).
    await session.flush()
    log.info(
        "CRM change %s (%s %s): %s", change.change_id, change.kind, change.subject, result.detail
    )
    return result


async def apply_changes(
    sessions: async_sessionmaker[AsyncSession],
    changes: Sequence[Change],
    now: datetime,
    source: str,
    today: date | None = None,
) -> list[ChangeResult]:
    """Each change in its own transaction, in the order given (the CRM's clock still decides
    between two changes to the same thing)."""
    results: list[ChangeResult] = []
    for change in changes:
        try:
            async with sessions() as s, s.begin():
                results.append(await apply_change(s, change, now, source, today))
        except IntegrityError:
            # The same change id committed by a concurrent request first: ours, effects
            # and all, is rolled back; theirs stands.
            results.append(
                ChangeResult(change.change_id, Outcome.DUPLICATE, "received twice at once")
            )
    return results
