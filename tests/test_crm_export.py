"""The spreadsheet sink: the day's results as XLSX and CSV in the CRM-import layout, opened
with openpyxl and read back through the project's own importer; written on demand (CLI) and
daily on the clock. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import zipfile
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.export import COLUMNS, content_digest, run_daily_export, write_xlsx
from crm_sync.import_records import PolicyRecord
from crm_sync.importer import prepare
from crm_sync.models import Lead, Phone, SalesRecord
from crm_sync.sinks import FILE_TYPES
from schedules.clock import VirtualClock
from tests.outbox_support import SECRET, Answer, Receiver
from tests.test_dialer_support import seed
from tests.test_import_cli import cli, cli_env  # noqa: F401 (a fixture)

DAY = date(2026, 1, 5)
SHANGHAI = ZoneInfo("Asia/Shanghai")
AT_1100 = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)  # 11:00 Shanghai


async def seed_day(sessions: async_sessionmaker[AsyncSession]) -> list[int]:
    """Three leads: sold today, unreachable today (number inaccurate), untouched."""
    async with sessions() as s:
        specs, leads = await seed(s, specialists=1, leads=[("renewal", "0", 0)] * 3)
    async with sessions.begin() as s:
        sold = await s.get(Lead, leads[0])
        lost = await s.get(Lead, leads[1])
        assert sold is not None and lost is not None
        sold.status, sold.contact_result, sold.contact_result_at = "closed", "renewed", AT_1100
        s.add(
            SalesRecord(
                lead_id=sold.id,
                specialist_id=specs[0],
                new_policy_number="N000001",
                premium=Decimal("3120.50"),
                points=31,
                sold_at=AT_1100,
            )
        )
        lost.status, lost.contact_result, lost.contact_result_at = "closed", "unreachable", AT_1100
        phone = await s.get(Phone, lost.phone_id)
        assert phone is not None
        phone.accuracy, phone.accuracy_reason, phone.accuracy_set_at = (
            "inaccurate",
            "3 calls unanswered",
            AT_1100,
        )
    return leads


@pytest.mark.usefixtures("cli_env")
async def test_the_days_results_open_in_excel_and_read_back_through_the_importer(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    await seed_day(sessions)
    out = tmp_path / "export"
    code = await cli(
        "crm-export", "--day", DAY.isoformat(), "--format", "xlsx", "csv", "--dir", str(out)
    )
    assert code == 0
    xlsx, csv_file = out / "联系结果_2026-01-05.xlsx", out / "联系结果_2026-01-05.csv"
    assert sorted(p.name for p in out.iterdir()) == sorted([xlsx.name, csv_file.name])  # no .part
    sheet = load_workbook(xlsx, read_only=True).active
    assert sheet is not None
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0] == [h for h, _ in COLUMNS]
    by_policy = {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert set(by_policy) == {"P000000", "P000001"}  # the untouched lead is not in the day
    sold, lost = by_policy["P000000"], by_policy["P000001"]
    assert (sold["联系结果"], sold["新保单号"], sold["积分"]) == ("成功续保", "N000001", 31)
    assert float(sold["续保保费"]) == 3120.50
    assert sold["所属人员"] == "专员0" and sold["联系结果时间"] == datetime(2026, 1, 5, 11, 0)
    assert (lost["号码准确性"], lost["不准确原因"]) == ("不准确", "3 calls unanswered")
    assert csv_file.read_bytes().decode("gb18030").startswith("保单号,")
    for path in (xlsx, csv_file):
        records = [r for r in prepare(path) if isinstance(r, PolicyRecord)]
        assert [(r.policy_number, r.policyholder) for r in records] == [
            ("P000000", "客户0"),
            ("P000001", "客户1"),
        ]
        assert [r.policyholder_phones[0].e164 for r in records] == [
            "+8613900000000",
            "+8613900000010",
        ]
        assert records[0].expiry_date == DAY + timedelta(days=25)
        assert records[0].branch_code == "B1"


@pytest.mark.usefixtures("cli_env")
async def test_the_days_files_are_handed_to_the_webhook_signed_once_each(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_day(sessions)
    receiver = Receiver([SECRET], lambda: datetime.now(UTC))  # the CLI runs on the wall clock
    await receiver.start()
    monkeypatch.setenv("CALLCENTER_CRM__WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("CALLCENTER_CRM__WEBHOOK_SECRETS", f'["{SECRET}"]')
    out = tmp_path / "export"
    argv = ("crm-export", "--day", DAY.isoformat(), "--format", "xlsx", "csv", "--dir", str(out))
    try:
        assert await cli(*argv, "--upload") == 0
        assert receiver.forged == 0 and len(receiver.files) == 2
        by_name = {unquote(d.split("''")[1]): (t, b) for d, t, b in receiver.files.values()}
        xlsx, csv_file = "联系结果_2026-01-05.xlsx", "联系结果_2026-01-05.csv"
        assert set(by_name) == {xlsx, csv_file}
        assert by_name[xlsx] == (FILE_TYPES[".xlsx"], (out / xlsx).read_bytes())
        assert by_name[csv_file][1].decode("gb18030").startswith("保单号,")
        sheet = load_workbook(BytesIO(by_name[xlsx][1]), read_only=True).active
        assert sheet is not None and len(list(sheet.iter_rows())) == 3  # headers, two leads

        assert await cli(*argv, "--upload") == 0  # the same rows again: dropped by their keys
        assert len(receiver.files) == 2 and len(receiver.file_duplicates) == 2

        receiver.script = lambda _doc: Answer(503, "down for maintenance")
        assert await cli(*argv, "--upload") == 1  # said plainly; the files stay in the folder
        assert (out / xlsx).exists()
    finally:
        await receiver.stop()


def test_an_xlsx_saved_again_with_the_same_rows_has_the_same_content_key(tmp_path: Path) -> None:
    rows = [{key: f"{key}-{n}" for _, key in COLUMNS} for n in range(3)]
    first = write_xlsx(rows, tmp_path / "a.xlsx", "2026-01-05")
    # The same workbook saved at another time: every zip entry (and docProps) stamped anew.
    again = tmp_path / "b.xlsx"
    with zipfile.ZipFile(first) as src, zipfile.ZipFile(again, "w") as dst:
        for info in src.infolist():
            info.date_time = (2030, 1, 1, 0, 0, 0)
            dst.writestr(info, src.read(info.filename))
    assert first.read_bytes() != again.read_bytes()
    assert content_digest(first) == content_digest(again)
    other = write_xlsx(rows[:2], tmp_path / "c.xlsx", "2026-01-05")
    assert content_digest(other) != content_digest(first)


async def test_the_export_runs_each_day_at_its_time_on_the_clock() -> None:
    clock = VirtualClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))  # 17:00 Shanghai
    days: list[date] = []

    async def export(day: date) -> None:
        days.append(day)

    task = asyncio.create_task(run_daily_export(clock, time(18, 0), SHANGHAI, export))
    try:
        await clock.advance(3599)
        assert days == []
        await clock.advance(1)
        assert days == [DAY]
        await clock.advance(86_399)
        assert days == [DAY]
        await clock.advance(1)
        assert days == [DAY, DAY + timedelta(days=1)]
    finally:
        task.cancel()
