"""Reading and validating core-system exports (pure: files in, plain records and errors out).

    open_table(path)            CSV (UTF-8, UTF-8 with BOM, GB18030, detected) or XLSX (streamed)
    prepare(path, mapping)      finds the header row, maps columns, fails early on bad input
    iter(prepared)              PolicyRecord | RowRejected | RowSkipped, one per data row

Nothing here touches the database: `crm_sync.services.import_file` writes the records. Every
"stop, nothing written" problem (missing required column, empty file, unreadable encoding) is
raised as `ImportInputError` before the first record is yielded.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Protocol

from crm_sync.exceptions import ImportInputError
from crm_sync.mail import email_address
from crm_sync.models import Branch, Customer, LeadKind, LeadStatus, Phone, Policy
from crm_sync.phones import ParsedPhone, clean_cell, parse_phone, split_numbers
from schedules.timeline import TimelineRules, due_day

Cell = str | int | float | date | datetime | None

# field -> header aliases (Chinese as the core system exports them, then English).
ALIASES: dict[str, tuple[str, ...]] = {
    "policy_number": ("保单号", "保单号码", "policy number", "policy no", "policy"),
    "plate_number": ("车牌号", "车牌号码", "车牌", "plate number", "plate", "licence plate"),
    "make_model": ("厂牌型号", "车型", "make model", "make and model", "vehicle model"),
    "use_type": ("使用性质", "use type", "usage"),
    "previous_policy_number": (
        "上年保单号",
        "上年保单号码",
        "previous policy number",
        "previous policy no",
        "last year policy number",
    ),
    "policyholder": ("投保人", "投保人名称", "投保人姓名", "policyholder", "applicant"),
    "policyholder_phone": (
        "投保人联系电话",
        "投保人电话",
        "policyholder phone",
        "applicant phone",
    ),
    "insured": ("被保险人", "被保险人名称", "被保险人姓名", "insured", "insured name"),
    "insured_phone": ("被保险人联系电话", "被保险人电话", "insured phone"),
    "address": ("通信地址", "联系地址", "地址", "address", "mailing address"),
    "start_date": ("起保日期", "保险起期", "start date", "effective date"),
    "expiry_date": (
        "终保日期",
        "到期日期",
        "保险止期",
        "expiry date",
        "expiry",
        "end date",
        "expiration date",
    ),
    "handler": ("经办人", "handler"),
    "business_category": ("业务类别", "业务来源", "business category", "category"),
    "branch": ("机构", "机构名称", "归属机构", "branch"),
    "branch_code": ("机构代码", "branch code"),
    "branch_email": ("机构邮箱", "branch email", "branch e-mail"),
    "fleet": ("车队", "车队名称", "fleet"),
    "premium": ("保费", "签单保费", "premium"),
    "renewed": ("已续保", "是否续保", "续保状态", "renewed"),
}
REQUIRED = ("policy_number", "expiry_date", "policyholder")
PHONE_FIELDS = ("policyholder_phone", "insured_phone")
# How far down a title block may push the header row.
HEADER_SEARCH_ROWS = 10
CHUNK = 1 << 20


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

_HEADER_JUNK = re.compile(r"[\s_\-./()（）:：*'\"\ufeff]+")
_DATE = re.compile(
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
)
_DATE_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_EXCEL_EPOCH = date(1899, 12, 30)
_YES = {"是", "y", "yes", "true", "1", "√", "✓", "已续保", "已", "fleet", "车队"}
_NO = {"", "否", "n", "no", "false", "0", "×", "未续保", "未", "-", "无"}
_BRANCH_CODE = re.compile(r"^([0-9A-Za-z]{2,20})[\s\-_]+(\S.*)$")


def header_key(text: str) -> str:
    return _HEADER_JUNK.sub("", text).lower()


# --------------------------------------------------------------------------- mapping


@dataclass(frozen=True, slots=True)
class Mapping:
    """Header aliases per field, plus extra date formats (strptime) and a fixed header row."""

    columns: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(ALIASES))
    date_formats: tuple[str, ...] = ()
    header_row: int | None = None


def load_mapping(path: Path | None) -> Mapping:
    """The built-in aliases, extended by a mapping file (its names are tried first).

    The file (TOML)::

        header_row = 3                  # optional: where the header is (1 = first line)
        date_formats = ["%d/%m/%Y"]     # optional: tried after the built-in formats
        [columns]
        policy_number = "Pol. No."
        expiry_date = ["Valid until", "Expires"]
    """
    if path is None:
        return Mapping()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError as exc:
        raise ImportInputError(f"mapping file {path} does not exist") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ImportInputError(f"mapping file {path} is not valid TOML: {exc}") from exc
    columns = dict(ALIASES)
    given = data.get("columns", {})
    if not isinstance(given, dict):
        raise ImportInputError(f"mapping file {path}: [columns] must be a table")
    for name, headers in given.items():
        if name not in ALIASES:
            raise ImportInputError(
                f"mapping file {path}: unknown field {name!r}; known fields: " + ", ".join(ALIASES)
            )
        if isinstance(headers, str):
            headers = [headers]
        if not isinstance(headers, list) or not all(isinstance(h, str) for h in headers):
            raise ImportInputError(
                f"mapping file {path}: {name} must be a header name or a list of them"
            )
        columns[name] = (*headers, *ALIASES[name])
    formats = data.get("date_formats", [])
    if isinstance(formats, str):
        formats = [formats]
    header_row = data.get("header_row")
    if header_row is not None and (not isinstance(header_row, int) or header_row < 1):
        raise ImportInputError(f"mapping file {path}: header_row must be a positive integer")
    return Mapping(columns=columns, date_formats=tuple(formats), header_row=header_row)


# --------------------------------------------------------------------------- files


@dataclass
class SourceTable:
    """An opened input file: format, encoding and the rows as lists of cells."""

    path: Path
    format: str  # "csv" | "xlsx"
    encoding: str | None
    sha256: str
    estimated_rows: int | None = None

    def rows(self) -> Iterator[tuple[int, list[Cell]]]:
        """(row number as a spreadsheet shows it, cells), blank rows included."""
        if self.format == "xlsx":
            yield from _xlsx_rows(self.path)
            return
        assert self.encoding is not None
        with self.path.open("r", encoding=self.encoding, newline="") as fh:
            first = fh.readline()
            fh.seek(0)
            reader = csv.reader(fh, delimiter=_sniff_delimiter(first))
            for number, cells in enumerate(reader, start=1):
                yield number, list(cells)


def _sniff_delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in (",", "\t", ";")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[Cell]]]:
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=True)
    try:
        ws = wb.active
        if ws is None:
            return
        for number, values in enumerate(ws.iter_rows(values_only=True), start=1):
            yield number, [v if not isinstance(v, bool) else str(v) for v in values]  # type: ignore[misc]
    finally:
        wb.close()


def open_table(path: Path) -> SourceTable:
    """Open a CSV or XLSX file for streaming; raise ImportInputError if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise ImportInputError(f"{path}: no such file")
    with path.open("rb") as fh:
        head = fh.read(8)
    if not head:
        raise ImportInputError(f"{path}: the file is empty")
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportInputError(
            f"{path}: an old Excel .xls workbook; save it as .xlsx or CSV and import that"
        )
    if head.startswith(b"PK\x03\x04"):
        return _open_xlsx(path)
    encoding, digest = detect_encoding(path)
    return SourceTable(path, "csv", encoding, digest)


