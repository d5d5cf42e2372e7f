"""Helpers of the desk pages' browser tests (no tests here): signing in through the form,
recordings with real audio (an MP3 made by ffmpeg, stored through the service's own store),
due leads for the day's deal, and core-system exports with good and bad rows."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from playwright.async_api import Page, expect
from sqlalchemy import select

from crm_sync.models import Customer, Lead, Phone, Policy
from recordings.models import Recording
from tests.seat_page_support import Site, sign_in_browser
from tests.test_recordings_helpers import write_call_wav

VIEWPORT = {"width": 1366, "height": 768}
# Peaks as the ingest stores them (0..1): speech, a pause, speech.
PEAKS = [0.6, 0.8, 0.7, 0.5, 0.05, 0.02, 0.03, 0.7, 0.9, 0.6] * 10
EXPORT_HEADER = ["保单号", "车牌号", "投保人", "投保人联系电话", "起保日期", "终保日期", "机构"]


async def open_as(browser: Any, site: Site, username: str, path: str) -> Page:
    """A new browser signed in as `username` through the sign-in form, on `path`."""
    context = await browser.new_context(
        viewport=VIEWPORT, locale="zh-CN", base_url=site.url, accept_downloads=True
    )
    page: Page = await context.new_page()
    await sign_in_browser(page, username, path)
    await expect(page.locator("body")).to_have_attribute("data-ready", "1")
    return page


def _mp3(folder: Path, name: str) -> bytes:
    """Twelve seconds of a call (tone, silence, tone) as a small MP3."""
    wav = folder / f"{name}.wav"
    write_call_wav(wav, [(5.0, 0.6), (2.0, 0.0), (5.0, 0.6)])
    import subprocess

    mp3 = folder / f"{name}.mp3"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-b:a", "32k", str(mp3)],
        check=True,
    )
    return mp3.read_bytes()


async def add_call_recording(
    site: Site,
    folder: Path,
    attempt: str,
    *,
    lead_id: int,
    specialist_id: int,
    ended_at: datetime,
) -> int:
    """A stored recording of an answered call, with its audio in the service's store."""
    data = await asyncio.to_thread(_mp3, folder, attempt)
    store = site.service.recordings.service.store
    async with site.service.container.sessions() as s:
        rec = Recording(
            attempt_id=attempt,
            lead_id=lead_id,
            specialist_id=specialist_id,
            outcome="answered",
            contact_result="considering",
            source_name=f"{attempt}.wav",
            status="stored",
            ended_at=ended_at,
            talk_seconds=11.0,
            duration_seconds=12.0,
            speech_seconds=10.0,
            silence_ratio=2.0 / 12.0,
            waveform=PEAKS,
            format="mp3",
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        s.add(rec)
        await s.flush()
        rec.storage_key = f"{ended_at:%Y/%m/%d}/{rec.id}-{attempt}.mp3"
        src = folder / f"{attempt}.upload"
        src.write_bytes(data)
        await store.put(rec.storage_key, src, "audio/mpeg")
        await s.commit()
        return rec.id


async def add_due_leads(
    site: Site, count: int, today: date, *, owner_id: int | None = None, tag: str = "due"
) -> list[int]:
    """Renewal leads due today and owned by nobody: the morning deal's work. With an owner:
    leads handed out to them on `today`, still without a contact result."""
    ids = []
    async with site.service.container.sessions() as s:
        for i in range(count):
            c = Customer(name=f"待分{i}", match_key=f"{tag}{i}")
            s.add(c)
            await s.flush()
            s.add(
                Phone(
                    customer_id=c.id,
                    raw=f"139{len(tag)}00{i:05d}",
                    e164=f"+86139{len(tag)}00{i:05d}",
                )
            )
            p = Policy(
                policy_number=f"{tag.upper()}{i:05d}",
                policyholder_id=c.id,
                expiry_date=today + timedelta(days=25),
            )
            s.add(p)
            await s.flush()
            lead = Lead(
                policy_id=p.id,
                kind="renewal",
                status="assigned" if owner_id else "due",
                due_on=today,
                owner_id=owner_id,
                distributed_on=today if owner_id else None,
            )
            s.add(lead)
            await s.flush()
            ids.append(lead.id)
        await s.commit()
    return ids


async def owners(site: Site, lead_ids: list[int]) -> dict[int, int]:
    """Specialist id -> how many of `lead_ids` they own."""
    async with site.service.container.sessions() as s:
        rows = (await s.scalars(select(Lead.owner_id).where(Lead.id.in_(lead_ids)))).all()
    out: dict[int, int] = {}
    for owner in rows:
        if owner is not None:
            out[owner] = out.get(owner, 0) + 1
    return out


def write_export(path: Path, rows: list[list[object]]) -> Path:
    """A core-system export as the importer takes it (XLSX, Chinese headers)."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(EXPORT_HEADER)
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path
