"""CRM services: importing a core-system export, and the numbers branches must look up.

`import_file` reads and validates with `crm_sync.importer` (pure) and writes a batch of rows at
a time with `crm_sync.import_writer`; the whole file is one transaction, so an import either
lands completely or not at all. What it reports is `crm_sync.import_report`'s. The desk's
users are `crm_sync.specialists`'.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crm_sync.bulk import dialect_insert
from crm_sync.import_mapping import Mapping
from crm_sync.import_report import (
    ImportSummary,
    errors_path,
    lookup_path,
    write_error_file,
    write_lookup_files,
)
from crm_sync.import_writer import ImportWriter
from crm_sync.importer import PreparedImport, batched, prepare
from crm_sync.models import Branch, Customer, ImportRun, Lead, LeadKind, LeadStatus, Phone, Policy
from schedules.timeline import TimelineRules

if TYPE_CHECKING:
    from common.clock import Clock

BATCH_SIZE = 1000
IMPORT_LOCK_KEY = 0x43_52_4D_49  # "CRMI": pg_advisory_xact_lock key serialising imports

import_runs_t: Table = ImportRun.__table__  # type: ignore[assignment]


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
        writer = ImportWriter(
            conn, kind, today, now, summary, set(prepared.columns), rules or TimelineRules()
        )
        await writer.start()
        await _write_batches(writer, prepared, batch_size, progress)
        await writer.finish()
        summary.seconds = time.perf_counter() - started
        # The report files are written after the commit, but their names go into the record.
        summary.errors_file = str(errors_path(path)) if summary.errors else None
        summary.lookup_files = [
            str(lookup_path(path, b)) for b in sorted({e.branch for e in writer.lookup})
        ]
        finished = clock.now() if clock is not None else now
        summary.import_run_id = await _record_run(
            conn, path, prepared, kind, now, finished, summary
        )
    error_file = write_error_file(path, summary.errors)
    summary.errors_file = str(error_file) if error_file else None
    summary.lookup_files = [str(p) for p in write_lookup_files(path, writer.lookup)]
    summary.seconds = time.perf_counter() - started
    return summary


async def _write_batches(
    writer: ImportWriter,
    prepared: PreparedImport,
    batch_size: int,
    progress: Callable[[int], None] | None,
) -> None:
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


async def _record_run(
    conn: AsyncConnection,
    path: Path,
    prepared: PreparedImport,
    kind: LeadKind,
    started_at: datetime,
    finished_at: datetime,
    summary: ImportSummary,
) -> int:
    """The `import_runs` row of this import, with its summary; its id."""
    result = await conn.execute(
        dialect_insert(conn, import_runs_t).returning(import_runs_t.c.id),
        {
            "file_name": str(path)[-500:],
            "file_sha256": prepared.table.sha256,
            "kind": kind.value,
            "started_at": started_at,
            "finished_at": finished_at,
            "summary": summary.to_dict(),
        },
    )
    return int(result.scalar_one())


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