def _open_xlsx(path: Path) -> SourceTable:
    from zipfile import BadZipFile

    from openpyxl import load_workbook

    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ImportInputError(f"{path}: not a readable XLSX workbook ({exc})") from exc
    try:
        ws = wb.active
        estimated = ws.max_row if ws is not None else None
    finally:
        wb.close()
    return SourceTable(path, "xlsx", None, digest.hexdigest(), estimated)


def detect_encoding(path: Path) -> tuple[str, str]:
    """(encoding, sha256) of a CSV file: UTF-8 (with or without BOM) or GB18030.

    The whole file is decoded strictly before anything is imported, so an undecodable byte at
    row 90,000 stops the import before row 1 is written.
    """
    digest = hashlib.sha256()
    utf8 = codecs.getincrementaldecoder("utf-8")("strict")
    utf8_error: UnicodeDecodeError | None = None
    offset = 0
    with path.open("rb") as fh:
        first = True
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            if first and chunk.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise ImportInputError(
                    f"{path}: UTF-16 text is not supported; save as CSV UTF-8 or GB18030"
                )
            if b"\x00" in chunk:
                raise ImportInputError(f"{path}: not a text file (it contains NUL bytes)")
            first = False
            if utf8_error is None:
                try:
                    utf8.decode(chunk)
                except UnicodeDecodeError as exc:
                    utf8_error = exc
                    utf8_error.start += offset
            offset += len(chunk)
        if utf8_error is None:
            try:
                utf8.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                utf8_error = exc
    if utf8_error is None:
        with path.open("rb") as fh:
            bom = fh.read(3) == codecs.BOM_UTF8
        return ("utf-8-sig" if bom else "utf-8"), digest.hexdigest()
    gb = codecs.getincrementaldecoder("gb18030")("strict")
    offset = 0
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                gb.decode(chunk)
                offset += len(chunk)
            gb.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise ImportInputError(
            f"{path}: unreadable encoding: neither UTF-8 (bad byte at offset "
            f"{utf8_error.start}) nor GB18030 (bad byte at offset {offset + exc.start}); "
            "save the file as CSV UTF-8 or as XLSX"
        ) from exc
    return "gb18030", digest.hexdigest()


