"""The recordings folder full, then freed (docs/reliability.md): the store is a small real
tmpfs mounted for the test (root only; the test says so and skips elsewhere), filled up
before the calls' recordings arrive. Each store fails with ENOSPC, the WAV waits in the
monitor folder, and the ingest's retry stores every recording once space is back."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recordings.audio import sha256_file
from recordings.models import Recording
from tests.fault_support import figure
from tests.test_recordings_helpers import settle, write_call_wav
from tests.test_recordings_ingest import Env

CALLS = 4


def _files(root: Path) -> set[str]:
    return {p.name for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, filled to the last byte by a filler file."""
    mount = tmp_path / "store"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        with contextlib.suppress(OSError), (mount / "filler").open("wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_recordings_disk_loses_nothing_and_ingest_resumes_once_freed(
    tmp_path: Path, sessions: async_sessionmaker[AsyncSession], small_disk: Path
) -> None:
    if sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("the disk is the fault, not the database: PostgreSQL (production's) only")
    env = Env(tmp_path, sessions, retry_poll=10.0, retry_delays=[20.0, 600.0, 3600.0])
    env.ingest.store.root = small_disk  # type: ignore[attr-defined]
    await env.ingest.start()
    try:
        rids = []
        for n in range(CALLS):
            write_call_wav(env.monitor / f"9.{n}.wav", [(1.0, 0.5), (0.5, 0.0)])
            rids.append(await env.ingest.submit(env.job(f"att-{n}", f"9.{n}.wav", None)))
        await settle(env.ingest, env.clock)
        failed = [await env.row(r) for r in rids]
        assert all(r.status == "failed" for r in failed)
        assert all(os.strerror(errno.ENOSPC) in (r.error or "") for r in failed), failed[0].error
        assert all((env.monitor / f"9.{n}.wav").exists() for n in range(CALLS))
        (small_disk / "filler").unlink()  # the operator frees the disk
        freed_at = env.clock.monotonic()
        stored: list[Recording] = []
        for _ in range(40):  # 5 s steps of the clock, the retry loop and workers running
            stored = [await env.row(r) for r in rids]
            if all(r.status == "stored" for r in stored):
                break
            await env.clock.advance(5)
            await settle(env.ingest, env.clock)
        resumed_after = env.clock.monotonic() - freed_at
    finally:
        await env.ingest.stop()
    assert [r.status for r in stored] == ["stored"] * CALLS, stored[0].error
    for r in stored:
        assert r.storage_key is not None and r.sha256 == sha256_file(small_disk / r.storage_key)
    assert not any(env.monitor.glob("*.wav")), "every WAV was taken in"
    leftovers = _files(small_disk) - {Path(r.storage_key or "").name for r in stored}
    assert leftovers == set(), "a partial copy was left on the full disk"
    figure(
        "recordings disk full, then freed",
        backend=sessions.kw["bind"].dialect.name,
        disk="tmpfs 1 MiB (mounted by the test)",
        recordings=CALLS,
        failed_while_full=len(failed),
        stored_after_freed_s=round(resumed_after),
        lost=0,
    )
