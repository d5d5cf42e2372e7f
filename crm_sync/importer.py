"""Reading and validating core-system exports (pure: files in, plain records and errors out).

    prepare(path, mapping)      finds the header row, maps columns, fails early on bad input
    iter(prepared)              PolicyRecord | RowRejected | RowSkipped, one per data row

The parts: `import_files` opens the file (format, encoding), `import_mapping` says which
column is which field, `import_cells` reads one cell, `import_records` holds what a row
becomes; this module checks a row, one column group at a time. Nothing here touches the
database: `crm_sync.services.import_file` writes the records. Every "stop, nothing written"
problem (missing required column, empty file, unreadable encoding) is raised as
`ImportInputError` before the first record is yielded.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from itertools import chain
from pathlib import Path

from crm_sync.exceptions import ImportInputError
from crm_sync.import_cells import (
    Cell,
    cell_text,
    parse_date,
    parse_flag,
    parse_premium,
    split_branch,
)
from crm_sync.import_files import SourceTable, open_table
from crm_sync.import_mapping import ALIASES, PHONE_FIELDS, REQUIRED, Mapping, resolve_columns
from crm_sync.import_records import PolicyRecord, RowError, RowRejected, RowResult, RowSkipped
from crm_sync.mail_compose import email_address
from crm_sync.models import Branch, Customer, Phone, Policy
from crm_sync.phones import ParsedPhone, parse_phone, split_numbers

# How far down a title block may push the header row.
HEADER_SEARCH_ROWS = 10


def _limit(column: object) -> int | None:
    return getattr(getattr(column, "type", None), "length", None)


# Column widths come from the model so that a value the database would refuse is a row error.
MAX_LENGTH: dict[str, int | None] = {
    "policy_number": _limit(Policy.__table__.c.policy_number),
    "plate_number": _limit(Policy.__table__.c.plate_number),
    "make_model": _limit(Policy.__table__.c.make_model),
    "use_type": _limit(Policy.__table__.c.use_type),
    "previous_policy_number": _limit(Policy.__table__.c.previous_policy_number),
    "policyholder": _limit(Customer.__table__.c.name),
    "insured": _limit(Customer.__table__.c.name),
    "handler": _limit(Policy.__table__.c.handler),
    "business_category": _limit(Policy.__table__.c.business_category),
    "branch": _limit(Branch.__table__.c.name),
    "branch_code": _limit(Branch.__table__.c.code),
    "branch_email": _limit(Branch.__table__.c.email),
}
PHONE_RAW_MAX = _limit(Phone.__table__.c.raw) or 100
MAX_PREMIUM = Decimal("1e10")  # Numeric(12, 2)

# --------------------------------------------------------------------------- one row


@dataclass(slots=True)
class _Row:
    """One data row as the checks read it, by field name, and the errors they found."""

    number: int
    cells: Sequence[Cell]
    texts: Sequence[str]
    columns: dict[str, int]
    header: list[str]
    date_formats: tuple[str, ...]
    errors: list[RowError] = field(default_factory=list)

    def fail(self, name: str, value: str, reason: str) -> None:
        index = self.columns.get(name)
        column = self.header[index] if index is not None else name
        self.errors.append(RowError(self.number, column, value, reason))

    def cell(self, name: str) -> Cell:
        index = self.columns.get(name)
        return self.cells[index] if index is not None and index < len(self.cells) else None

    def plain(self, name: str) -> str:
        index = self.columns.get(name)
        return self.texts[index] if index is not None and index < len(self.cells) else ""

    def text(self, name: str) -> str | None:
        value = self.plain(name)
        if not value:
            return None
        limit = MAX_LENGTH.get(name)
        if limit is not None and len(value) > limit:
            self.fail(name, value, f"longer than {limit} characters")
        return value

    def day(self, name: str) -> date | None:
        value = self.plain(name)
        if not value:
            return None
        raw = self.cell(name)
        parsed = parse_date(value if isinstance(raw, str) else raw, self.date_formats)
        if parsed is None:
            self.fail(name, value, "not a date")
        return parsed

    def email(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return email_address(value)
        except ValueError as exc:
            # A header injection (CR/LF) or a typo here would stop the branch's daily
            # mail: refused now, with the row, instead of failing every night.
            self.fail(name, value, str(exc))
            return None

    def phones(self, name: str) -> tuple[ParsedPhone, ...]:
        out = []
        for raw in split_numbers(self.plain(name)):
            if len(raw) > PHONE_RAW_MAX:
                self.fail(name, raw, "phone number text too long")
                continue
            out.append(parse_phone(raw))
        return tuple(out)


# The checks of one column group each, called in the order a row's errors are listed.


def _policy_and_dates(row: _Row) -> tuple[str | None, date | None, date | None]:
    """(policy number, expiry, start); both required but the start, expiry not before start."""
    policy_number = row.text("policy_number")
    if policy_number is None:
        row.fail("policy_number", "", "no policy number")
    expiry = row.day("expiry_date")
    if expiry is None and not row.plain("expiry_date"):
        row.fail("expiry_date", "", "no expiry date")
    start = row.day("start_date")
    if start is not None and expiry is not None and expiry < start:
        row.fail(
            "expiry_date",
            expiry.isoformat(),
            f"expiry date before the start date {start.isoformat()}",
        )
    return policy_number, expiry, start


def _people(row: _Row) -> tuple[str | None, str | None]:
    """(insured, policyholder); a row without a policyholder names the insured as one."""
    insured = row.text("insured")
    policyholder = row.text("policyholder") or insured
    if policyholder is None:
        row.fail("policyholder", "", "no policyholder name")
    return insured, policyholder


def _premium(row: _Row) -> Decimal | None:
    premium_text = row.plain("premium")
    if not premium_text:
        return None
    premium = parse_premium(premium_text)
    if premium is None or premium < 0 or premium >= MAX_PREMIUM:
        row.fail("premium", premium_text, "not a premium")
        return None
    return premium


def _flags(row: _Row) -> tuple[bool, bool | None]:
    """(is a fleet, renewed); renewed is None when the cell is neither yes nor no."""
    fleet_text = row.plain("fleet")
    # A fleet column holds a flag or the fleet's name; any name means "fleet".
    is_fleet = parse_flag(fleet_text) if fleet_text else False
    renewed_text = row.plain("renewed")
    renewed = parse_flag(renewed_text) if renewed_text else False
    if renewed is None:
        row.fail("renewed", renewed_text, "not yes/no (是/否)")
    return is_fleet is not False, renewed


def _branch(row: _Row) -> tuple[str | None, str | None]:
    """(code, name): '1301 石家庄分公司' in the branch column, or a code column alone."""
    branch_text = row.text("branch")
    branch_code = row.text("branch_code")
    branch_name: str | None = None
    if branch_text:
        code, branch_name = split_branch(branch_text)
        branch_code = branch_code or code
    elif branch_code:
        branch_name = branch_code
    return branch_code, branch_name


def validate_row(row: _Row) -> PolicyRecord | RowRejected:
    """One data row -> a record, or every reason it cannot be imported."""
    policy_number, expiry, start = _policy_and_dates(row)
    insured, policyholder = _people(row)
    premium = _premium(row)
    is_fleet, renewed = _flags(row)
    branch_code, branch_name = _branch(row)
    policyholder_phones = row.phones("policyholder_phone")
    insured_phones = row.phones("insured_phone")
    plate = row.text("plate_number")
    record_fields = {
        "make_model": row.text("make_model"),
        "use_type": row.text("use_type"),
        "previous_policy_number": row.text("previous_policy_number"),
        "address": row.text("address"),
        "handler": row.text("handler"),
        "business_category": row.text("business_category"),
        "branch_email": row.email("branch_email"),
    }
    if row.errors or policy_number is None or expiry is None or policyholder is None:
        return RowRejected(row.number, tuple(row.errors))
    return PolicyRecord(
        row=row.number,
        policy_number=policy_number,
        expiry_date=expiry,
        policyholder=policyholder,
        policyholder_phones=policyholder_phones,
        insured=insured,
        insured_phones=insured_phones,
        plate_number=plate.replace(" ", "") if plate else None,
        start_date=start,
        branch_code=branch_code,
        branch_name=branch_name,
        is_fleet=is_fleet,
        premium=premium,
        renewed=bool(renewed),
        **record_fields,
    )


# --------------------------------------------------------------------------- the file


@dataclass
class PreparedImport:
    """A file whose header is understood; iterate it for one result per data row."""

    table: SourceTable
    mapping: Mapping
    header_row: int
    header: list[str]
    columns: dict[str, int]  # field -> index
    _rows: Iterator[tuple[int, list[Cell]]]

    def __iter__(self) -> Iterator[RowResult]:
        seen: set[str] = set()
        try:
            yield from self._results(seen)
        except (csv.Error, UnicodeDecodeError) as exc:
            # Raised mid-stream; the writer's single transaction rolls everything back.
            raise ImportInputError(f"{self.table.path}: cannot read the file: {exc}") from exc

    def _results(self, seen: set[str]) -> Iterator[RowResult]:
        for number, cells in self._rows:
            texts = [cell_text(c) for c in cells]
            if not any(texts):
                continue
            result = self.validate(number, cells, texts)
            if isinstance(result, PolicyRecord):
                if result.policy_number in seen:
                    yield RowSkipped(number, result.policy_number, "duplicate_in_file")
                    continue
                seen.add(result.policy_number)
            yield result

    def header_of(self, name: str) -> str:
        index = self.columns.get(name)
        return self.header[index] if index is not None else name

    def validate(
        self, number: int, cells: Sequence[Cell], texts: Sequence[str] | None = None
    ) -> PolicyRecord | RowRejected:
        """One data row -> a record, or every reason it cannot be imported."""
        if texts is None:
            texts = [cell_text(c) for c in cells]
        row = _Row(number, cells, texts, self.columns, self.header, self.mapping.date_formats)
        return validate_row(row)


def _find_header(
    path: Path, rows: Iterator[tuple[int, list[Cell]]], mapping: Mapping
) -> tuple[int, list[str], dict[str, int]]:
    """(row number, header, columns): the given header row, else the first of the first
    HEADER_SEARCH_ROWS non-empty rows with a policy-number column, else the first row."""
    looked_at: list[tuple[int, list[Cell]]] = []
    try:
        for number, cells in rows:
            header = [cell_text(c) for c in cells]
            if not any(header):
                continue
            looked_at.append((number, cells))
            if mapping.header_row is not None:
                if number < mapping.header_row:
                    continue
                return number, header, resolve_columns(header, mapping)
            columns = resolve_columns(header, mapping)
            if "policy_number" in columns:
                return number, header, columns
            if len(looked_at) >= HEADER_SEARCH_ROWS:
                break
    except (csv.Error, UnicodeDecodeError, OSError) as exc:
        raise ImportInputError(f"{path}: cannot read the file: {exc}") from exc
    if not looked_at:
        raise ImportInputError(f"{path}: the file is empty (no header row)")
    number, cells = looked_at[0]
    header = [cell_text(c) for c in cells]
    return number, header, resolve_columns(header, mapping)


def _check_columns(path: Path, header_row: int, header: list[str], columns: dict[str, int]) -> None:
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise ImportInputError(
            f"{path}: missing required column(s): "
            + "; ".join(f"{name} ({' / '.join(ALIASES[name][:2])})" for name in missing)
            + f". Header found on row {header_row}: {', '.join(h for h in header if h)}. "
            "Rename the column or give a --mapping file."
        )
    if not any(name in columns for name in PHONE_FIELDS):
        raise ImportInputError(
            f"{path}: missing a phone column: 投保人联系电话 (policyholder phone) or "
            "被保险人联系电话 (insured phone)"
        )


def prepare(path: Path, mapping: Mapping | None = None) -> PreparedImport:
    """Open `path`, find and map its header, check there is data; raise ImportInputError if not."""
    mapping = mapping or Mapping()
    table = open_table(path)
    rows = table.rows()
    header_row, header, columns = _find_header(path, rows, mapping)
    _check_columns(path, header_row, header, columns)
    first_data: list[tuple[int, list[Cell]]] = []
    for number, cells in rows:
        if any(cell_text(c) for c in cells):
            first_data.append((number, cells))
            break
    if not first_data:
        raise ImportInputError(f"{path}: the file has a header but no data rows")
    return PreparedImport(
        table=table,
        mapping=mapping,
        header_row=header_row,
        header=header,
        columns=columns,
        _rows=chain(first_data, rows),
    )


def batched(items: Iterable[RowResult], size: int) -> Iterator[list[RowResult]]:
    batch: list[RowResult] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