# --------------------------------------------------------------------------- records


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


def customer_match_key(
    name: str, phones: Sequence[ParsedPhone], address: str | None, policy_number: str
) -> str:
    """The identity a customer is merged on across rows and imports: name + best number.

    A name alone would merge every 张伟; without any number the address stands in, and
    without that the customer stays tied to this one policy.
    """
    name = " ".join(name.split())
    best = next((p.e164 for p in phones if p.valid and p.e164), None)
    if best is None and phones:
        best = "raw:" + "".join(ch for ch in phones[0].raw if ch.isdigit())
    if best:
        key = f"{name}|tel:{best}"
    elif address:
        key = f"{name}|addr:{' '.join(address.split())}"
    else:
        key = f"{name}|policy:{policy_number}"
    return key[:300]


class HasExpiry(Protocol):
    @property
    def expiry_date(self) -> date: ...


def initial_status(kind: LeadKind | str) -> LeadStatus:
    """The status of a freshly imported lead. A post-underwriting callback list is the
    automatic callback campaign's work from the day of its import (node 8: called from its
    first calling window on; nothing is handed out): `due`. Every other kind waits, `new`,
    for the timeline to make it due and the distribution to hand it to a specialist."""
    return LeadStatus.DUE if LeadKind(kind) is LeadKind.CALLBACK else LeadStatus.NEW


def initial_due_on(
    kind: LeadKind | str,
    policy: HasExpiry,
    today: date,
    rules: TimelineRules = TimelineRules(),  # noqa: B008 (frozen: shared safely)
) -> date:
    """The day a freshly imported lead becomes work, by the desk's timeline rules.

    renewal: expiry − 25 days; trial-member conversion: a month before expiry (by default);
    lapsed and post-underwriting callback: the day of the import.
    """
    kind = LeadKind(kind)
    if kind in (LeadKind.RENEWAL, LeadKind.TRIAL):
        # One rule for the whole desk: the timeline's (schedules.timeline.due_day), with the
        # rules the timeline job runs with (DeskCalendar.rules), not the defaults.
        return due_day(kind.value, policy.expiry_date, rules)
    return today


