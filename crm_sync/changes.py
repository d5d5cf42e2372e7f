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
written in the same transaction as its audit row.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.exceptions import CrmError
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


class ChangeKind(enum.StrEnum):
    RENEWED_ELSEWHERE = "policy.renewed_elsewhere"
    PHONE_CORRECTED = "phone.corrected"
    DO_NOT_CALL = "customer.do_not_call"
    SPECIALIST_LEAVE = "specialist.leave"


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # this change id was seen before: nothing done again
    STALE = "stale"  # a later change (by the CRM's clock) to the same thing was applied
    REJECTED = "rejected"  # valid form, but names nothing we know (audited, not applied)


class ChangeError(CrmError):
    """A change that cannot be read: says which field and what is wrong; `index` is the
    change's place (from 0) among those sent together."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


@dataclass(frozen=True, slots=True)
class Change:
    change_id: str
    kind: ChangeKind
    changed_at: datetime
    data: Mapping[str, Any]
    raw: Mapping[str, Any]

    @property
    def subject(self) -> str:
        d = self.data
        if self.kind in (ChangeKind.RENEWED_ELSEWHERE, ChangeKind.PHONE_CORRECTED):
            return f"policy:{d['policy_number']}"
        if self.kind == ChangeKind.DO_NOT_CALL:
            return f"phone:{d['e164']}"
        return f"specialist:{d.get('specialist_id') or d.get('seat')}"


@dataclass(frozen=True, slots=True)
class ChangeResult:
    change_id: str
    outcome: Outcome
    detail: str
    lead_ids: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "change_id": self.change_id,
            "outcome": self.outcome.value,
            "detail": self.detail,
            "lead_ids": list(self.lead_ids),
        }


def _text(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ChangeError(f"{name} is missing or not a non-empty string")
    return value.strip()


def _flag(obj: Mapping[str, Any], name: str, default: bool | None = None) -> bool:
    value = obj.get(name, default)
    if not isinstance(value, bool):
        raise ChangeError(f"{name} must be true or false")
    return value


def parse_change(obj: object) -> Change:
    """A change as the CRM sends it: `{"change_id", "kind", "changed_at", "data": {…}}`."""
    if not isinstance(obj, Mapping):
        raise ChangeError("a change must be a JSON object")
    change_id = _text(obj, "change_id")
    if len(change_id) > 128:
        raise ChangeError("change_id is longer than 128 characters")
    try:
        kind = ChangeKind(_text(obj, "kind"))
    except ValueError:
        raise ChangeError(
            f"kind {obj.get('kind')!r} is not one of {', '.join(k.value for k in ChangeKind)}"
        ) from None
    try:
        changed_at = datetime.fromisoformat(_text(obj, "changed_at"))
    except ValueError:
        raise ChangeError("changed_at must be an ISO 8601 time with its offset") from None
    if changed_at.tzinfo is None:
        raise ChangeError("changed_at needs a UTC offset (e.g. 2026-01-05T10:00:00+08:00)")
    data = obj.get("data")
    if not isinstance(data, Mapping):
        raise ChangeError("data must be an object")
    clean: dict[str, Any] = {}
    if kind in (ChangeKind.RENEWED_ELSEWHERE, ChangeKind.PHONE_CORRECTED):
        clean["policy_number"] = _text(data, "policy_number")
    if kind in (ChangeKind.PHONE_CORRECTED, ChangeKind.DO_NOT_CALL):
        raw = _text(data, "phone")
        parsed = parse_phone(raw)
        if not parsed.valid or parsed.e164 is None:
            raise ChangeError(f"phone {raw!r} cannot be dialled: {parsed.invalid_reason}")
        clean |= {"phone": raw, "e164": parsed.e164}
    if kind == ChangeKind.DO_NOT_CALL:
        clean["do_not_call"] = _flag(data, "do_not_call", True)
    if kind == ChangeKind.SPECIALIST_LEAVE:
        sid, seat = data.get("specialist_id"), data.get("seat")
        if isinstance(sid, int) and not isinstance(sid, bool):
            clean["specialist_id"] = sid
        elif isinstance(seat, str) and seat.strip():
            clean["seat"] = seat.strip()
        else:
            raise ChangeError("specialist.leave needs specialist_id (a number) or seat")
        clean["on_leave"] = _flag(data, "on_leave")
    if isinstance(data.get("note"), str):
        clean["note"] = data["note"][:300]
    return Change(change_id, kind, changed_at.astimezone(UTC), clean, dict(obj))


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


async def _phone_corrected(session: AsyncSession, c: Change, now: datetime) -> ChangeResult:
    policy = await session.scalar(
        select(Policy).where(Policy.policy_number == c.data["policy_number"])
    )
    if policy is None:
        return ChangeResult(c.change_id, Outcome.REJECTED, f"no policy {c.data['policy_number']}")
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
        lead.phone_id = phone.id
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
        lead_message(
            session,
            "phone.accuracy",
            lead.id,
            {"phone_id": phone.id, "accuracy": phone.accuracy, "reason": reason},
            now,
        )
        status_message(session, lead, old, reason, now)
    ids = tuple(lead.id for lead in leads)
    return ChangeResult(c.change_id, Outcome.APPLIED, f"{len(ids)} lead(s) now call {e164}", ids)


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


def parse_changes(obj: object) -> list[Change]:
    """One change, a list, or `{"changes": [...]}`; every one is checked before any is applied."""
    if isinstance(obj, Mapping) and "changes" in obj:
        obj = obj["changes"]
    items = obj if isinstance(obj, list) else [obj]
    if not items:
        raise ChangeError("no changes given")
    out: list[Change] = []
    for n, item in enumerate(items, 1):
        try:
            out.append(parse_change(item))
        except ChangeError as exc:
            raise ChangeError(f"change {n}: {exc}; nothing was applied", n - 1) from None
    return out


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
