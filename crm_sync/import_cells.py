"""Reading one cell of an export: text, dates, yes/no flags, premiums, branch names (pure)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from crm_sync.phones import clean_cell

Cell = str | int | float | date | datetime | None

_DATE = re.compile(
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
)
_DATE_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_EXCEL_EPOCH = date(1899, 12, 30)
_YES = {"是", "y", "yes", "true", "1", "√", "✓", "已续保", "已", "fleet", "车队"}
_NO = {"", "否", "n", "no", "false", "0", "×", "未续保", "未", "-", "无"}
_BRANCH_CODE = re.compile(r"^([0-9A-Za-z]{2,20})[\s\-_]+(\S.*)$")


def cell_text(cell: Cell) -> str:
    """The cell as the text a person sees in it (Excel's numbers without a trailing .0)."""
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
    return _parse_date_text(cell_text(cell), formats)


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
