"""What an import reports: its summary, its rejected rows and the numbers branches must look up.

The summary is stored with the import run and printed by the command and the desk page; the
two kinds of CSV beside the input (`<input>.errors.csv`, one
`<input>.phones-to-look-up.<branch>.csv` per branch) are written after the import commits.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm_sync.import_records import RowError
from crm_sync.spreadsheets import SafeCsvWriter

SUMMARY_ERROR_LIMIT = 100


@dataclass(frozen=True, slots=True)
class LookupEntry:
    """A number that cannot be dialled, for the branch to look up (查号)."""

    branch: str
    policy_number: str
    plate_number: str
    customer: str
    role: str
    raw: str
    reason: str


@dataclass
class ImportSummary:
    file: str
    kind: str
    format: str = ""
    encoding: str | None = None
    read: int = 0
    imported: int = 0
    updated: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    errors: list[RowError] = field(default_factory=list)
    errors_file: str | None = None
    lookup: Counter[str] = field(default_factory=Counter)
    lookup_files: list[str] = field(default_factory=list)
    import_run_id: int | None = None
    seconds: float = 0.0

    def to_dict(self, error_limit: int = SUMMARY_ERROR_LIMIT) -> dict[str, Any]:
        return {
            "file": self.file,
            "kind": self.kind,
            "format": self.format,
            "encoding": self.encoding,
            "read": self.read,
            "imported": self.imported,
            "updated": self.updated,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_total": sum(self.skipped.values()),
            "rejected": self.rejected,
            "errors": [
                {"row": e.row, "column": e.column, "value": e.value, "reason": e.reason}
                for e in self.errors[:error_limit]
            ],
            "errors_truncated": len(self.errors) > error_limit,
            "errors_file": self.errors_file,
            "phones_to_look_up": dict(sorted(self.lookup.items())),
            "phones_to_look_up_files": self.lookup_files,
            "import_run_id": self.import_run_id,
            "seconds": round(self.seconds, 3),
        }


def errors_path(source: Path) -> Path:
    return source.with_name(source.name + ".errors.csv")


def lookup_path(source: Path, branch: str) -> Path:
    safe = re.sub(r"[^\w\-]+", "_", branch or "no-branch")
    return source.with_name(f"{source.name}.phones-to-look-up.{safe}.csv")


def write_error_file(source: Path, errors: Sequence[RowError]) -> Path | None:
    """`<input>.errors.csv` (UTF-8 with BOM, so Excel opens it); a stale one is removed."""
    path = errors_path(source)
    if not errors:
        path.unlink(missing_ok=True)
        return None
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        out = SafeCsvWriter(fh)
        out.writerow(["row", "column", "value", "reason"])
        for e in errors:
            out.writerow([e.row, e.column, e.value, e.reason])
    return path


def write_lookup_files(source: Path, entries: Sequence[LookupEntry]) -> list[Path]:
    """One `<input>.phones-to-look-up.<branch>.csv` per branch; stale ones are removed."""
    for old in source.parent.glob(f"{source.name}.phones-to-look-up.*.csv"):
        old.unlink()
    by_branch: dict[str, list[LookupEntry]] = {}
    for e in entries:
        by_branch.setdefault(e.branch, []).append(e)
    written: list[Path] = []
    for branch, rows in sorted(by_branch.items()):
        path = lookup_path(source, branch)
        with path.open("w", encoding="utf-8-sig", newline="") as fh:
            out = SafeCsvWriter(fh)
            out.writerow(
                ["branch", "policy_number", "plate_number", "customer", "role", "number", "reason"]
            )
            for e in rows:
                out.writerow(
                    [e.branch, e.policy_number, e.plate_number, e.customer, e.role, e.raw, e.reason]
                )
        written.append(path)
    return written
