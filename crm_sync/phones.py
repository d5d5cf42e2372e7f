"""Phone numbers as the core system exports them -> E.164, extension, kind, validity (pure).

Mainland numbers are parsed with `phonenumbers` (region CN). A number that cannot be valid is
never dropped: it is kept with `valid=False` and a reason, so it can be looked up (查号) and
corrected by the branch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult
from sqlalchemy import and_, case, or_, select
from sqlalchemy.orm import aliased

from crm_sync.models import Accuracy, Phone, PhoneKind, PhoneRole, Policy
from crm_sync.spreadsheets import GUARD, unguard_cell

REGION = "CN"

# One cell may hold several numbers: "13812345678/0311-85551234", "…；…", "…、…".
_SPLIT = re.compile(r"[/;,，；、|]+")
# Extensions the way Chinese exports write them: 0311-85551234转808, …-808, …分机808, …#808.
_EXT_WORDS = re.compile(r"^(?P<main>.*?\d)\s*(?:转|分机|ext\.?|x|#)\s*(?P<ext>\d{1,6})\s*$", re.I)
_EXT_DASH = re.compile(r"^(?P<main>\(?0\d{2,3}\)?[\s-]?\d{7,8})-(?P<ext>\d{1,6})$")
# Excel's ="0311…" trick to keep a leading zero in CSV.
_EXCEL_TEXT = re.compile(r'^="(.*)"$')
_DIGITS = re.compile(r"\d")

_KINDS = {
    PhoneNumberType.MOBILE: PhoneKind.MOBILE,
    PhoneNumberType.FIXED_LINE: PhoneKind.LANDLINE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: PhoneKind.LANDLINE,
}

_POSSIBLE_REASONS = {
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "wrong number of digits",
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "too short",
}


@dataclass(frozen=True, slots=True)
class ParsedPhone:
    raw: str
    e164: str | None
    extension: str | None
    kind: PhoneKind
    valid: bool
    invalid_reason: str | None


def clean_cell(value: str) -> str:
    value = value.strip()
    if value.startswith(GUARD):  # a file written by us (crm_sync.spreadsheets) read back
        value = unguard_cell(value).strip()
    if not value.startswith("="):
        return value
    m = _EXCEL_TEXT.match(value)
    return m.group(1).strip() if m else value


def split_numbers(cell: str) -> list[str]:
    """The separate numbers in one cell, in order, without blanks or repeats."""
    out: list[str] = []
    for part in _SPLIT.split(clean_cell(cell)):
        part = part.strip()
        if part and part not in out:
            out.append(part)
    return out


_PLAIN_MOBILE = re.compile(r"^1[3-9]\d{9}$")


@lru_cache(maxsize=4096)
def _mobile_range(prefix: str) -> tuple[bool, PhoneKind, str | None]:
    # Mainland mobile ranges are decided by their first five digits (libphonenumber's CN
    # pattern: 1740[0-5]…, 1610…, 13…), so one full parse per range answers for every
    # number in it; parsing is otherwise most of an import's CPU time.
    full = parse_phone_slow(prefix + "0" * (11 - len(prefix)))
    return full.valid, full.kind, full.invalid_reason


def parse_phone(raw: str) -> ParsedPhone:
    """One number as written -> its normalised form, or the reason it cannot be dialled."""
    if _PLAIN_MOBILE.match(raw):
        valid, kind, _ = _mobile_range(raw[:5])
        if valid:
            return ParsedPhone(raw, "+86" + raw, None, kind, True, None)
    return parse_phone_slow(raw)


@lru_cache(maxsize=65536)
def parse_phone_slow(raw: str) -> ParsedPhone:
    """`parse_phone` through `phonenumbers` for every number (the reference behaviour)."""
    text = clean_cell(raw)
    extension: str | None = None
    for pattern in (_EXT_DASH, _EXT_WORDS):
        m = pattern.match(text)
        if m:
            text, extension = m.group("main"), m.group("ext")
            break
    digits = "".join(_DIGITS.findall(text))
    if not digits:
        return ParsedPhone(raw, None, extension, PhoneKind.UNKNOWN, False, "not a phone number")
    try:
        number = phonenumbers.parse(text, REGION)
    except NumberParseException:
        return ParsedPhone(raw, None, extension, PhoneKind.UNKNOWN, False, "not a phone number")
    extension = extension or number.extension or None
    number.extension = None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if phonenumbers.is_valid_number(number):
        kind = _KINDS.get(phonenumbers.number_type(number), PhoneKind.UNKNOWN)
        return ParsedPhone(raw, e164, extension, kind, True, None)
    return ParsedPhone(
        raw, e164, extension, PhoneKind.UNKNOWN, False, _invalid_reason(digits, number)
    )


# Longer than any number as people write one (E.164 is at most 15 digits, plus a country
# prefix, separators and an extension): refused before parsing, so no one stores a novel.
MAX_WRITTEN_LENGTH = 64


def normalise_number(raw: str) -> str:
    """The E.164 form of one number written by a person (an API caller, a supervisor), by the
    import's own rules, so that it compares equal to the numbers the dialler dials.

    Raises ValueError with a reason a person can act on when `raw` is not one dialable number.
    An extension is dropped: what is dialled, and so what is compared, is the main number.
    """
    text = raw.strip()
    if not text:
        raise ValueError("the number is empty")
    if len(text) > MAX_WRITTEN_LENGTH:
        raise ValueError(f"the number is longer than {MAX_WRITTEN_LENGTH} characters")
    if len(split_numbers(text)) > 1:
        raise ValueError("give one number at a time")
    parsed = parse_phone(text)
    if parsed.e164 is None or not parsed.valid:
        raise ValueError(f"{parsed.invalid_reason or 'not a phone number'}: {text!r}")
    return parsed.e164


def _invalid_reason(digits: str, number: phonenumbers.PhoneNumber) -> str:
    if number.country_code == 86:
        if len(digits) in (7, 8) and digits[0] not in "01":
            return "landline without area code (区号)"
        if digits.startswith("0") and len(digits) < 10:
            return "too short for a landline with area code"
        if digits.startswith("0") and len(digits) > 12:
            return "too long for a landline with area code"
        if digits.startswith("1") and len(digits) != 11 and not digits.startswith("10"):
            return f"mobile number with {len(digits)} digits (needs 11)"
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible in _POSSIBLE_REASONS:
        return _POSSIBLE_REASONS[possible]
    if phonenumbers.region_code_for_number(number) not in (REGION, None):
        return "not a mainland China number"
    return "no such number range"


@dataclass(frozen=True, slots=True)
class PhoneChoice:
    """What the lead-phone preference needs to know about one stored number."""

    phone_id: int
    role: str
    valid: bool
    accuracy: str = Accuracy.UNKNOWN.value
    do_not_call: bool = False


# Which phone of a lead to call: the one home of the rule. The import chooses with
# `choose_lead_phone` (over the roles of the row), the timeline with `lead_phone_sql` (a new
# post-underwriting callback lead), both by the same ranking and the same `usable` test; the
# dialer's queue adds, at the moment of the claim, the do-not-call list (`dialer.queues`).


def usable(c: PhoneChoice) -> bool:
    """A number that may be chosen: valid, not flagged do-not-call, not marked inaccurate."""
    return c.valid and not c.do_not_call and c.accuracy != _INACCURATE


def choose_lead_phone(candidates: Sequence[PhoneChoice], *, is_fleet: bool) -> int | None:
    """The number a lead should be dialled on, or None when none can be dialled.

    Fleet policies (车队): the policyholder's number is usually the fleet's switchboard, so the
    insured's own number comes first. Otherwise the policyholder, who renews, comes first.
    Numbers known to be wrong (invalid, marked inaccurate, do-not-call) are never chosen.
    """
    rank = _FLEET_RANK if is_fleet else _RANK
    found = [c for c in candidates if usable(c)]
    if not found:
        return None
    # Stable: among equals the earlier number (first in the cell, first imported) wins.
    return min(found, key=lambda c: rank.get(c.role, len(rank))).phone_id


def _rank(*roles: PhoneRole) -> dict[str, int]:
    return {role.value: i for i, role in enumerate(roles)}


_RANK = _rank(PhoneRole.CORRECTED, PhoneRole.POLICYHOLDER, PhoneRole.INSURED, PhoneRole.FLEET)
_FLEET_RANK = _rank(PhoneRole.CORRECTED, PhoneRole.INSURED, PhoneRole.POLICYHOLDER, PhoneRole.FLEET)
_INACCURATE = Accuracy.INACCURATE.value


def usable_phone_sql() -> Any:
    """`usable` as a SQL condition over `phones`."""
    return and_(Phone.valid.is_(True), Phone.do_not_call.is_(False), Phone.accuracy != _INACCURATE)


def lead_phone_sql(policy_id: Any) -> Any:
    """`choose_lead_phone` as a scalar subquery: the phone for a lead of the policy
    `policy_id` (a column or value), among its policyholder's and insured's stored numbers,
    ranked by each number's stored role (a fleet policy puts the insured first); among
    equals the first stored."""
    pol = aliased(Policy)

    def by_role(rank: dict[str, int]) -> Any:
        return case(*((Phone.role == r, i) for r, i in rank.items()), else_=len(rank))

    return (
        select(Phone.id)
        .join(
            pol, or_(Phone.customer_id == pol.policyholder_id, Phone.customer_id == pol.insured_id)
        )
        .where(pol.id == policy_id, usable_phone_sql())
        .order_by(case((pol.is_fleet, by_role(_FLEET_RANK)), else_=by_role(_RANK)), Phone.id)
        .limit(1)
        .scalar_subquery()
    )
