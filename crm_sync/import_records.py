"""What reading an export yields, one per data row: a record, a rejection or a skip."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from crm_sync.phones import ParsedPhone


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    column: str  # the header as written in the file (or the field name)
    value: str
    reason: str


@dataclass(frozen=True, slots=True)
class RowRejected:
    row: int
    errors: tuple[RowError, ...]


@dataclass(frozen=True, slots=True)
class RowSkipped:
    row: int
    policy_number: str
    reason: str


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """One valid row: what the writer needs, already normalised."""

    row: int
    policy_number: str
    expiry_date: date
    policyholder: str
    policyholder_phones: tuple[ParsedPhone, ...] = ()
    insured: str | None = None
    insured_phones: tuple[ParsedPhone, ...] = ()
    plate_number: str | None = None
    make_model: str | None = None
    use_type: str | None = None
    previous_policy_number: str | None = None
    address: str | None = None
    start_date: date | None = None
    handler: str | None = None
    business_category: str | None = None
    branch_code: str | None = None
    branch_name: str | None = None
    branch_email: str | None = None
    is_fleet: bool = False
    premium: Decimal | None = None
    renewed: bool = False


RowResult = PolicyRecord | RowRejected | RowSkipped
