"""`callcenter import FILE --kind renewal|lapsed|trial|callback [--mapping MAP.toml] [--json]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from callcenter.bootstrap import bootstrap
from callcenter.database import SchemaOutOfDate
from crm_sync.exceptions import ImportInputError
from crm_sync.import_mapping import load_mapping
from crm_sync.import_report import ImportSummary
from crm_sync.importer import prepare
from crm_sync.models import LeadKind
from crm_sync.services import import_file
from schedules.config import DeskCalendar

SHOWN_ERRORS = 10


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "import",
        help="import a core-system export (CSV or XLSX) as leads",
        description=(
            "Import policies and leads from a CSV (UTF-8, UTF-8 with BOM or GB18030) or XLSX "
            "file. Bad rows go to FILE.errors.csv; numbers to look up to "
            "FILE.phones-to-look-up.<branch>.csv. Exit codes: 0 imported (see 'rejected'), "
            "1 failure, 2 the file cannot be imported (nothing written)."
        ),
    )
    p.add_argument("file", type=Path, help="the exported list (.csv or .xlsx)")
    p.add_argument(
        "--kind",
        required=True,
        choices=[k.value for k in LeadKind],
        help="what the leads are for: renewal (续保), lapsed (脱保), trial (体验会员), "
        "callback (承保回访)",
    )
    p.add_argument("--mapping", type=Path, help="TOML file naming the columns of other layouts")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--batch-size", type=int, default=1000, help="rows per database round (default 1000)"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        prepared = prepare(args.file, load_mapping(args.mapping))
    except ImportInputError as exc:
        return _bad_input(args, exc)
    try:
        summary = asyncio.run(_import(args, prepared))
    except ImportInputError as exc:
        return _bad_input(args, exc)
    except SchemaOutOfDate as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(format_summary(summary))
    return 0


def _bad_input(args: argparse.Namespace, exc: ImportInputError) -> int:
    if args.json:
        print(json.dumps({"error": str(exc), "file": str(args.file)}, ensure_ascii=False))
    print(f"error: {exc}", file=sys.stderr)
    print("nothing was imported.", file=sys.stderr)
    return 2


async def _import(args: argparse.Namespace, prepared: Any) -> ImportSummary:
    from tqdm import tqdm

    container = await bootstrap()
    try:
        now = container.clock.now()
        today = now.astimezone(ZoneInfo(container.settings.timezone)).date()
        with tqdm(
            total=prepared.table.estimated_rows,
            unit=" rows",
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
            desc=Path(args.file).name,
        ) as bar:
            return await import_file(
                container.engine,
                args.file,
                args.kind,
                now=now,
                today=today,
                batch_size=args.batch_size,
                progress=bar.update,
                prepared=prepared,
                clock=container.clock,
                rules=DeskCalendar.from_settings(container.settings).rules,
            )
    finally:
        await container.close()


def format_summary(s: ImportSummary) -> str:
    encoding = f", {s.encoding}" if s.encoding else ""
    lines = [
        f"import of {s.file} ({s.format}{encoding}) as {s.kind} leads, run #{s.import_run_id}"
        f" in {s.seconds:.1f} s",
        f"  read      {s.read:>8}",
        f"  imported  {s.imported:>8}",
        f"  updated   {s.updated:>8}",
        f"  skipped   {sum(s.skipped.values()):>8}"
        + (
            "  (" + ", ".join(f"{k} {v}" for k, v in sorted(s.skipped.items())) + ")"
            if s.skipped
            else ""
        ),
        f"  rejected  {s.rejected:>8}" + (f"  -> {s.errors_file}" if s.errors_file else ""),
    ]
    for e in s.errors[:SHOWN_ERRORS]:
        value = f" ({e.value!r})" if e.value else ""
        lines.append(f"    row {e.row}, {e.column}: {e.reason}{value}")
    if len(s.errors) > SHOWN_ERRORS:
        lines.append(f"    … {len(s.errors) - SHOWN_ERRORS} more in the error file")
    if s.lookup:
        lines.append(
            "  phones to look up: "
            + ", ".join(f"{branch} {n}" for branch, n in sorted(s.lookup.items()))
        )
        lines.extend(f"    {path}" for path in s.lookup_files)
    return "\n".join(lines)


__all__ = ["format_summary", "register"]