def _text(cell: Cell) -> str:
    if cell is None:
        return ""
    if type(cell) is str:
        return clean_cell(cell)
    if isinstance(cell, float) and cell.is_integer():
        # Numbers typed into Excel (policy numbers, phones) come back as floats.
        return str(int(cell))
    if isinstance(cell, datetime):
        return cell.isoformat(sep=" ")
    return clean_cell(str(cell))


@lru_cache(maxsize=4096)
def _parse_date_text(text: str, formats: tuple[str, ...]) -> date | None:
    m = _DATE.match(text) or _DATE_COMPACT.match(text)
    if m:
        try:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            return None
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def parse_date(cell: Cell, formats: tuple[str, ...] = ()) -> date | None:
    """A date from a cell, or None if the cell is not one (blank cells are handled by callers)."""
    if isinstance(cell, datetime):
        return cell.date()
    if isinstance(cell, date):
        return cell
    if isinstance(cell, int | float) and 20000 <= cell <= 80000:
        return _EXCEL_EPOCH + timedelta(days=int(cell))  # an Excel serial day
    return _parse_date_text(_text(cell), formats)


def parse_flag(text: str) -> bool | None:
    key = text.strip().lower()
    if key in _YES:
        return True
    if key in _NO:
        return False
    return None


def parse_premium(text: str) -> Decimal | None:
    cleaned = text.replace(",", "").replace("¥", "").replace("￥", "").replace("元", "").strip()
    try:
        value = Decimal(cleaned)
        return value.quantize(Decimal("0.01")) if value.is_finite() else None
    except InvalidOperation:
        return None


def split_branch(text: str) -> tuple[str, str]:
    """'1301 石家庄分公司' -> ('1301', '石家庄分公司'); a bare name is its own code."""
    m = _BRANCH_CODE.match(text)
    if m:
        return m.group(1), m.group(2).strip()
    return text, text


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
            texts = [_text(c) for c in cells]
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
        errors: list[RowError] = []
        columns = self.columns
        if texts is None:
            texts = [_text(c) for c in cells]
        width = len(cells)

        def cell(name: str) -> Cell:
            index = columns.get(name)
            return cells[index] if index is not None and index < width else None

        def plain(name: str) -> str:
            index = columns.get(name)
            return texts[index] if index is not None and index < width else ""

        def text(name: str) -> str | None:
            value = plain(name)
            if not value:
                return None
            limit = MAX_LENGTH.get(name)
            if limit is not None and len(value) > limit:
                errors.append(
                    RowError(number, self.header_of(name), value, f"longer than {limit} characters")
                )
            return value

        def day(name: str) -> date | None:
            value = plain(name)
            if not value:
                return None
            raw = cell(name)
            parsed = parse_date(value if isinstance(raw, str) else raw, self.mapping.date_formats)
            if parsed is None:
                errors.append(RowError(number, self.header_of(name), value, "not a date"))
            return parsed

        def email(name: str) -> str | None:
            value = text(name)
            if value is None:
                return None
            try:
                return email_address(value)
            except ValueError as exc:
                # A header injection (CR/LF) or a typo here would stop the branch's daily
                # mail: refused now, with the row, instead of failing every night.
                errors.append(RowError(number, self.header_of(name), value, str(exc)))
                return None

        def phones(name: str) -> tuple[ParsedPhone, ...]:
            out = []
            for raw in split_numbers(plain(name)):
                if len(raw) > PHONE_RAW_MAX:
                    errors.append(
                        RowError(number, self.header_of(name), raw, "phone number text too long")
                    )
                    continue
                out.append(parse_phone(raw))
            return tuple(out)

        policy_number = text("policy_number")
        if policy_number is None:
            errors.append(RowError(number, self.header_of("policy_number"), "", "no policy number"))
        expiry = day("expiry_date")
        if expiry is None and not plain("expiry_date"):
            errors.append(RowError(number, self.header_of("expiry_date"), "", "no expiry date"))
        start = day("start_date")
        if start is not None and expiry is not None and expiry < start:
            errors.append(
                RowError(
                    number,
                    self.header_of("expiry_date"),
                    expiry.isoformat(),
                    f"expiry date before the start date {start.isoformat()}",
                )
            )
        insured = text("insured")
        policyholder = text("policyholder") or insured
        if policyholder is None:
            errors.append(
                RowError(number, self.header_of("policyholder"), "", "no policyholder name")
            )
        premium: Decimal | None = None
        premium_text = plain("premium")
        if premium_text:
            premium = parse_premium(premium_text)
            if premium is None or premium < 0 or premium >= MAX_PREMIUM:
                errors.append(
                    RowError(number, self.header_of("premium"), premium_text, "not a premium")
                )
                premium = None
        fleet_text = plain("fleet")
        # A fleet column holds a flag or the fleet's name; any name means "fleet".
        is_fleet = parse_flag(fleet_text) if fleet_text else False
        if is_fleet is None:
            is_fleet = True
        renewed_text = plain("renewed")
        renewed = parse_flag(renewed_text) if renewed_text else False
        if renewed is None:
            errors.append(
                RowError(number, self.header_of("renewed"), renewed_text, "not yes/no (是/否)")
            )
        branch_text = text("branch")
        branch_code = text("branch_code")
        branch_name: str | None = None
        if branch_text:
            code, branch_name = split_branch(branch_text)
            branch_code = branch_code or code
        elif branch_code:
            branch_name = branch_code
        policyholder_phones = phones("policyholder_phone")
        insured_phones = phones("insured_phone")
        plate = text("plate_number")
        record_fields = {
            "make_model": text("make_model"),
            "use_type": text("use_type"),
            "previous_policy_number": text("previous_policy_number"),
            "address": text("address"),
            "handler": text("handler"),
            "business_category": text("business_category"),
            "branch_email": email("branch_email"),
        }
        if errors or policy_number is None or expiry is None or policyholder is None:
            return RowRejected(number, tuple(errors))
        return PolicyRecord(
            row=number,
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
            is_fleet=bool(is_fleet),
            premium=premium,
            renewed=bool(renewed),
            **record_fields,
        )


