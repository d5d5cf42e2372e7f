"""The demo's data folder: marked as the demo's, locked while a demo runs, and reset only in
what the demo itself writes there.

`make run` used to delete its folder outright; a second `make run` then wiped the files of a
demo still serving from them, and `--data-dir ~/work` would have wiped a home folder. Now:

* a folder that holds anything and has no marker file is not the demo's: refused;
* a demo holds an exclusive `flock` on a lock file in the folder for its whole life, so a
  second demo on the same folder is refused (with who holds it) before it touches anything;
* a reset removes only the entries a demo writes (`DEMO_ENTRIES`); anything else stays.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

MARKER = ".callcenter-demo"
LOCK = ".callcenter-demo.lock"
# What a demo writes in its folder (glob patterns); a reset removes these and nothing else.
DEMO_ENTRIES = (
    "callcenter.db",
    "callcenter.db-*",
    "demo-export.csv*",
    "demo-callbacks.csv*",
    "recordings",
    "monitor",
    "mail-outbox",
)


class DemoRefused(Exception):
    """The demo cannot start here (its folder, its port, its database); the message says why
    and what to do. Raised before anything that is not the demo's own is touched."""


@dataclass
class DemoFolder:
    """A claimed demo folder; the lock lasts until `release()` (or the process ends)."""

    path: Path
    _fd: int

    def reset(self) -> list[str]:
        """Remove what an earlier demo wrote here; returns the names removed."""
        removed: list[str] = []
        for pattern in DEMO_ENTRIES:
            for entry in sorted(self.path.glob(pattern)):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed.append(entry.name)
        return removed

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the flock
            self._fd = -1


def _holder(lock_file: Path) -> str:
    try:
        text = lock_file.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or "another process"


def claim(path: Path, *, address: str) -> DemoFolder:
    """Mark (if new and empty) and lock `path` for this demo, or raise `DemoRefused`.

    `address` (host:port) is written into the lock file so that a refused second demo can
    say which demo holds the folder. Nothing is deleted here: see `DemoFolder.reset`."""
    path = path.expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise DemoRefused(f"{path} is a file, not a folder: choose another with DATA=…")
    marker = path / MARKER
    if not marker.is_file():
        if path.is_dir() and any(path.iterdir()):
            raise DemoRefused(
                f"{path} already holds files and is not a demo folder (no {MARKER} in it); "
                "the demo never deletes what it did not create. Choose an empty or new folder "
                "(make run DATA=/tmp/callcenter-demo, or callcenter demo --data-dir …). A folder "
                "left by a demo older than this check has no marker either: if that is what it "
                "is, remove it yourself."
            )
        path.mkdir(parents=True, exist_ok=True)
        marker.write_text(
            "This folder was created by `callcenter demo`; the next demo resets what it wrote "
            "here (the database, recordings, mails, demo lists) and keeps anything else.\n",
            encoding="utf-8",
        )
    lock_file = path / LOCK
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DemoRefused(
            f"{path} is in use by a running demo ({_holder(lock_file)}). Stop that demo first "
            "(Ctrl-C in its terminal, or kill its pid), or give this one its own folder and "
            "port: make run PORT=<a free port> DATA=<a new folder>"
        ) from None
    os.ftruncate(fd, 0)
    os.write(
        fd,
        f"pid {os.getpid()}, serving on {address}, since {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n".encode(),
    )
    return DemoFolder(path, fd)
