"""CRM services: the import writer (batched Core statements) and specialist management.

The import reads and validates with `crm_sync.importer` (pure) and writes here, a batch of
rows at a time: existing keys are fetched per batch, new rows go in with multi-row
`INSERT … ON CONFLICT DO NOTHING`, changed rows with executemany `UPDATE`s. The whole file is
one transaction, so an import either lands completely or not at all.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Table, and_, any_, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.dml import Insert as PgInsert
from sqlalchemy.dialects.sqlite.dml import Insert as SqliteInsert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from crm_sync.dialplan import TECHNOLOGY, seat_problem
from crm_sync.exceptions import NotFound, SpecialistError
from crm_sync.importer import (
    Mapping,
    PolicyRecord,
    PreparedImport,
    RowError,
    RowRejected,
    RowResult,
    RowSkipped,
    batched,
    customer_match_key,
    initial_due_on,
    initial_status,
    prepare,
)
from crm_sync.models import (
    Branch,
    ContactResult,
    Customer,
    ImportRun,
    Lead,
    LeadKind,
    LeadStatus,
    Phone,
    PhoneRole,
    Policy,
    Specialist,
)
from crm_sync.phones import ParsedPhone, PhoneChoice, choose_lead_phone
from crm_sync.spreadsheets import SafeCsvWriter
from schedules.timeline import TimelineRules

if TYPE_CHECKING:
    from common.clock import Clock

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
IMPORT_LOCK_KEY = 0x43_52_4D_49  # "CRMI": pg_advisory_xact_lock key serialising imports
SUMMARY_ERROR_LIMIT = 100
# Policy columns an import may set; a blank cell never erases what is stored.
POLICY_FIELDS = (
    "plate_number",
    "make_model",
    "use_type",
    "previous_policy_number",
    "start_date",
    "expiry_date",
    "handler",
    "business_category",
    "premium",
)
# Lead statuses an import may still touch (due date, dialled number): not yet worked.
OPEN_UNWORKED = (LeadStatus.NEW.value, LeadStatus.DUE.value)
# Plain strings for the per-row loops (an enum's .value is a descriptor call).
_FLEET, _HOLDER = PhoneRole.FLEET.value, PhoneRole.POLICYHOLDER.value
_INSURED, _CORRECTED = PhoneRole.INSURED.value, PhoneRole.CORRECTED.value

policies_t: Table = Policy.__table__  # type: ignore[assignment]
leads_t: Table = Lead.__table__  # type: ignore[assignment]
customers_t: Table = Customer.__table__  # type: ignore[assignment]
phones_t: Table = Phone.__table__  # type: ignore[assignment]
branches_t: Table = Branch.__table__  # type: ignore[assignment]
import_runs_t: Table = ImportRun.__table__  # type: ignore[assignment]


def _insert(conn: AsyncConnection, table: Table) -> PgInsert | SqliteInsert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _column_default(column: Any) -> Any:
    default = column.default
    if default is None:
        return None
    if default.is_callable:
        return default.arg(None)  # SQLAlchemy wraps zero-argument callables to take a context
    return default.arg


async def bulk_insert(
    conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]], conflict: Sequence[str]
) -> None:
    """`INSERT … ON CONFLICT (conflict) DO NOTHING` of many rows, straight through the driver.

    SQLAlchemy's executemany costs ~100 µs per row in parameter processing, more than the
    database's own work; here PostgreSQL gets a binary COPY, SQLite one `executemany` of
    `INSERT … ON CONFLICT DO NOTHING`. Python-side column defaults are filled in here,
    since the ORM/Core machinery that would apply them is bypassed.
    """
    if not rows:
        return
    given = list(dict.fromkeys(k for row in rows for k in row))
    defaults = {
        c.name: _column_default(c)
        for c in table.columns
        if c.name not in given and c.default is not None
    }
    names = given + list(defaults)
    quoted = ", ".join(f'"{n}"' for n in names)
    target = ", ".join(f'"{n}"' for n in conflict)
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    if conn.dialect.name == "postgresql":
        # Binary COPY straight into the table: the rows were checked against what is stored
        # in this transaction, and imports are serialised by an advisory lock, so no key can
        # clash. A clash with some other writer fails the import whole (nothing is kept).
        fixed = tuple(defaults.values())
        await driver.copy_records_to_table(
            table.name,
            records=[tuple(row.get(n) for n in given) + fixed for row in rows],
            columns=names,
        )
        return
    constant = [_sqlite_value(v) for v in defaults.values()]
    params = [[_sqlite_value(row.get(n)) for n in given] + constant for row in rows]
    placeholders = ", ".join("?" for _ in names)
    sql = (
        f'INSERT INTO "{table.name}" ({quoted}) VALUES ({placeholders}) '
        f"ON CONFLICT ({target}) DO NOTHING"
    )
    await driver.executemany(sql, params)


def _sqlite_value(value: Any) -> Any:
    # The storage formats SQLAlchemy's SQLite types use, so reads through it round-trip.
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True, slots=True)
class LookupEntry:
    """A number that cannot be dialled, for the branch to look up (查号)."""

    branch: str
    policy_number: str
    plate_number: str
    customer: str
    role: str
    raw: str
    reason: str


@dataclass
class ImportSummary:
    file: str
    kind: str
    format: str = ""
    encoding: str | None = None
    read: int = 0
    imported: int = 0
    updated: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    errors: list[RowError] = field(default_factory=list)
    errors_file: str | None = None
    lookup: Counter[str] = field(default_factory=Counter)
    lookup_files: list[str] = field(default_factory=list)
    import_run_id: int | None = None
    seconds: float = 0.0

    def to_dict(self, error_limit: int = SUMMARY_ERROR_LIMIT) -> dict[str, Any]:
        return {
            "file": self.file,
            "kind": self.kind,
            "format": self.format,
            "encoding": self.encoding,
            "read": self.read,
            "imported": self.imported,
            "updated": self.updated,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_total": sum(self.skipped.values()),
            "rejected": self.rejected,
            "errors": [
                {"row": e.row, "column": e.column, "value": e.value, "reason": e.reason}
                for e in self.errors[:error_limit]
            ],
            "errors_truncated": len(self.errors) > error_limit,
            "errors_file": self.errors_file,
            "phones_to_look_up": dict(sorted(self.lookup.items())),
            "phones_to_look_up_files": self.lookup_files,
            "import_run_id": self.import_run_id,
            "seconds": round(self.seconds, 3),
        }


# --------------------------------------------------------------------------- writer


@dataclass
class _Prepared:
    """A record that will be written, with the keys worked out for it."""

    record: PolicyRecord
    holder_key: str
    insured_key: str | None
    existing: Any  # the stored policy row, or None
    lead: Any  # the stored lead row of this kind, or None
    changed: bool = False
    new_lead: bool = False


class _Writer:
    def __init__(
        self,
        conn: AsyncConnection,
        kind: LeadKind,
        today: date,
        now: datetime,
        summary: ImportSummary,
        columns: set[str],
        rules: TimelineRules,
    ) -> None:
        self.rules = rules
        self.conn = conn
        self.kind = kind
        self.today = today
        self.now = now
        self.summary = summary
        self.columns = columns
        self.branch_ids: dict[str, int] = {}
        self.branch_emails: dict[str, str | None] = {}
        self.final_results: set[str] = set()
        self.lookup: list[LookupEntry] = []
        self.addressed: set[int] = set()  # customers whose address this run has settled

    async def start(self) -> None:
        rows = await self.conn.execute(
            select(ContactResult.code).where(ContactResult.final.is_(True))
        )
        self.final_results = {r[0] for r in rows}
        for row in await self.conn.execute(select(Branch.id, Branch.code, Branch.email)):
            self.branch_ids[row.code] = row.id
            self.branch_emails[row.code] = row.email

    # -- one batch ---------------------------------------------------------------------

    async def write(self, batch: Sequence[RowResult]) -> None:
        s = self.summary
        records: list[PolicyRecord] = []
        for item in batch:
            s.read += 1
            if isinstance(item, RowRejected):
                s.rejected += 1
                s.errors.extend(item.errors)
            elif isinstance(item, RowSkipped):
                s.skipped[item.reason] += 1
            else:
                records.append(item)
        if not records:
            return
        todo = await self._triage(records)
        if not todo:
            return
        await self._branches([p.record for p in todo])
        customer_ids, new_phone_customers = await self._customers_and_phones(todo)
        phones_by_customer = await self._phones_of(set(customer_ids.values()))
        await self._policies(todo, customer_ids)
        await self._leads(todo, customer_ids, phones_by_customer)
        for p in todo:
            if p.new_lead:
                s.imported += 1
                continue
            if customer_ids[p.holder_key] in new_phone_customers or (
                p.insured_key is not None and customer_ids[p.insured_key] in new_phone_customers
            ):
                p.changed = True
            if p.changed:
                s.updated += 1
            else:
                s.skipped["unchanged"] += 1

    async def _triage(self, records: list[PolicyRecord]) -> list[_Prepared]:
        """Skip renewed policies and handled leads; attach what is stored for the rest."""
        numbers = [r.policy_number for r in records]
        existing = {
            row.policy_number: row
            for row in await self.conn.execute(
                select(policies_t).where(self._in(policies_t.c.policy_number, numbers))
            )
        }
        # A stored policy that names this one as its 上年保单号 means it was renewed.
        successors = set(
            (
                await self.conn.execute(
                    select(policies_t.c.previous_policy_number).where(
                        self._in(policies_t.c.previous_policy_number, numbers)
                    )
                )
            ).scalars()
        )
        kinds = {self.kind.value}
        if self.kind is LeadKind.LAPSED:
            # A renewal lead already closed (declined, renewed elsewhere, …) settles the lapse.
            kinds.add(LeadKind.RENEWAL.value)
        leads: dict[tuple[int, str], Any] = {}
        ids = [row.id for row in existing.values()]
        if ids:
            for row in await self.conn.execute(
                select(leads_t).where(self._in(leads_t.c.policy_id, ids), leads_t.c.kind.in_(kinds))
            ):
                leads[(row.policy_id, row.kind)] = row
        mark_renewed: list[int] = []
        todo: list[_Prepared] = []
        for r in records:
            stored = existing.get(r.policy_number)
            if (
                r.renewed
                or r.policy_number in successors
                or (stored is not None and stored.renewed)
            ):
                self.summary.skipped["renewed"] += 1
                if stored is not None and not stored.renewed:
                    mark_renewed.append(stored.id)
                continue
            lead = None
            if stored is not None:
                lead = leads.get((stored.id, self.kind.value))
                if any(self._handled(leads.get((stored.id, k))) for k in kinds):
                    self.summary.skipped["handled"] += 1
                    continue
            holder_key = customer_match_key(
                r.policyholder, r.policyholder_phones, r.address, r.policy_number
            )
            insured_key: str | None = None
            if r.insured:
                if r.insured == r.policyholder and (
                    not r.insured_phones
                    or {p.raw for p in r.insured_phones} & {p.raw for p in r.policyholder_phones}
                ):
                    insured_key = holder_key
                else:
                    insured_key = customer_match_key(
                        r.insured, r.insured_phones, None, r.policy_number
                    )
            todo.append(_Prepared(r, holder_key, insured_key, stored, lead))
        if mark_renewed:
            await self.conn.execute(
                update(policies_t)
                .where(policies_t.c.id.in_(mark_renewed))
                .values(renewed=True, renewed_at=self.now)
            )
        return todo

    def _in(self, column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[bool]:
        """`column IN values`; on PostgreSQL one array parameter (`= ANY($1)`) instead of a
        thousand placeholders, which SQLAlchemy would otherwise render for every batch."""
        values = list(values)
        if self.conn.dialect.name == "postgresql":
            return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))
        return column.in_(values)

    def _handled(self, lead: Any) -> bool:
        if lead is None:
            return False
        return bool(
            lead.status == LeadStatus.CLOSED.value or lead.contact_result in self.final_results
        )

    async def _branches(self, records: Iterable[PolicyRecord]) -> None:
        wanted: dict[str, tuple[str, str | None]] = {}
        for r in records:
            if r.branch_code and r.branch_code not in wanted:
                wanted[r.branch_code] = (r.branch_name or r.branch_code, r.branch_email)
        missing = [code for code in wanted if code not in self.branch_ids]
        if missing:
            await self.conn.execute(
                _insert(self.conn, branches_t).on_conflict_do_nothing(index_elements=["code"]),
                [{"code": c, "name": wanted[c][0], "email": wanted[c][1]} for c in missing],
            )
            for row in await self.conn.execute(
                select(Branch.id, Branch.code, Branch.email).where(Branch.code.in_(missing))
            ):
                self.branch_ids[row.code] = row.id
                self.branch_emails[row.code] = row.email
        email_changes = [
            {"_code": code, "email": email}
            for code, (_, email) in wanted.items()
            if email and self.branch_emails.get(code) != email
        ]
        if email_changes:
            await self.conn.execute(
                update(branches_t)
                .where(branches_t.c.code == bindparam("_code"))
                .values(email=bindparam("email")),
                email_changes,
            )
            for change in email_changes:
                self.branch_emails[change["_code"]] = change["email"]

    async def _customers_and_phones(self, todo: list[_Prepared]) -> tuple[dict[str, int], set[int]]:
        """Customers merged on match_key; their numbers added (never altered: accuracy is kept)."""
        wanted: dict[str, dict[str, Any]] = {}
        phones: dict[str, dict[str, tuple[ParsedPhone, str]]] = {}

        def want(key: str, name: str, address: str | None) -> None:
            entry = wanted.setdefault(key, {"name": name, "address": address})
            if address and not entry["address"]:
                entry["address"] = address

        for p in todo:
            r = p.record
            want(p.holder_key, r.policyholder, r.address)
            holder_role = _FLEET if r.is_fleet else _HOLDER
            for ph in r.policyholder_phones:
                phones.setdefault(p.holder_key, {}).setdefault(ph.raw, (ph, holder_role))
            target = p.insured_key or p.holder_key
            if p.insured_key is not None and p.insured_key != p.holder_key and r.insured:
                want(p.insured_key, r.insured, None)
            for ph in r.insured_phones:
                phones.setdefault(target, {}).setdefault(ph.raw, (ph, _INSURED))

        keys = list(wanted)
        stored = {
            row.match_key: row
            for row in await self.conn.execute(
                select(customers_t.c.id, customers_t.c.match_key, customers_t.c.address).where(
                    self._in(customers_t.c.match_key, keys)
                )
            )
        }
        ids = {key: row.id for key, row in stored.items()}
        new_keys = [k for k in keys if k not in stored]
        if new_keys:
            await bulk_insert(
                self.conn,
                customers_t,
                [
                    {"match_key": k, "name": wanted[k]["name"], "address": wanted[k]["address"]}
                    for k in new_keys
                ],
                ["match_key"],
            )
            for row in await self.conn.execute(
                select(customers_t.c.id, customers_t.c.match_key).where(
                    self._in(customers_t.c.match_key, new_keys)
                )
            ):
                ids[row.match_key] = row.id
        # The first address a file gives a customer wins: a fleet's rows carry many, and
        # letting each overwrite the last would make every re-run an "update".
        address_changes = [
            {"_id": row.id, "address": wanted[key]["address"]}
            for key, row in stored.items()
            if wanted[key]["address"]
            and wanted[key]["address"] != row.address
            and row.id not in self.addressed
        ]
        self.addressed.update(ids.values())
        changed_customers = {c["_id"] for c in address_changes}
        if address_changes:
            await self.conn.execute(
                update(customers_t)
                .where(customers_t.c.id == bindparam("_id"))
                .values(address=bindparam("address")),
                address_changes,
            )
        # Numbers: insert the ones this customer does not have yet.
        have: set[tuple[int, str]] = set()
        stored_ids = [ids[k] for k in phones if k in stored]
        if stored_ids:
            for row in await self.conn.execute(
                select(phones_t.c.customer_id, phones_t.c.raw).where(
                    self._in(phones_t.c.customer_id, stored_ids)
                )
            ):
                have.add((row.customer_id, row.raw))
        new_phones = []
        for key, numbers in phones.items():
            cid = ids[key]
            for raw, (ph, role) in numbers.items():
                if (cid, raw) in have:
                    continue
                new_phones.append(
                    {
                        "customer_id": cid,
                        "raw": raw,
                        "role": role,
                        "kind": ph.kind.value,
                        "e164": ph.e164,
                        "extension": ph.extension,
                        "valid": ph.valid,
                        "invalid_reason": ph.invalid_reason,
                    }
                )
                if key in stored:
                    changed_customers.add(cid)
        if new_phones:
            await bulk_insert(self.conn, phones_t, new_phones, ["customer_id", "raw"])
        return ids, changed_customers

    async def _phones_of(self, customer_ids: set[int]) -> dict[int, list[Any]]:
        out: dict[int, list[Any]] = {}
        if not customer_ids:
            return out
        for row in await self.conn.execute(
            select(
                phones_t.c.id,
                phones_t.c.customer_id,
                phones_t.c.raw,
                phones_t.c.role,
                phones_t.c.valid,
                phones_t.c.accuracy,
                phones_t.c.do_not_call,
            )
            .where(self._in(phones_t.c.customer_id, list(customer_ids)))
            .order_by(phones_t.c.id)
        ):
            out.setdefault(row.customer_id, []).append(row)
        return out

    def _policy_values(self, p: _Prepared, customer_ids: dict[str, int]) -> dict[str, Any]:
        r = p.record
        values: dict[str, Any] = {
            name: getattr(r, name) for name in POLICY_FIELDS if getattr(r, name) is not None
        }
        values["policyholder_id"] = customer_ids[p.holder_key]
        if p.insured_key is not None:
            values["insured_id"] = customer_ids[p.insured_key]
        if r.branch_code:
            values["branch_id"] = self.branch_ids[r.branch_code]
        if "fleet" in self.columns:
            values["is_fleet"] = r.is_fleet
        return values

    async def _policies(self, todo: list[_Prepared], customer_ids: dict[str, int]) -> None:
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for p in todo:
            values = self._policy_values(p, customer_ids)
            if p.existing is None:
                values["policy_number"] = p.record.policy_number
                values.setdefault("is_fleet", p.record.is_fleet)
                inserts.append(values)
                continue
            changes = {k: v for k, v in values.items() if getattr(p.existing, k) != v}
            if changes:
                p.changed = True
                updates.append(changes | {"_id": p.existing.id})
        if inserts:
            # Rows of one statement must share their columns: fill the gaps with NULL.
            names = {k for row in inserts for k in row}
            rows = [{k: row.get(k) for k in names} for row in inserts]
            await bulk_insert(self.conn, policies_t, rows, ["policy_number"])
            numbers = [row["policy_number"] for row in inserts]
            stored = {
                row.policy_number: row
                for row in await self.conn.execute(
                    select(policies_t).where(self._in(policies_t.c.policy_number, numbers))
                )
            }
            for p in todo:
                if p.existing is None:
                    p.existing = stored[p.record.policy_number]
        # One executemany per set of changed columns.
        by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for change in updates:
            by_shape.setdefault(tuple(sorted(change)), []).append(change)
        for shape, rows in by_shape.items():
            cols = [c for c in shape if c != "_id"]
            await self.conn.execute(
                update(policies_t)
                .where(policies_t.c.id == bindparam("_id"))
                .values({c: bindparam(c) for c in cols}),
                rows,
            )

    async def _leads(
        self,
        todo: list[_Prepared],
        customer_ids: dict[str, int],
        phones_by_customer: dict[int, list[Any]],
    ) -> None:
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for p in todo:
            r = p.record
            phone_id = self._choose_phone(p, customer_ids, phones_by_customer)
            due = initial_due_on(self.kind, r, self.today, self.rules)
            if p.lead is None:
                p.new_lead = True
                inserts.append(
                    {
                        "policy_id": p.existing.id,
                        "kind": self.kind.value,
                        "status": initial_status(self.kind).value,
                        "phone_id": phone_id,
                        "due_on": due,
                    }
                )
                continue
            if p.lead.status not in OPEN_UNWORKED:
                continue
            change: dict[str, Any] = {}
            if phone_id is not None and p.lead.phone_id != phone_id:
                change["phone_id"] = phone_id
            # Only an expiry-derived due date follows a changed expiry; "due on import"
            # kinds keep the day they were first imported.
            if self.kind in (LeadKind.RENEWAL, LeadKind.TRIAL) and p.lead.due_on != due:
                change["due_on"] = due
            if change:
                p.changed = True
                updates.append(
                    {
                        "_id": p.lead.id,
                        "phone_id": change.get("phone_id", p.lead.phone_id),
                        "due_on": change.get("due_on", p.lead.due_on),
                    }
                )
        if inserts:
            await bulk_insert(self.conn, leads_t, inserts, ["policy_id", "kind"])
        if updates:
            await self.conn.execute(
                update(leads_t)
                .where(leads_t.c.id == bindparam("_id"))
                .values(phone_id=bindparam("phone_id"), due_on=bindparam("due_on")),
                updates,
            )

    def _choose_phone(
        self,
        p: _Prepared,
        customer_ids: dict[str, int],
        phones_by_customer: dict[int, list[Any]],
    ) -> int | None:
        r = p.record
        holder_id = customer_ids[p.holder_key]
        insured_id = customer_ids[p.insured_key] if p.insured_key is not None else None
        holder_role = _FLEET if r.is_fleet else _HOLDER
        # The roles of this row decide, not the role a number was first stored with: the same
        # person can be a fleet car's insured here and a policyholder elsewhere.
        row_roles: dict[tuple[int, str], str] = {}
        for ph in r.policyholder_phones:
            row_roles.setdefault((holder_id, ph.raw), holder_role)
        for ph in r.insured_phones:
            row_roles.setdefault((insured_id or holder_id, ph.raw), _INSURED)
        candidates: list[PhoneChoice] = []
        for cid in dict.fromkeys(c for c in (holder_id, insured_id) if c is not None):
            for row in phones_by_customer.get(cid, []):
                role = row_roles.get((cid, row.raw))
                if role is None:
                    if row.role != _CORRECTED:
                        continue
                    role = row.role
                candidates.append(
                    PhoneChoice(row.id, role, row.valid, row.accuracy, row.do_not_call)
                )
        chosen = choose_lead_phone(candidates, is_fleet=r.is_fleet)
        self._note_lookup(p, chosen is None)
        return chosen

    def _note_lookup(self, p: _Prepared, no_usable_phone: bool) -> None:
        r = p.record
        branch = r.branch_code or ""
        plate = r.plate_number or ""

        def add(customer: str, role: str, raw: str, reason: str) -> None:
            self.lookup.append(
                LookupEntry(branch, r.policy_number, plate, customer, role, raw, reason)
            )

        holder_role = _FLEET if r.is_fleet else _HOLDER
        for ph in r.policyholder_phones:
            if not ph.valid:
                add(r.policyholder, holder_role, ph.raw, ph.invalid_reason or "invalid")
        same_person = p.insured_key == p.holder_key
        for ph in r.insured_phones:
            if same_person and ph in r.policyholder_phones:
                continue
            if not ph.valid:
                add(
                    r.insured or r.policyholder,
                    _INSURED,
                    ph.raw,
                    ph.invalid_reason or "invalid",
                )
        if r.is_fleet and not r.insured_phones:
            add(
                r.insured or "",
                _INSURED,
                "",
                "fleet policy: the insured's own number is missing",
            )
        elif no_usable_phone and not r.policyholder_phones and not r.insured_phones:
            add(r.policyholder, "", "", "no phone number")

    async def finish(self) -> None:
        self.summary.lookup = Counter(e.branch or "-" for e in self.lookup)


# --------------------------------------------------------------------------- reports


def errors_path(source: Path) -> Path:
    return source.with_name(source.name + ".errors.csv")


def lookup_path(source: Path, branch: str) -> Path:
    safe = re.sub(r"[^\w\-]+", "_", branch or "no-branch")
    return source.with_name(f"{source.name}.phones-to-look-up.{safe}.csv")


def write_error_file(source: Path, errors: Sequence[RowError]) -> Path | None:
    """`<input>.errors.csv` (UTF-8 with BOM, so Excel opens it); a stale one is removed."""
    path = errors_path(source)
    if not errors:
        path.unlink(missing_ok=True)
        return None
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        out = SafeCsvWriter(fh)
        out.writerow(["row", "column", "value", "reason"])
        for e in errors:
            out.writerow([e.row, e.column, e.value, e.reason])
    return path


def write_lookup_files(source: Path, entries: Sequence[LookupEntry]) -> list[Path]:
    """One `<input>.phones-to-look-up.<branch>.csv` per branch; stale ones are removed."""
    for old in source.parent.glob(f"{source.name}.phones-to-look-up.*.csv"):
        old.unlink()
    by_branch: dict[str, list[LookupEntry]] = {}
    for e in entries:
        by_branch.setdefault(e.branch, []).append(e)
    written: list[Path] = []
    for branch, rows in sorted(by_branch.items()):
        path = lookup_path(source, branch)
        with path.open("w", encoding="utf-8-sig", newline="") as fh:
            out = SafeCsvWriter(fh)
            out.writerow(
                ["branch", "policy_number", "plate_number", "customer", "role", "number", "reason"]
            )
            for e in rows:
                out.writerow(
                    [e.branch, e.policy_number, e.plate_number, e.customer, e.role, e.raw, e.reason]
                )
        written.append(path)
    return written


# --------------------------------------------------------------------------- entry point


async def import_file(
    engine: AsyncEngine,
    path: Path,
    kind: LeadKind | str,
    *,
    now: datetime,
    today: date,
    mapping: Mapping | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
    prepared: PreparedImport | None = None,
    clock: Clock | None = None,
    rules: TimelineRules | None = None,
) -> ImportSummary:
    """Import one file. Raises ImportInputError (nothing written) if the file is unusable.

    `rules`: the desk's timeline rules (`DeskCalendar.rules`), which set each lead's due day."""
    kind = LeadKind(kind)
    started = time.perf_counter()
    path = Path(path)
    prepared = prepared or prepare(path, mapping)
    summary = ImportSummary(
        file=str(path),
        kind=kind.value,
        format=prepared.table.format,
        encoding=prepared.table.encoding,
    )
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # One import at a time per database: the batches' look-ups stay true until commit.
            await conn.execute(select(func.pg_advisory_xact_lock(IMPORT_LOCK_KEY)))
        writer = _Writer(
            conn, kind, today, now, summary, set(prepared.columns), rules or TimelineRules()
        )
        await writer.start()
        # Reading and validating the next batch (a thread) overlaps writing this one.
        batches = batched(prepared, batch_size)
        pending = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
        try:
            while (batch := await pending) is not None:
                pending = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
                await writer.write(batch)
                if progress is not None:
                    progress(len(batch))
        finally:
            if not pending.done():
                await asyncio.wait([pending])
            if pending.done() and not pending.cancelled():
                pending.exception()  # retrieved: the error that matters is already raised
        await writer.finish()
        summary.seconds = time.perf_counter() - started
        # The report files are written after the commit, but their names go into the record.
        summary.errors_file = str(errors_path(path)) if summary.errors else None
        summary.lookup_files = [
            str(lookup_path(path, b)) for b in sorted({e.branch for e in writer.lookup})
        ]
        result = await conn.execute(
            _insert(conn, import_runs_t).returning(import_runs_t.c.id),
            {
                "file_name": str(path)[-500:],
                "file_sha256": prepared.table.sha256,
                "kind": kind.value,
                "started_at": now,
                "finished_at": clock.now() if clock is not None else now,
                "summary": summary.to_dict(),
            },
        )
        summary.import_run_id = result.scalar_one()
    error_file = write_error_file(path, summary.errors)
    summary.errors_file = str(error_file) if error_file else None
    summary.lookup_files = [str(p) for p in write_lookup_files(path, writer.lookup)]
    summary.seconds = time.perf_counter() - started
    return summary


# --------------------------------------------------------------------------- specialists

ROLES = ("specialist", "supervisor", "maintainer")


async def add_specialist(
    session: AsyncSession,
    name: str,
    seat: str,
    branch_code: str | None = None,
    role: str = "specialist",
    technologies: Iterable[str] = TECHNOLOGY.values(),
) -> Specialist:
    """A user of the desk: a specialist (dials their own leads) or a supervisor/maintainer
    (reviews recordings, runs the distribution, sees every lead). `technologies`: the seat
    technologies of the configured Asterisk servers (PJSIP, Local)."""
    if role not in ROLES:
        raise SpecialistError(f"role {role!r} is not one of {', '.join(ROLES)}")
    name = name.strip()
    if not name:
        raise SpecialistError("a specialist needs a name")
    problem = seat_problem(seat, technologies)
    if problem:
        raise SpecialistError(f"seat {seat!r} refused: {problem}")
    branch_id: int | None = None
    if branch_code:
        branch_id = await session.scalar(select(Branch.id).where(Branch.code == branch_code))
        if branch_id is None:
            known = (await session.scalars(select(Branch.code).order_by(Branch.code))).all()
            raise SpecialistError(
                f"no branch with code {branch_code!r}"
                + (f"; known: {', '.join(known)}" if known else "; import a list first")
            )
    if await session.scalar(select(Specialist.id).where(Specialist.seat == seat)) is not None:
        raise SpecialistError(f"seat {seat} already belongs to another specialist")
    specialist = Specialist(name=name, seat=seat, branch_id=branch_id, role=role)
    session.add(specialist)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise SpecialistError(f"seat {seat} already belongs to another specialist") from exc
    return specialist


async def find_specialist(session: AsyncSession, ident: str) -> Specialist:
    """By id (digits) or by seat (PJSIP/8001)."""
    where = Specialist.id == int(ident) if ident.isdigit() else Specialist.seat == ident
    specialist = await session.scalar(select(Specialist).where(where))
    if specialist is None:
        raise NotFound(f"no specialist with {'id' if ident.isdigit() else 'seat'} {ident}")
    return specialist


async def list_specialists(
    session: AsyncSession, include_inactive: bool = True
) -> list[dict[str, Any]]:
    stmt = select(Specialist, Branch.code).outerjoin(Branch, Specialist.branch_id == Branch.id)
    if not include_inactive:
        stmt = stmt.where(Specialist.active.is_(True))
    rows = await session.execute(stmt.order_by(Specialist.id))
    return [
        {
            "id": s.id,
            "name": s.name,
            "seat": s.seat,
            "branch": code,
            "active": s.active,
            "on_leave": s.on_leave,
            "role": s.role,
        }
        for s, code in rows
    ]


async def set_specialist_state(
    session: AsyncSession, ident: str, *, active: bool | None = None, on_leave: bool | None = None
) -> Specialist:
    specialist = await find_specialist(session, ident)
    if active is not None:
        specialist.active = active
    if on_leave is not None:
        specialist.on_leave = on_leave
    await session.flush()
    return specialist


# --------------------------------------------------------------------------- look-ups from the DB


async def phones_to_look_up(
    conn: AsyncConnection, branch_code: str | None = None
) -> list[dict[str, Any]]:
    """Invalid numbers on open leads, per branch (for the branch e-mail and `import` reports)."""
    stmt = (
        select(
            Branch.code.label("branch"),
            Policy.policy_number,
            Policy.plate_number,
            Customer.name.label("customer"),
            Phone.role,
            Phone.raw,
            Phone.invalid_reason,
        )
        .select_from(Phone)
        .join(Customer, Customer.id == Phone.customer_id)
        .join(
            Policy,
            or_(Policy.policyholder_id == Customer.id, Policy.insured_id == Customer.id),
        )
        .outerjoin(Branch, Branch.id == Policy.branch_id)
        .join(
            Lead,
            and_(Lead.policy_id == Policy.id, Lead.status != LeadStatus.CLOSED.value),
        )
        .where(Phone.valid.is_(False))
        .distinct()
        .order_by(Branch.code, Policy.policy_number, Phone.raw)
    )
    if branch_code is not None:
        stmt = stmt.where(Branch.code == branch_code)
    return [dict(row._mapping) for row in await conn.execute(stmt)]
