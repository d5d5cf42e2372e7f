"""`make test` of two or more trees, alternated, timed end to end (issue 12: a third faster).

Each run starts as CI's fresh clone would: the ruff, mypy and pytest caches are removed
first, so ruff, mypy and pytest all do their full work. The load average is read before and
after each run; pytest's last line (passed/failed counts, its own seconds) is kept.

Not a `make bench` script (it takes the better part of an hour): run it by hand, e.g.
    git worktree add --detach /work/wt/old 9a4c659 && make -C /work/wt/old install
    .venv/bin/python bench/make_test_times.py --rounds 2 /work/wt/old .
Prints one line per run and a JSON line per run to --out (default build/make-test-times.jsonl),
each run's whole output beside it (make-test-times-<round>-<tree folder>.log).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

CACHES = (".mypy_cache", ".pytest_cache", ".ruff_cache")


def load() -> float:
    return os.getloadavg()[0]


def run_once(tree: Path, log: Path) -> dict[str, object]:
    for name in CACHES:
        shutil.rmtree(tree / name, ignore_errors=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True
    ).stdout.strip()  # before the run: what was tested, even if the branch moves meanwhile
    before = load()
    started = time.monotonic()
    done = subprocess.run(
        ["make", "test"], cwd=tree, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    seconds = time.monotonic() - started
    log.write_text(done.stdout + done.stderr, encoding="utf-8")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    summary = next((line for line in reversed(lines) if " in " in line and "=" not in line), "")
    summary = summary or (lines[-1] if lines else "")
    return {
        "tree": str(tree),
        "commit": commit,
        "seconds": round(seconds, 1),
        "returncode": done.returncode,
        "load_before": round(before, 2),
        "load_after": round(load(), 2),
        "pytest": summary,
        "at": time.strftime("%H:%M:%S", time.gmtime()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trees", nargs="+", type=Path)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("build/make-test-times.jsonl"))
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for n in range(args.rounds):
        for tree in args.trees:
            log = args.out.with_name(f"{args.out.stem}-{n + 1}-{tree.resolve().name}.log")
            row = {"round": n + 1, **run_once(tree.resolve(), log)}
            print(
                f"round {row['round']} {row['commit']:>9} {row['seconds']:7.1f} s "
                f"rc {row['returncode']} load {row['load_before']}-{row['load_after']} "
                f"at {row['at']} | {row['pytest']}",
                flush=True,
            )
            with args.out.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
