"""Every CSV and XLSX file the service writes for people to open goes through here.

A spreadsheet program runs a cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage
return as a formula (CSV injection: `=HYPERLINK(...)`, `=cmd|...`), and the values in these
files come from outside: customer names and numbers from the core system, cells of a rejected
import row. OWASP's rule is applied to every such text cell: a single quote is put in front, so
the program shows it as text, and in CSV every cell is quoted as well.

The rule also catches values that are harmless, above all phone numbers in E.164 form
(`+8613800138000` is written `'+8613800138000`) and negative amounts; a person sees the
leading quote only in a text editor. Our own importer removes the guard again
(`unguard_cell`, used by `crm_sync.phones.clean_cell`), so a file of ours read back, or a
demo export, imports exactly as before.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
GUARD = "'"


class _Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


def guard_cell(value: object) -> object:
    """The value to write: a text a spreadsheet would run as a formula gets the guard quote;
    anything else (numbers, dates, None, plain text) is left as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return GUARD + value
    return value


def guard_row(row: Iterable[object]) -> list[object]:
    return [guard_cell(v) for v in row]


def unguard_cell(text: str) -> str:
    """The inverse of `guard_cell` for a text read back: only a quote that guards a formula
    start is removed, so a name like `'t Hooft` stays as written."""
    if text.startswith(GUARD) and text[1:2] != "" and text[1] in FORMULA_STARTS:
        return text[1:]
    return text


class SafeCsvWriter:
    """`csv.writer` for files people open: every cell quoted, formula starts guarded."""

    def __init__(self, fh: _Writable) -> None:
        self._out = csv.writer(fh, quoting=csv.QUOTE_ALL)

    def writerow(self, row: Sequence[object]) -> None:
        self._out.writerow(guard_row(row))

    def writerows(self, rows: Iterable[Sequence[object]]) -> None:
        for row in rows:
            self.writerow(row)


def append_rows(sheet: Any, rows: Iterable[Sequence[object]]) -> None:
    """Append rows to an openpyxl worksheet with formula starts guarded (openpyxl would
    otherwise store a text that begins with `=` as a formula)."""
    for row in rows:
        sheet.append(guard_row(row))


__all__ = [
    "FORMULA_STARTS",
    "SafeCsvWriter",
    "append_rows",
    "guard_cell",
    "guard_row",
    "unguard_cell",
]
