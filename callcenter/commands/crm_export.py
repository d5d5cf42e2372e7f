"""`callcenter crm-export [--day YYYY-MM-DD] [--format xlsx csv]`: the day's contact results,
sales and inaccurate numbers as a CRM-import spreadsheet (docs/crm.md#spreadsheet-sink)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from callcenter.bootstrap import bootstrap
from crm_sync.export import HandOverFailed, export_day
from crm_sync.wiring import upload_files


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("crm-export", help="write the day's results as a CRM-import spreadsheet")
    p.add_argument("--day", type=date.fromisoformat, help="local day (default: today)")
    p.add_argument(
        "--format", nargs="+", choices=("xlsx", "csv"), help="default: crm.export_formats"
    )
    p.add_argument("--dir", type=Path, help="default: crm.export_dir or <data_dir>/crm-export")
    p.add_argument(
        "--upload",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also hand the files to crm.webhook_url (default: crm.export_upload)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    async def run() -> int:
        container = await bootstrap()
        try:
            settings = container.settings
            tz = ZoneInfo(settings.timezone)
            day = args.day or container.clock.now().astimezone(tz).date()
            folder = args.dir or settings.crm.export_dir or settings.data_dir / "crm-export"
            written = await export_day(
                container.sessions,
                day,
                tz,
                folder,
                args.format or settings.crm.export_formats,
                settings.crm.export_csv_encoding,
            )
            for path in written:
                print(path)
            upload = settings.crm.export_upload if args.upload is None else args.upload
            if upload:
                await upload_files(settings.crm, container.clock, written)
                print(f"handed to {settings.crm.webhook_url}")
        except (HandOverFailed, ValueError) as exc:
            print(f"crm-export: {exc}", file=sys.stderr)
            return 1
        finally:
            await container.close()
        return 0

    return asyncio.run(run())
