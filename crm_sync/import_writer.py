"""The import's batched writer: one batch of validated rows into the CRM tables.

Existing keys are fetched per batch, new rows go in with `crm_sync.bulk.bulk_insert`, changed
rows with executemany `UPDATE`s. The decisions for each record (its customers, the number its
lead dials, what the branch must look up) are `crm_sync.import_choices`'; the customers and
their numbers are written by `crm_sync.import_customers`; this module triages the records and
writes branches, policies and leads. `crm_sync.services.import_file` drives it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_sync.bulk import bulk_insert, dialect_insert, in_values
from crm_sync.import_choices import (
    Prepared,
    customer_keys,
    initial_due_on,
    initial_status,
    lead_phone,
    lookup_entries,
)
from crm_sync.import_customers import phones_of, write_customers
from crm_sync.import_records import PolicyRecord, RowRejected, RowResult, RowSkipped
from crm_sync.import_report import ImportSummary, LookupEntry
from crm_sync.models import Branch, ContactResult, Lead, LeadKind, LeadStatus, Policy
from schedules.timeline import TimelineRules

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

policies_t: Table = Policy.__table__  # type: ignore[assignment]
leads_t: Table = Lead.__table__  # type: ignore[assignment]
branches_t: Table = Branch.__table__  # type: ignore[assignment]


class ImportWriter:
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
        customer_ids, new_phone_customers = await write_customers(self.conn, todo, self.addressed)
        phones_by_customer = await phones_of(self.conn, set(customer_ids.values()))
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

    def _in(self, column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[bool]:
        return in_values(self.conn, column, values)

    # -- which records to write --------------------------------------------------------

    async def _triage(self, records: list[PolicyRecord]) -> list[Prepared]:
        """Skip renewed policies and handled leads; attach what is stored for the rest."""
        existing, successors, leads, kinds = await self._stored(records)
        mark_renewed: list[int] = []
        todo: list[Prepared] = []
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
            holder_key, insured_key = customer_keys(r)
            todo.append(Prepared(r, holder_key, insured_key, stored, lead))
        if mark_renewed:
            await self.conn.execute(
                update(policies_t)
                .where(policies_t.c.id.in_(mark_renewed))
                .values(renewed=True, renewed_at=self.now)
            )
        return todo

    async def _stored(
        self, records: list[PolicyRecord]
    ) -> tuple[dict[str, Any], set[str], dict[tuple[int, str], Any], set[str]]:
        """The stored policies of these records, the numbers a stored policy renews, and the
        stored leads of the kinds that can settle these records (with those kinds)."""
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
        return existing, successors, leads, kinds

    def _handled(self, lead: Any) -> bool:
        if lead is None:
            return False
        return bool(
            lead.status == LeadStatus.CLOSED.value or lead.contact_result in self.final_results
        )

    # -- branches --------------------------------------------------------------------

    async def _branches(self, records: Iterable[PolicyRecord]) -> None:
        wanted: dict[str, tuple[str, str | None]] = {}
        for r in records:
            if r.branch_code and r.branch_code not in wanted:
                wanted[r.branch_code] = (r.branch_name or r.branch_code, r.branch_email)
        missing = [code for code in wanted if code not in self.branch_ids]
        if missing:
            await self.conn.execute(
                dialect_insert(self.conn, branches_t).on_conflict_do_nothing(
                    index_elements=["code"]
                ),
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

    # -- policies and leads ------------------------------------------------------------

    def _policy_values(self, p: Prepared, customer_ids: dict[str, int]) -> dict[str, Any]:
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

    async def _policies(self, todo: list[Prepared], customer_ids: dict[str, int]) -> None:
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
        todo: list[Prepared],
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
        p: Prepared,
        customer_ids: dict[str, int],
        phones_by_customer: dict[int, list[Any]],
    ) -> int | None:
        chosen = lead_phone(p, customer_ids, phones_by_customer)
        self.lookup.extend(lookup_entries(p, chosen is None))
        return chosen

    async def finish(self) -> None:
        self.summary.lookup = Counter(e.branch or "-" for e in self.lookup)
