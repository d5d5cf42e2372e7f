"""Print the fault suite's figures (JSON lines written by tests/fault_support.figure) as a
table: `make faults` runs it after the suite; docs/reliability.md holds a copy."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(path: str) -> int:
    file = Path(path)
    if not file.is_file():
        print(f"no figures at {path}: run the suite with FAULT_FIGURES={path}")
        return 1
    rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line]
    for row in rows:
        fault = row.pop("fault")
        figures = ", ".join(f"{k} {v}" for k, v in row.items())
        print(f"| {fault} | {figures} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "build/fault-figures.jsonl"))
