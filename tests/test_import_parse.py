"""The pure half of the import: files in, records and row errors out (no database)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_sync.exceptions import ImportInputError
from crm_sync.import_cells import parse_date
from crm_sync.import_choices import initial_due_on
from crm_sync.import_files import SourceTable
from crm_sync.import_mapping import Mapping, load_mapping, resolve_columns
from crm_sync.import_records import PolicyRecord, RowRejected, RowSkipped
from crm_sync.importer import PreparedImport, prepare
from crm_sync.models import LeadKind
from schedules.timeline import TimelineRules
from tests.test_import_support import HEADER, row, write_csv, write_xlsx


def records(path: Path, **kw: object) -> list[object]:
    return list(prepare(path, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("encoding", "detected"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gb18030", "gb18030")],
)
def test_csv_encodings_are_detected_without_asking(
    tmp_path: Path, encoding: str, detected: str
) -> None:
    path = write_csv(tmp_path / "list.csv", [row("P1", holder="欧阳娜")], encoding=encoding)
    prepared = prepare(path)
    assert prepared.table.encoding == detected
    [rec] = list(prepared)
    assert isinstance(rec, PolicyRecord)
    assert rec.policyholder == "欧阳娜"
    assert rec.branch_code == "1301" and rec.branch_name == "石家庄分公司"


def test_xlsx_is_read_with_native_dates_and_numbers(tmp_path: Path) -> None:
    r = row("P1")
    r[0] = 20250000123  # a policy number typed as a number
    r[6] = 13812345678
    r[10] = date(2025, 3, 1)  # type: ignore[call-overload]
    r[11] = date(2026, 2, 28)  # type: ignore[call-overload]
    path = write_xlsx(tmp_path / "list.xlsx", [r])
    prepared = prepare(path)
    assert prepared.table.format == "xlsx"
    [rec] = list(prepared)
    assert isinstance(rec, PolicyRecord)
    assert rec.policy_number == "20250000123"
    assert rec.expiry_date == date(2026, 2, 28)
    assert rec.policyholder_phones[0].e164 == "+8613812345678"


def test_english_headers_are_understood(tmp_path: Path) -> None:
    header = [
        "Policy No",
        "Policyholder",
        "Policyholder Phone",
        "Expiry Date",
        "Start date",
        "Fleet",
    ]
    path = write_csv(
        tmp_path / "en.csv",
        [["P9", "Li Lei", "0311-85551234", "2026/2/28", "2025/3/1", "yes"]],
        header=header,
    )
    [rec] = records(path)
    assert isinstance(rec, PolicyRecord)
    assert (rec.policy_number, rec.expiry_date, rec.is_fleet) == ("P9", date(2026, 2, 28), True)


def test_a_mapping_file_names_the_columns_of_another_layout(tmp_path: Path) -> None:
    mapping = tmp_path / "map.toml"
    mapping.write_text(
        'header_row = 2\ndate_formats = ["%d/%m/%Y"]\n'
        '[columns]\npolicy_number = "Pol. No."\nexpiry_date = ["Valid until"]\n'
        'policyholder = "Client"\npolicyholder_phone = "Tel"\n',
        encoding="utf-8",
    )
    path = tmp_path / "other.csv"
    path.write_text(
        "Renewals of March,,,\nPol. No.,Client,Tel,Valid until\nX-1,赵敏,13912345678,28/02/2026\n",
        encoding="utf-8",
    )
    with pytest.raises(ImportInputError, match="missing required column"):
        prepare(path)
    [rec] = records(path, mapping=load_mapping(mapping))
    assert isinstance(rec, PolicyRecord)
    assert (rec.policy_number, rec.policyholder, rec.expiry_date) == (
        "X-1",
        "赵敏",
        date(2026, 2, 28),
    )


def test_a_title_block_above_the_header_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "titled.csv"
    write_csv(path, [row("P1")], header=HEADER)
    path.write_text("续保清单 2026-01-05\n\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    prepared = prepare(path)
    assert prepared.header_row == 3
    [rec] = list(prepared)
    assert isinstance(rec, PolicyRecord) and rec.row == 4


def test_mapping_file_with_an_unknown_field_is_bad_input(tmp_path: Path) -> None:
    mapping = tmp_path / "map.toml"
    mapping.write_text('[columns]\npolicy_nr = "x"\n', encoding="utf-8")
    with pytest.raises(ImportInputError, match="unknown field 'policy_nr'"):
        load_mapping(mapping)


def test_missing_required_column_names_it(tmp_path: Path) -> None:
    header = [h for h in HEADER if h != "终保日期"]
    path = write_csv(tmp_path / "l.csv", [row("P1")[:11] + row("P1")[12:]], header=header)
    with pytest.raises(ImportInputError, match=r"expiry_date \(终保日期 / 到期日期\)"):
        prepare(path)


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file_is_bad_input(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(ImportInputError, match="empty"):
        prepare(path)


def test_header_without_rows_is_bad_input(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "h.csv", [])
    with pytest.raises(ImportInputError, match="no data rows"):
        prepare(path)


def test_unreadable_encoding_is_bad_input_even_deep_in_the_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "l.csv", [row(f"P{i}") for i in range(2000)], encoding="gb18030")
    with path.open("ab") as fh:
        fh.write(b"P9,\x81\x20broken\n")  # neither UTF-8 nor GB18030
    with pytest.raises(ImportInputError, match="unreadable encoding"):
        prepare(path)


def test_binary_and_old_excel_files_are_bad_input(tmp_path: Path) -> None:
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0" + b"\x00" * 100)
    with pytest.raises(ImportInputError, match=r"\.xls"):
        prepare(xls)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ImportInputError, match="not a readable XLSX"):
        prepare(broken)


def test_bad_rows_are_reported_with_row_column_and_reason(tmp_path: Path) -> None:
    rows = [
        row("P1"),
        row("", holder="张三"),
        row("P3", expiry="2026-13-45"),
        row("P4", start="2026-03-01", expiry="2026-02-01"),
        row("P5", holder=""),
        row("P1"),
    ]
    results = records(write_csv(tmp_path / "l.csv", rows))
    assert isinstance(results[0], PolicyRecord)
    rejected = [r for r in results if isinstance(r, RowRejected)]
    found = {(e.row, e.column, e.reason) for r in rejected for e in r.errors}
    assert found == {
        (3, "保单号", "no policy number"),
        (4, "终保日期", "not a date"),
        (5, "终保日期", "expiry date before the start date 2026-03-01"),
        (6, "投保人", "no policyholder name"),
    }
    assert results[-1] == RowSkipped(7, "P1", "duplicate_in_file")


@pytest.mark.parametrize(
    "text",
    ["2026-02-28", "2026/2/28", "2026.02.28", "20260228", "2026年2月28日", "2026-02-28 00:00:00"],
)
def test_dates_in_the_spellings_exports_use(text: str) -> None:
    assert parse_date(text) == date(2026, 2, 28)


def test_initial_due_dates_per_kind() -> None:
    rec = PolicyRecord(row=2, policy_number="P", expiry_date=date(2026, 3, 31), policyholder="x")
    today = date(2026, 1, 5)
    assert initial_due_on(LeadKind.RENEWAL, rec, today) == date(2026, 3, 6)
    assert initial_due_on(LeadKind.TRIAL, rec, today) == date(2026, 2, 28)
    assert initial_due_on(LeadKind.LAPSED, rec, today) == today
    assert initial_due_on(LeadKind.CALLBACK, rec, today) == today
    configured = TimelineRules(distribution_days=20)
    assert initial_due_on(LeadKind.RENEWAL, rec, today, configured) == date(2026, 3, 11)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.text(max_size=12), st.integers(), st.floats()), max_size=20)
)
def test_any_row_is_either_a_record_or_rejected_never_an_exception(cells: list[object]) -> None:
    result = _PREPARED_FOR_FUZZ.validate(2, cells)  # type: ignore[arg-type]
    assert isinstance(result, PolicyRecord | RowRejected)
    if isinstance(result, RowRejected):
        assert result.errors and all(e.row == 2 and e.reason for e in result.errors)


# Built from the header alone: validation needs the column map, not a file.
_PREPARED_FOR_FUZZ = PreparedImport(
    table=SourceTable(Path("fuzz.csv"), "csv", "utf-8", ""),
    mapping=Mapping(),
    header_row=1,
    header=list(HEADER),
    columns=resolve_columns(HEADER, Mapping()),
    _rows=iter(()),
)
