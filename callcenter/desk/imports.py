"""Imports started from the desk page: the upload is saved, checked (a file that cannot be
imported is refused before anything is written), then imported in the background by the one
importer (`crm_sync.services.import_file`) while the page polls its progress. The rejected
rows come back as a workbook: the file's own header and cells, plus a reason column, so the
maintainer fixes the rows and imports that workbook again."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.pages.i18n import N_
from common.clock import Clock
from crm_sync.exceptions import ImportInputError
from crm_sync.import_report import ImportSummary
from crm_sync.importer import Cell, PreparedImport, RowError, open_table, prepare
from crm_sync.models import LeadKind
from crm_sync.services import BATCH_SIZE, import_file
from crm_sync.spreadsheets import append_rows
from schedules.timeline import TimelineRules

log = logging.getLogger(__name__)

KEPT_JOBS = 20  # finished imports remembered for the page (their files stay on disk)
REASON_HEADER = "错误原因"
# The importer's fixed reasons, worded in the person's language on the page and in the workbook
# (a reason with figures in it stays as the importer wrote it).
REASONS = (
    N_("not a date"),
    N_("no policy number"),
    N_("no expiry date"),
    N_("no policyholder name"),
    N_("not a premium"),
    N_("not yes/no (是/否)"),
    N_("phone number text too long"),
)
_UNSAFE_NAME = re.compile(r"[^\w.\-]+")


@dataclass
class ImportJob:
    id: int
    file_name: str  # as uploaded, for people
    path: Path  # where the upload was saved
    kind: str
    total: int | None  # rows expected (an estimate), for the progress bar
    started_at: datetime
    done: int = 0
    state: str = "running"  # running | done | failed
    error: str | None = None
    summary: ImportSummary | None = None
    errors: list[RowError] = field(default_factory=list)

    def view(self, translate: Callable[[str], str], limit: int = 200) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "file_name": self.file_name,
            "kind": self.kind,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "error": self.error,
        }
        if self.summary is not None:
            s = self.summary
            out["report"] = {
                "read": s.read,
                "imported": s.imported,
                "updated": s.updated,
                "skipped": sum(s.skipped.values()),
                "rejected": s.rejected,
                "rejected_rows": len({e.row for e in self.errors}),
                "errors": [
                    {
                        "row": e.row,
                        "column": e.column,
                        "value": e.value,
                        "reason": translate(e.reason),
                    }
                    for e in self.errors[:limit]
                ],
                "errors_shown": min(limit, len(self.errors)),
                "errors_total": len(self.errors),
                "seconds": round(s.seconds, 1),
            }
        return out


def safe_name(name: str) -> str:
    """A file name of ours for an uploaded one (never a path the browser chose)."""
    base = _UNSAFE_NAME.sub("_", Path(name).name).strip("._") or "upload"
    return base[-100:]


def count_rows(prepared: PreparedImport) -> int | None:
    """The rows to expect: the workbook's own count, or a CSV's lines (a fast pass)."""
    table = prepared.table
    if table.estimated_rows is not None:
        return max(0, table.estimated_rows - prepared.header_row)
    with table.path.open("rb") as fh:
        lines = sum(1 for _ in fh)
    return max(0, lines - prepared.header_row)


def rejected_rows_workbook(
    path: Path, errors: Sequence[RowError], translate: Callable[[str], str]
) -> bytes:
    """The rejected rows of `path` as an XLSX: the file's header row and each rejected row's
    own cells, plus a reason column (column: reason, for every problem of the row)."""
    from openpyxl import Workbook

    prepared = prepare(path)
    reasons: dict[int, list[str]] = {}
    for e in errors:
        reasons.setdefault(e.row, []).append(f"{e.column}：{translate(e.reason)}")
    width = len(prepared.header)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("rejected")
    append_rows(ws, [[*prepared.header, REASON_HEADER]])
    wanted = sorted(reasons)
    rows = (
        [*_cells(cells, width), "；".join(reasons[n])] for n, cells in _rows_numbered(path, wanted)
    )
    append_rows(ws, rows)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _rows_numbered(path: Path, wanted: Sequence[int]) -> list[tuple[int, list[Cell]]]:
    keep = set(wanted)
    found = []
    last = max(keep) if keep else 0
    for number, cells in open_table(path).rows():
        if number in keep:
            found.append((number, cells))
        if number >= last:
            break
    return found


def _cells(cells: list[Cell], width: int) -> list[Cell]:
    return list(itertools.islice(itertools.chain(cells, itertools.repeat(None)), width))


class DeskImports:
    """The imports the desk page started; each runs as a task this object owns (stopped with
    the service)."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        folder: Path,
        tz: str,
        rules: TimelineRules,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.engine = engine
        self.batch_size = batch_size  # rows per database round: the progress bar's step
        self.clock = clock
        self.folder = folder
        self.tz = tz
        self.rules = rules
        self.jobs: dict[int, ImportJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)

    def new_path(self, file_name: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = self.clock.now().strftime("%Y%m%d-%H%M%S")
        return self.folder / f"{stamp}-{next(self._ids)}-{safe_name(file_name)}"

    async def start(self, path: Path, file_name: str, kind: str) -> ImportJob:
        """Check the file (ImportInputError: nothing written, the reason says what to fix),
        then import it in the background."""
        kind = LeadKind(kind).value
        prepared = await asyncio.to_thread(prepare, path)
        total = await asyncio.to_thread(count_rows, prepared)
        job = ImportJob(next(self._ids), file_name, path, kind, total, self.clock.now())
        self.jobs[job.id] = job
        for old in sorted(self.jobs)[:-KEPT_JOBS]:
            if self.jobs[old].state != "running":
                del self.jobs[old]
        task = asyncio.create_task(self._run(job, prepared), name=f"desk-import-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job: ImportJob, prepared: PreparedImport) -> None:
        def progress(rows: int) -> None:
            job.done += rows

        now = self.clock.now()
        try:
            summary = await import_file(
                self.engine,
                job.path,
                job.kind,
                now=now,
                today=now.astimezone(ZoneInfo(self.tz)).date(),
                progress=progress,
                batch_size=self.batch_size,
                prepared=prepared,
                clock=self.clock,
                rules=self.rules,
            )
        except ImportInputError as exc:
            job.state, job.error = "failed", str(exc)
            log.warning("desk import %s refused: %s", job.id, exc)
            return
        except Exception as exc:
            job.state, job.error = "failed", f"the import failed and nothing was written: {exc}"
            log.exception("desk import %s failed", job.id)
            return
        job.summary, job.errors, job.state = summary, list(summary.errors), "done"
        log.info(
            "desk import %s: %d read, %d imported, %d updated, %d rejected",
            job.id,
            summary.read,
            summary.imported,
            summary.updated,
            summary.rejected,
        )

    async def wait(self) -> None:
        """Until every import started has finished (tests)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
