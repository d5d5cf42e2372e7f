"""`callcenter recordings check|retention|ingest` — integrity, retention, manual ingest."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from callcenter.bootstrap import Container, bootstrap
from callcenter.service import recordings_for
from recordings.ingest import RecordingJob
from recordings.integrity import UNLINKED_ADVICE
from recordings.models import Recording
from recordings.wiring import Recordings
from schedules.config import DeskCalendar


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("recordings", help="call recordings: integrity check, retention, ingest")
    rsub = p.add_subparsers(dest="recordings_command", required=True)
    c = rsub.add_parser(
        "check",
        help="answered calls without audio, recordings without a call, header-only files, "
        "orphan files, files in the monitor folder that belong to no call, checksum mismatches "
        "(exit 1 when anything is found)",
    )
    c.add_argument("--json", action="store_true", help="machine-readable report")
    c.add_argument("--no-checksums", action="store_true", help="skip re-reading every file")
    c.set_defaults(func=_check)
    r = rsub.add_parser(
        "retention", help="delete recordings older than recordings.retention_days (not kept ones)"
    )
    r.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_retention)
    i = rsub.add_parser("ingest", help="ingest one WAV from the monitor folder by hand")
    i.add_argument("file", help="file name (looked up in the monitor folder)")
    i.add_argument("--attempt", required=True, help="attempt id")
    i.add_argument("--lead", type=int, help="lead id")
    i.add_argument("--specialist", type=int, help="specialist id")
    i.add_argument("--outcome", default="answered")
    i.set_defaults(func=_ingest)


def _run(work: Callable[[Container, Recordings], Awaitable[int]]) -> int:
    async def run() -> int:
        container = await bootstrap()
        rec = recordings_for(container, DeskCalendar.from_settings(container.settings))
        try:
            return await work(container, rec)
        finally:
            await container.close()

    return asyncio.run(run())


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _check(args: argparse.Namespace) -> int:
    async def work(_c: Container, rec: Recordings) -> int:
        report = await rec.service.check(verify_checksums=not args.no_checksums)
        if args.json:
            _print_json(report.as_dict())
            return 0 if report.ok else 1
        sections: dict[str, list[Any]] = {
            "answered calls without a recording": report.answered_without_recording,
            "recordings without a call": report.recordings_without_call,
            "answered calls with a header-only file": report.header_only,
            "checksum mismatches / missing files": report.checksum_mismatches,
            "orphan files in the store": report.orphan_files,
            "pending for over an hour": report.stale_pending,
            "files in the monitor folder that belong to no call": report.unlinked_monitor_files,
        }
        for title, items in sections.items():
            print(f"{title}: {len(items)}")
            for item in items[:50]:
                print(f"  {item}")
            if len(items) > 50:
                print(f"  … {len(items) - 50} more (use --json)")
        print(
            f"(header-only files of never-bridged calls, expected: {report.header_only_expected})"
        )
        if report.unlinked_monitor_files:
            print(f"what to do with the monitor folder's files: {UNLINKED_ADVICE}")
        print("OK" if report.ok else "PROBLEMS FOUND")
        return 0 if report.ok else 1

    return _run(work)


def _retention(args: argparse.Namespace) -> int:
    async def work(_c: Container, rec: Recordings) -> int:
        report = await rec.service.retention(dry_run=args.dry_run)
        if args.json:
            _print_json(asdict(report))
            return 0
        verb = "would delete" if args.dry_run else "deleted"
        for item in report.deleted:
            print(
                f"{verb} recording {item['recording_id']} (attempt {item['attempt_id']}, "
                f"ended {item['ended_at']})"
            )
        print(
            f"{verb} {len(report.deleted)}; kept by a supervisor: {report.kept}; "
            f"cut-off {report.cutoff}"
        )
        return 0

    return _run(work)


def _ingest(args: argparse.Namespace) -> int:
    async def work(c: Container, rec: Recordings) -> int:
        await rec.ingest.start()
        try:
            rid = await rec.ingest.submit(
                RecordingJob(
                    attempt_id=args.attempt,
                    lead_id=args.lead,
                    specialist_id=args.specialist,
                    wav_path=args.file,
                    outcome=args.outcome,
                    ended_at=c.clock.now(),
                )
            )
            await rec.ingest.drain()
        finally:
            await rec.ingest.stop()
        async with c.sessions() as s:
            row = await s.get(Recording, rid)
        assert row is not None
        print(f"recording {rid}: {row.status}" + (f" ({row.error})" if row.error else ""))
        return 0 if row.status == "stored" else 1

    return _run(work)
