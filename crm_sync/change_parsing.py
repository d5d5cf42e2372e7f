"""The CRM's changes as they arrive, read and checked (pure): kinds, outcomes, `parse_change`.

What each kind does, and who applies it: `crm_sync.changes` (docs/crm.md#inbound-changes).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crm_sync.exceptions import CrmError
from crm_sync.phones import parse_phone


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
