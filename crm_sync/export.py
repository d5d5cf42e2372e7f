"""The spreadsheet sink: for a CRM that only imports files, the day's contact results, sales
and inaccurate numbers as XLSX (and/or CSV in GB18030 or UTF-8), one row per lead, with the
Chinese headers of the desk's CRM import. The columns the core-system export also has
(保单号, 车牌号, 投保人, 投保人联系电话, 终保日期, 机构…) carry the same headers, so the file
also reads back through `crm_sync.importer`.

Written atomically: to a temporary name in the target folder, then renamed, so a CRM job
that picks files up never sees half a file; with `crm.export_upload` each file is also handed
to the CRM webhook as a file upload, signed like every webhook request. On demand
(`callcenter crm-export [--upload]`) and daily at `crm.export_time`.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook, load_workbook
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from crm_sync.models import (
    Accuracy,
    Branch,
    ContactResult,
    Customer,
    Lead,
    Phone,
    Policy,
    SalesRecord,
    Specialist,
)
from crm_sync.sinks import VerdictKind, WebhookSink
from schedules.clock import Clock

log = logging.getLogger(__name__)

# (header, field): the CRM import's column layout.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("保单号", "policy_number"),
    ("车牌号", "plate_number"),
    ("厂牌型号", "make_model"),
    ("投保人", "policyholder"),
    ("投保人联系电话", "phone"),
    ("终保日期", "expiry_date"),
    ("机构代码", "branch_code"),
    ("机构", "branch"),
    ("线索类型", "kind"),
    ("所属人员", "owner"),
    ("发放日期", "distributed_on"),
    ("联系结果", "contact_result"),
    ("联系结果时间", "contact_result_at"),
    ("拨打次数", "attempt_count"),
    ("号码准确性", "accuracy"),
    ("不准确原因", "accuracy_reason"),
    ("新保单号", "new_policy_number"),
    ("续保保费", "sale_premium"),
    ("积分", "points"),
    ("续保时间", "sold_at"),
)
ACCURACY_ZH = {Accuracy.ACCURATE.value: "准确", Accuracy.INACCURATE.value: "不准确", "unknown": ""}
KIND_ZH = {"renewal": "续保", "lapsed": "脱保", "trial": "体验会员转化", "callback": "承保回访"}


def _day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    return start, start + timedelta(days=1)


def _national(e164: str | None, raw: str | None) -> str:
    if e164 and e164.startswith("+86"):
        return e164[3:]
    return e164 or raw or ""


async def day_rows(session: AsyncSession, day: date, tz: ZoneInfo) -> list[dict[str, Any]]:
    """One row per lead that got a contact result, a sale, or an inaccurate number that day
    (the desk's local day)."""
    start, end = _day_bounds(day, tz)
    owner = aliased(Specialist)
    stmt = (
        select(Lead, Policy, Customer, Phone, owner, Branch, SalesRecord, ContactResult)
        .join(Policy, Lead.policy_id == Policy.id)
        .join(Customer, Policy.policyholder_id == Customer.id)
        .outerjoin(Phone, Lead.phone_id == Phone.id)
        .outerjoin(owner, Lead.owner_id == owner.id)
        .outerjoin(Branch, Policy.branch_id == Branch.id)
        .outerjoin(SalesRecord, SalesRecord.lead_id == Lead.id)
        .outerjoin(ContactResult, ContactResult.code == Lead.contact_result)
        .where(
            or_(
                and_(Lead.contact_result_at >= start, Lead.contact_result_at < end),
                and_(SalesRecord.sold_at >= start, SalesRecord.sold_at < end),
                and_(
                    Phone.accuracy == Accuracy.INACCURATE.value,
                    Phone.accuracy_set_at >= start,
                    Phone.accuracy_set_at < end,
                ),
            )
        )
        .order_by(Policy.policy_number, Lead.kind)
    )
    return [_row(tz, *r) for r in (await session.execute(stmt)).all()]


def _row(
    tz: ZoneInfo,
    lead: Lead,
    policy: Policy,
    customer: Customer,
    phone: Phone | None,
    spec: Specialist | None,
    branch: Branch | None,
    sale: SalesRecord | None,
    result: ContactResult | None,
) -> dict[str, Any]:
    """One lead's line of the day's spreadsheet (local times without a zone, as Excel shows them)."""
    return {
        "policy_number": policy.policy_number,
        "plate_number": policy.plate_number or "",
        "make_model": policy.make_model or "",
        "policyholder": customer.name,
        "phone": _national(phone.e164, phone.raw) if phone else "",
        "expiry_date": policy.expiry_date,
        "branch_code": branch.code if branch else "",
        "branch": branch.name if branch else "",
        "kind": KIND_ZH.get(lead.kind, lead.kind),
        "owner": spec.name if spec else "",
        "distributed_on": lead.distributed_on,
        "contact_result": result.label_zh if result else "",
        "contact_result_at": (
            lead.contact_result_at.astimezone(tz).replace(tzinfo=None)
            if lead.contact_result_at
            else None
        ),
        "attempt_count": lead.attempt_count,
        "accuracy": ACCURACY_ZH.get(phone.accuracy, "") if phone else "",
        "accuracy_reason": (
            phone.accuracy_reason or ""
            if phone and phone.accuracy == Accuracy.INACCURATE.value
            else ""
        ),
        "new_policy_number": sale.new_policy_number or "" if sale else "",
        "sale_premium": sale.premium if sale else None,
        "points": sale.points if sale else None,
        "sold_at": sale.sold_at.astimezone(tz).replace(tzinfo=None) if sale else None,
    }


@contextmanager
def atomic_file(path: Path, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Write to a temporary file beside `path`, rename over it when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cell(value: Any) -> Any:
    return "" if value is None else value


def write_xlsx(rows: Sequence[dict[str, Any]], path: Path, sheet: str) -> Path:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet)
    ws.append([h for h, _ in COLUMNS])
    for row in rows:
        ws.append([_cell(row[key]) for _, key in COLUMNS])
    with atomic_file(path) as fh:
        wb.save(fh)
    return path


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def write_csv(rows: Sequence[dict[str, Any]], path: Path, encoding: str) -> Path:
    # utf-8-sig: Excel on a Chinese desktop reads UTF-8 CSV right only with the BOM.
    enc = "utf-8-sig" if encoding.lower().replace("_", "-") == "utf-8" else encoding
    with atomic_file(path, "w", encoding=enc, newline="") as fh:
        out = csv.writer(fh)
        out.writerow([h for h, _ in COLUMNS])
        for row in rows:
            out.writerow([_csv_text(row[key]) for _, key in COLUMNS])
    return path


async def export_day(
    sessions: async_sessionmaker[AsyncSession],
    day: date,
    tz: ZoneInfo,
    folder: Path,
    formats: Sequence[str] = ("xlsx",),
    csv_encoding: str = "gb18030",
) -> list[Path]:
    """Write `联系结果_<day>.xlsx` / `.csv` into `folder`; returns the files written."""
    async with sessions() as s:
        rows = await day_rows(s, day, tz)
    stem = f"联系结果_{day.isoformat()}"
    written: list[Path] = []
    for fmt in formats:
        if fmt == "xlsx":
            written.append(
                await asyncio.to_thread(write_xlsx, rows, folder / f"{stem}.xlsx", day.isoformat())
            )
        elif fmt == "csv":
            written.append(
                await asyncio.to_thread(write_csv, rows, folder / f"{stem}.csv", csv_encoding)
            )
        else:
            raise ValueError(f"unknown export format {fmt!r}: use xlsx or csv")
    log.info("CRM export for %s: %d lead(s) into %s", day, len(rows), ", ".join(map(str, written)))
    return written


def content_digest(path: Path) -> str:
    """sha256 of what a file says: a CSV's bytes; an XLSX's cell values (its bytes carry the
    time it was saved, so the same rows saved twice differ)."""
    if path.suffix.lower() != ".xlsx":
        return hashlib.sha256(path.read_bytes()).hexdigest()
    digest = hashlib.sha256()
    book = load_workbook(path, read_only=True)
    try:
        for sheet in book.worksheets:
            for row in sheet.iter_rows(values_only=True):
                digest.update(repr(row).encode())
    finally:
        book.close()
    return digest.hexdigest()


class HandOverFailed(RuntimeError):
    """The webhook did not take an exported file (the file stays in the folder)."""


async def hand_over(sink: WebhookSink, files: Sequence[Path]) -> list[str]:
    """Hand each written file to the CRM webhook as a file upload (`WebhookSink.upload`).
    The idempotency key names the file and its content, so sending the same file twice is
    dropped by the receiver while a later, fuller export of the same day is not. Raises
    `HandOverFailed` with the receiver's answer when one is not taken; returns the keys."""
    keys: list[str] = []
    for path in files:
        digest = await asyncio.to_thread(content_digest, path)
        key = f"export:{path.name}:{digest[:16]}"
        verdict = await sink.upload(path, key)
        if verdict.kind != VerdictKind.DELIVERED:
            raise HandOverFailed(
                f"the CRM webhook did not take {path.name} ({verdict.detail}); the file is "
                f"still in {path.parent}: run `callcenter crm-export --upload` again later"
            )
        log.info("CRM export %s handed to the webhook (%s)", path.name, key)
        keys.append(key)
    return keys


def next_export_at(now: datetime, at: time, tz: ZoneInfo, last_day: date | None) -> datetime:
    """Today at `at` (local) unless today's file is written, else tomorrow at `at`."""
    day = now.astimezone(tz).date()
    if last_day is not None and last_day >= day:
        day = last_day + timedelta(days=1)
    return max(datetime.combine(day, at, tzinfo=tz), now)


async def run_daily_export(
    clock: Clock, at: time, tz: ZoneInfo, export: Callable[[date], Any]
) -> None:
    """Each day at `at` (local), export that day. A failure is logged and tried in 5 min."""
    last: date | None = None
    while True:
        now = clock.now()
        due = next_export_at(now, at, tz, last)
        if due > now:
            await clock.sleep(min((due - now).total_seconds(), 300.0))
            continue
        day = now.astimezone(tz).date()
        try:
            await export(day)
            last = day
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("CRM export for %s failed; trying again in 5 minutes", day)
            await clock.sleep(300.0)
