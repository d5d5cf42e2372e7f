"""Shared helpers of the recordings tests (no tests here)."""

from __future__ import annotations

import asyncio
import hashlib
import math
import struct
import wave
from datetime import date, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.models import Customer, Lead, Policy
from recordings.ingest import Ingest
from recordings.models import Recording
from recordings.store import LocalStore
from schedules.clock import VirtualClock
from tests.test_web import _user as make_user

__all__ = ["add_recording", "make_lead", "make_user", "settle", "write_call_wav"]

RATE = 8000


def write_call_wav(path: Path, parts: list[tuple[float, float]]) -> float:
    """A MixMonitor-like WAV (8 kHz, 16-bit, mono) from (seconds, amplitude 0..1) parts of a
    425 Hz tone; amplitude 0 is digital silence. Returns the duration."""
    frames = bytearray()
    for seconds, amp in parts:
        n = round(seconds * RATE)
        frames += struct.pack(
            f"<{n}h", *(int(amp * 20000 * math.sin(2 * math.pi * 425 * i / RATE)) for i in range(n))
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(frames))
    return len(frames) / 2 / RATE


async def make_lead(
    sessions: async_sessionmaker[AsyncSession], n: int = 1, owner_id: int | None = None
) -> int:
    async with sessions() as s:
        c = Customer(name=f"客户{n}", match_key=f"c{n}")
        s.add(c)
        await s.flush()
        p = Policy(policy_number=f"P{n:06d}", policyholder_id=c.id, expiry_date=date(2026, 2, 1))
        s.add(p)
        await s.flush()
        lead = Lead(
            policy_id=p.id,
            kind="renewal",
            status="assigned" if owner_id else "new",
            owner_id=owner_id,
            distributed_on=date(2026, 1, 5) if owner_id else None,
        )
        s.add(lead)
        await s.commit()
        return lead.id


async def settle(ingest: Ingest, clock: VirtualClock, step: float = 0.5) -> None:
    """Drive the virtual clock until every queued recording is processed.

    The worker pool runs in real time; only the file-stability waits are on the clock. So
    the clock moves only when a sleeper is due within `step`: while ffmpeg or the store
    works, time stands still, and a loaded machine does not push the clock minutes past
    a retry that was just scheduled."""
    done = asyncio.create_task(ingest.drain())
    while not done.done():
        wake = clock.next_wakeup
        if wake is not None and wake <= step:
            await clock.advance(step)
            continue
        added = asyncio.ensure_future(clock.sleeper_added())
        await asyncio.wait({done, added}, return_when=asyncio.FIRST_COMPLETED)
        added.cancel()
    await done


async def add_recording(
    sessions: async_sessionmaker[AsyncSession],
    store: LocalStore,
    attempt: str,
    *,
    ended_at: datetime,
    data: bytes | None = b"",
    lead_id: int | None = None,
    specialist_id: int | None = None,
    outcome: str = "answered",
    duration: float = 5.0,
    keep: bool = False,
    status: str | None = None,
) -> int:
    """A recording row (stored, with `data` as its object, unless data is None)."""
    async with sessions() as s:
        rec = Recording(
            attempt_id=attempt,
            lead_id=lead_id,
            specialist_id=specialist_id,
            outcome=outcome,
            source_name=f"{attempt}.wav",
            status=status or ("stored" if data is not None else "no_audio"),
            ended_at=ended_at,
            keep=keep,
            waveform=[0.1, 0.5, 0.2],
        )
        s.add(rec)
        await s.flush()
        if data is not None:
            rec.storage_key = f"{ended_at:%Y/%m/%d}/{rec.id}-{attempt}.mp3"
            rec.format = "mp3"
            rec.size_bytes = len(data)
            rec.sha256 = hashlib.sha256(data).hexdigest()
            rec.duration_seconds = duration
            tmp = store.root.parent / f"upload-{rec.id}"
            tmp.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            await store.put(rec.storage_key, tmp, "audio/mpeg")
            tmp.unlink()
        await s.commit()
        return rec.id
