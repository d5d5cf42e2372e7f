"""The import writer's decisions for one record, over plain data (no database).

Which customers a row names (their match keys), the customers and numbers a batch wants,
which number the row's lead dials, and which numbers its branch must look up (查号); a fresh
lead's status and the day it becomes work (`initial_status`, `initial_due_on`).
`crm_sync.import_writer` loads what is stored, asks these, and writes the answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from crm_sync.import_records import PolicyRecord
from crm_sync.import_report import LookupEntry
from crm_sync.models import LeadKind, LeadStatus, PhoneRole
from crm_sync.phones import ParsedPhone, PhoneChoice, choose_lead_phone
from schedules.timeline import TimelineRules, due_day

# Plain strings for the per-row loops (an enum's .value is a descriptor call).
_FLEET, _HOLDER = PhoneRole.FLEET.value, PhoneRole.POLICYHOLDER.value
INSURED, _CORRECTED = PhoneRole.INSURED.value, PhoneRole.CORRECTED.value


def customer_match_key(
    name: str, phones: Sequence[ParsedPhone], address: str | None, policy_number: str
) -> str:
    """The identity a customer is merged on across rows and imports: name + best number.

    A name alone would merge every 张伟; without any number the address stands in, and
    without that the customer stays tied to this one policy.
    """
    name = " ".join(name.split())
    best = next((p.e164 for p in phones if p.valid and p.e164), None)
    if best is None and phones:
        best = "raw:" + "".join(ch for ch in phones[0].raw if ch.isdigit())
    if best:
        key = f"{name}|tel:{best}"
    elif address:
        key = f"{name}|addr:{' '.join(address.split())}"
    else:
        key = f"{name}|policy:{policy_number}"
    return key[:300]


class HasExpiry(Protocol):
    @property
    def expiry_date(self) -> date: ...


def initial_status(kind: LeadKind | str) -> LeadStatus:
    """The status of a freshly imported lead. A post-underwriting callback list is the
    automatic callback campaign's work from the day of its import (node 8: called from its
    first calling window on; nothing is handed out): `due`. Every other kind waits, `new`,
    for the timeline to make it due and the distribution to hand it to a specialist."""
    return LeadStatus.DUE if LeadKind(kind) is LeadKind.CALLBACK else LeadStatus.NEW


def initial_due_on(
    kind: LeadKind | str,
    policy: HasExpiry,
    today: date,
    rules: TimelineRules = TimelineRules(),  # noqa: B008 (frozen: shared safely)
) -> date:
    """The day a freshly imported lead becomes work, by the desk's timeline rules.

    renewal: expiry − 25 days; trial-member conversion: a month before expiry (by default);
    lapsed and post-underwriting callback: the day of the import.
    """
    kind = LeadKind(kind)
    if kind in (LeadKind.RENEWAL, LeadKind.TRIAL):
        # One rule for the whole desk: the timeline's (schedules.timeline.due_day), with the
        # rules the timeline job runs with (DeskCalendar.rules), not the defaults.
        return due_day(kind.value, policy.expiry_date, rules)
    return today


@dataclass
class Prepared:
    """A record that will be written, with the keys worked out for it."""

    record: PolicyRecord
    holder_key: str
    insured_key: str | None
    existing: Any  # the stored policy row, or None
    lead: Any  # the stored lead row of this kind, or None
    changed: bool = False
    new_lead: bool = False


@dataclass
class WantedCustomer:
    name: str
    address: str | None


def holder_role(r: PolicyRecord) -> str:
    """The role of the policyholder's numbers: a fleet's holder is the fleet."""
    return _FLEET if r.is_fleet else _HOLDER


def customer_keys(r: PolicyRecord) -> tuple[str, str | None]:
    """The match keys of the row's policyholder and insured (the holder's key when the insured
    is the same person: same name, and no number of their own or a number in common)."""
    holder_key = customer_match_key(
        r.policyholder, r.policyholder_phones, r.address, r.policy_number
    )
    if not r.insured:
        return holder_key, None
    if r.insured == r.policyholder and (
        not r.insured_phones
        or {p.raw for p in r.insured_phones} & {p.raw for p in r.policyholder_phones}
    ):
        return holder_key, holder_key
    return holder_key, customer_match_key(r.insured, r.insured_phones, None, r.policy_number)


def wanted_customers(
    todo: Sequence[Prepared],
) -> tuple[dict[str, WantedCustomer], dict[str, dict[str, tuple[ParsedPhone, str]]]]:
    """The customers a batch names (by match key; the first address given wins) and each
    one's numbers with the role this batch gives them (the first role wins)."""
    wanted: dict[str, WantedCustomer] = {}
    phones: dict[str, dict[str, tuple[ParsedPhone, str]]] = {}

    def want(key: str, name: str, address: str | None) -> None:
        entry = wanted.setdefault(key, WantedCustomer(name, address))
        if address and not entry.address:
            entry.address = address

    for p in todo:
        r = p.record
        want(p.holder_key, r.policyholder, r.address)
        role = holder_role(r)
        for ph in r.policyholder_phones:
            phones.setdefault(p.holder_key, {}).setdefault(ph.raw, (ph, role))
        target = p.insured_key or p.holder_key
        if p.insured_key is not None and p.insured_key != p.holder_key and r.insured:
            want(p.insured_key, r.insured, None)
        for ph in r.insured_phones:
            phones.setdefault(target, {}).setdefault(ph.raw, (ph, INSURED))
    return wanted, phones


