"""`callcenter ami replay TRACE.ami` — what happened to each dial attempt of a captured
AMI stream, one JSON line per attempt (see dialer/replay.py and docs/ami.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dialer.calls import DEFAULT_EARLY_HANGUP_SECONDS
from dialer.replay import TraceFiles, replay, result_line


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ami", help="Asterisk AMI tools")
    asub = p.add_subparsers(dest="ami_command", required=True)
    r = asub.add_parser(
        "replay",
        help="classify every call attempt of a captured AMI byte stream",
        description=(
            "Reads TRACE.ami (banner, then AMI messages) and, when present, the sibling "
            "TRACE.actions (what the client sent) and TRACE.timeline.jsonl (message times), "
            "and prints one JSON line per call attempt: attempt id, seat, number, outcome, "
            "cause, tech cause, dial status, ring and talk seconds, key pressed."
        ),
    )
    r.add_argument("trace", type=Path, help="the .ami capture")
    r.add_argument(
        "--early-hangup-seconds",
        type=float,
        default=DEFAULT_EARLY_HANGUP_SECONDS,
        help="an answered call shorter than this is answered_hung_up_early (default %(default)s)",
    )
    r.add_argument("--no-actions", action="store_true", help="ignore the .actions file")
    r.add_argument("--no-timeline", action="store_true", help="ignore the .timeline.jsonl file")
    r.set_defaults(func=_replay)


def _replay(args: argparse.Namespace) -> int:
    trace: Path = args.trace
    if not trace.is_file():
        print(f"no such trace file: {trace}", file=sys.stderr)
        return 2
    files = TraceFiles.beside(
        trace, use_actions=not args.no_actions, use_timeline=not args.no_timeline
    )
    try:
        results = replay(files, early_hangup_seconds=args.early_hangup_seconds)
    except (OSError, ValueError) as exc:
        print(f"cannot replay {trace}: {exc}", file=sys.stderr)
        return 1
    for result in results:
        print(result_line(result))
    return 0
