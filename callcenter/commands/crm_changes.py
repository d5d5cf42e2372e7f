"""`callcenter crm-changes FILE.jsonl`: the CRM's changes from a file, one JSON object a line,
the same as `POST /api/crm/changes` (docs/crm.md#inbound-changes)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from callcenter.bootstrap import bootstrap
from crm_sync.change_parsing import Change, ChangeError, parse_change
from crm_sync.changes import apply_changes


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "crm-changes",
        help="apply the CRM's changes (renewed elsewhere, corrected phone, do-not-call, leave)",
    )
    p.add_argument("file", type=Path, help="JSON lines: one change object per line")
    p.add_argument("--json", action="store_true", help="print each result as JSON")
    p.set_defaults(func=_run)


def read_changes(path: Path) -> list[Change]:
    """Every line checked before any change is applied; errors name the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ChangeError(f"cannot read {path}: {exc}") from None
    out: list[Change] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(parse_change(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise ChangeError(f"{path}:{n}: not JSON ({exc}); nothing was applied") from None
        except ChangeError as exc:
            raise ChangeError(f"{path}:{n}: {exc}; nothing was applied") from None
    if not out:
        raise ChangeError(f"{path} holds no changes")
    return out


def _run(args: argparse.Namespace) -> int:
    try:
        changes = read_changes(args.file)
    except ChangeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        container = await bootstrap()
        try:
            now = container.clock.now()
            today = now.astimezone(ZoneInfo(container.settings.timezone)).date()
            results = await apply_changes(container.sessions, changes, now, "file", today)
        finally:
            await container.close()
        for r in results:
            if args.json:
                print(json.dumps(r.as_dict(), ensure_ascii=False))
            else:
                print(f"{r.change_id}\t{r.outcome}\t{r.detail}")
        return 0

    return asyncio.run(run())