def resolve_columns(header: Sequence[str], mapping: Mapping) -> dict[str, int]:
    keys = [header_key(h) for h in header]
    columns: dict[str, int] = {}
    for name, aliases in mapping.columns.items():
        for alias in aliases:
            wanted = header_key(alias)
            if wanted in keys:
                index = keys.index(wanted)
                if index not in columns.values():
                    columns[name] = index
                    break
    return columns


def prepare(path: Path, mapping: Mapping | None = None) -> PreparedImport:
    """Open `path`, find and map its header, check there is data; raise ImportInputError if not."""
    mapping = mapping or Mapping()
    table = open_table(path)
    rows = table.rows()
    looked_at: list[tuple[int, list[Cell]]] = []
    chosen: tuple[int, list[str], dict[str, int]] | None = None
    try:
        for number, cells in rows:
            header = [_text(c) for c in cells]
            if not any(header):
                continue
            looked_at.append((number, cells))
            if mapping.header_row is not None:
                if number < mapping.header_row:
                    continue
                chosen = (number, header, resolve_columns(header, mapping))
                break
            columns = resolve_columns(header, mapping)
            if "policy_number" in columns:
                chosen = (number, header, columns)
                break
            if len(looked_at) >= HEADER_SEARCH_ROWS:
                break
    except (csv.Error, UnicodeDecodeError, OSError) as exc:
        raise ImportInputError(f"{path}: cannot read the file: {exc}") from exc
    if not looked_at:
        raise ImportInputError(f"{path}: the file is empty (no header row)")
    if chosen is None:
        number, cells = looked_at[0]
        header = [_text(c) for c in cells]
        chosen = (number, header, resolve_columns(header, mapping))
    header_row, header, columns = chosen
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
    first_data: list[tuple[int, list[Cell]]] = []
    for number, cells in rows:
        if any(_text(c) for c in cells):
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