def lead_phone(
    p: Prepared,
    customer_ids: dict[str, int],
    phones_by_customer: dict[int, list[Any]],
) -> int | None:
    """The stored number the row's lead dials (`choose_lead_phone`), or None."""
    r = p.record
    holder_id = customer_ids[p.holder_key]
    insured_id = customer_ids[p.insured_key] if p.insured_key is not None else None
    role_of_holder = holder_role(r)
    # The roles of this row decide, not the role a number was first stored with: the same
    # person can be a fleet car's insured here and a policyholder elsewhere.
    row_roles: dict[tuple[int, str], str] = {}
    for ph in r.policyholder_phones:
        row_roles.setdefault((holder_id, ph.raw), role_of_holder)
    for ph in r.insured_phones:
        row_roles.setdefault((insured_id or holder_id, ph.raw), INSURED)
    candidates: list[PhoneChoice] = []
    for cid in dict.fromkeys(c for c in (holder_id, insured_id) if c is not None):
        for row in phones_by_customer.get(cid, []):
            role = row_roles.get((cid, row.raw))
            if role is None:
                if row.role != _CORRECTED:
                    continue
                role = row.role
            candidates.append(PhoneChoice(row.id, role, row.valid, row.accuracy, row.do_not_call))
    return choose_lead_phone(candidates, is_fleet=r.is_fleet)


def lookup_entries(p: Prepared, no_usable_phone: bool) -> list[LookupEntry]:
    """The row's numbers that cannot be dialled, and a missing number, for its branch."""
    r = p.record
    branch = r.branch_code or ""
    plate = r.plate_number or ""
    entries: list[LookupEntry] = []

    def add(customer: str, role: str, raw: str, reason: str) -> None:
        entries.append(LookupEntry(branch, r.policy_number, plate, customer, role, raw, reason))

    role_of_holder = holder_role(r)
    for ph in r.policyholder_phones:
        if not ph.valid:
            add(r.policyholder, role_of_holder, ph.raw, ph.invalid_reason or "invalid")
    same_person = p.insured_key == p.holder_key
    for ph in r.insured_phones:
        if same_person and ph in r.policyholder_phones:
            continue
        if not ph.valid:
            add(r.insured or r.policyholder, INSURED, ph.raw, ph.invalid_reason or "invalid")
    if r.is_fleet and not r.insured_phones:
        add(r.insured or "", INSURED, "", "fleet policy: the insured's own number is missing")
    elif no_usable_phone and not r.policyholder_phones and not r.insured_phones:
        add(r.policyholder, "", "", "no phone number")
    return entries
