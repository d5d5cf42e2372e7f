"""Opening an export: CSV (UTF-8, UTF-8 with BOM, GB18030, detected) or XLSX (streamed).

open_table(path)            a SourceTable whose rows() yields (row number, cells)
detect_encoding(path)       the CSV's encoding, decided before anything is imported
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from crm_sync.exceptions import ImportInputError
from crm_sync.import_cells import Cell

CHUNK = 1 << 20


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
