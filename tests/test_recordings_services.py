"""Integrity check, retention, the daily job and the CLI around them."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.cli import main
from callcenter.database import create_engine, session_factory
from callcenter.jobs import DailyJobRunner
from callcenter.service import recordings_job
from crm_sync.models import OutboxMessage
from recordings.config import RecordingSettings
from recordings.models import Recording
from recordings.services import RecordingsService
from recordings.store import LocalStore
from schedules.clock import VirtualClock
from tests.conftest import _empty_tables
from tests.test_recordings_helpers import add_recording, make_lead

NOW = datetime(2026, 3, 1, 1, 30, tzinfo=UTC)


def service(
    sessions: async_sessionmaker[AsyncSession],
    tmp: Path,
    lookup: Mapping[str, str] | None = None,
    clock: VirtualClock | None = None,
) -> RecordingsService:
    async def attempts(_since: datetime, _until: datetime) -> Mapping[str, str]:
        assert lookup is not None
        return lookup

    return RecordingsService(
        sessions,
        LocalStore(tmp / "store"),
        clock or VirtualClock(NOW),
        RecordingSettings(retention_days=30),
        attempts_lookup=attempts if lookup is not None else None,
    )


async def test_check_finds_every_kind_of_problem_and_nothing_else(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    lookup = {
        "att-ok": "answered",
        "att-hdr": "answered",
        "att-bad": "answered",
        "att-busy": "busy",
        "att-never": "answered",  # answered, but no recording was ever submitted
    }
    svc = service(sessions, tmp_path, lookup)
    store = svc.store
    assert isinstance(store, LocalStore)
    lead = await make_lead(sessions)
    t = NOW - timedelta(days=1)
    await add_recording(sessions, store, "att-ok", ended_at=t, data=b"fine", lead_id=lead)
    hdr = await add_recording(sessions, store, "att-hdr", ended_at=t, data=None, lead_id=lead)
    bad = await add_recording(sessions, store, "att-bad", ended_at=t, data=b"orig", lead_id=lead)
    await add_recording(
        sessions, store, "att-busy", ended_at=t, data=None, lead_id=lead, outcome="busy"
    )
    stray = await add_recording(sessions, store, "att-stray", ended_at=t, data=b"s", lead_id=None)
    async with sessions() as s:
        bad_key = (await s.get(Recording, bad)).storage_key  # type: ignore[union-attr]
    store.path(bad_key).write_bytes(b"tampered")  # type: ignore[arg-type]
    (store.root / "2026" / "02").mkdir(parents=True, exist_ok=True)
    (store.root / "2026" / "02" / "orphan.mp3").write_bytes(b"?")

    report = await svc.check()

    assert [(i["attempt_id"], i["reason"]) for i in report.answered_without_recording] == [
        ("att-never", "no recording submitted"),
    ]
    # The busy call's header-only file is expected; the answered call's is a problem.
    assert [i["recording_id"] for i in report.header_only] == [hdr]
    assert report.header_only_expected == 1
    assert [(i["recording_id"], i["reason"]) for i in report.recordings_without_call] == [
        (stray, "no lead")
    ]
    assert [i["recording_id"] for i in report.checksum_mismatches] == [bad]
    assert report.orphan_files == ["2026/02/orphan.mp3"]
    assert not report.ok


async def test_check_of_a_clean_store_is_ok(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    svc = service(sessions, tmp_path)
    lead = await make_lead(sessions)
    assert isinstance(svc.store, LocalStore)
    await add_recording(sessions, svc.store, "a", ended_at=NOW, data=b"1", lead_id=lead)
    report = await svc.check()
    assert report.ok, report.as_dict()


async def test_retention_deletes_exactly_the_old_recordings_nobody_kept(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    svc = service(sessions, tmp_path)
    store = svc.store
    assert isinstance(store, LocalStore)
    lead = await make_lead(sessions)
    old = NOW - timedelta(days=30, seconds=1)
    young = NOW - timedelta(days=29, hours=23)
    ids = {
        "old": await add_recording(sessions, store, "old", ended_at=old, data=b"o", lead_id=lead),
        "old-kept": await add_recording(
            sessions, store, "old-kept", ended_at=old, data=b"k", lead_id=lead, keep=True
        ),
        "old-no-audio": await add_recording(sessions, store, "old-na", ended_at=old, data=None),
        "young": await add_recording(sessions, store, "young", ended_at=young, data=b"y"),
    }
    keys_before = await store.keys()

    dry = await svc.retention(dry_run=True)
    assert sorted(i["recording_id"] for i in dry.deleted) == sorted(
        [ids["old"], ids["old-no-audio"]]
    )
    assert await store.keys() == keys_before

    caplog.set_level(logging.INFO, logger="recordings.retention")
    report = await svc.retention()
    assert sorted(i["recording_id"] for i in report.deleted) == sorted(
        [ids["old"], ids["old-no-audio"]]
    )
    assert report.kept == 1
    async with sessions() as s:
        left = set((await s.scalars(select(Recording.id))).all())
        msgs = (await s.scalars(select(OutboxMessage))).all()
    assert left == {ids["old-kept"], ids["young"]}
    assert len(await store.keys()) == 2
    assert [(m.topic, m.payload["recording_id"]) for m in msgs] == [
        ("recording.deleted", ids["old"])
    ]
    assert f"deleted recording {ids['old']}" in caplog.text


async def test_the_daily_job_runs_on_the_one_runner_catches_up_and_is_retried(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """Started after its 02:30 the job runs that day (it used to wait for tomorrow); a failed
    run is retried minutes later by the runner (it used to be tried again only tomorrow)."""
    clock = VirtualClock(NOW)  # 09:30 in Shanghai, seven hours after the job's time
    svc = service(sessions, tmp_path, clock=clock)
    assert isinstance(svc.store, LocalStore)
    old = await add_recording(
        sessions, svc.store, "old", ended_at=NOW - timedelta(days=40), data=b"o"
    )
    runs: list[datetime] = []
    done = asyncio.Event()
    original = svc.daily_once

    async def flaky() -> object:
        runs.append(clock.now())
        if len(runs) == 1:
            raise OSError("recordings store unreachable")
        result = await original()
        done.set()
        return result

    svc.daily_once = flaky  # type: ignore[method-assign,assignment]
    runner = DailyJobRunner(
        clock, ZoneInfo("Asia/Shanghai"), [recordings_job(svc, "02:30")], lambda _d: False
    )
    slept = clock.sleeper_added()
    task = asyncio.create_task(runner.run_forever())
    try:
        await asyncio.wait_for(slept, timeout=30)  # ran at once, failed, waits to retry
        assert runs == [NOW]
        await clock.advance(300)
        await asyncio.wait_for(done.wait(), timeout=30)
    finally:
        task.cancel()
    assert runs == [NOW, NOW + timedelta(seconds=300)]
    async with sessions() as s:
        assert await s.get(Recording, old) is None


def test_cli_check_and_retention(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", db_url)
    monkeypatch.setenv("CALLCENTER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CALLCENTER_RECORDINGS__RETENTION_DAYS", "30")
    now = datetime.now(UTC)

    async def setup() -> None:
        engine = create_engine(db_url)
        sessions = session_factory(engine)
        await _empty_tables(engine)
        store = LocalStore(tmp_path / "recordings" / "store")
        lead = await make_lead(sessions)
        await add_recording(sessions, store, "fresh", ended_at=now, data=b"f", lead_id=lead)
        await add_recording(
            sessions, store, "stale", ended_at=now - timedelta(days=31), data=b"s", lead_id=lead
        )
        await add_recording(sessions, store, "hdr", ended_at=now, data=None, lead_id=lead)
        await engine.dispose()

    async def cleanup() -> None:
        engine = create_engine(db_url)
        await _empty_tables(engine)
        await engine.dispose()

    asyncio.run(setup())
    try:
        assert main(["recordings", "check", "--json"]) == 1
        report = json.loads(capsys.readouterr().out)
        assert [i["attempt_id"] for i in report["header_only"]] == ["hdr"]
        assert main(["recordings", "retention", "--dry-run"]) == 0
        assert "would delete 1;" in capsys.readouterr().out
        assert main(["recordings", "retention"]) == 0
        assert "deleted recording" in capsys.readouterr().out
        assert main(["recordings", "retention", "--dry-run"]) == 0
        assert "would delete 0;" in capsys.readouterr().out
    finally:
        asyncio.run(cleanup())


async def test_check_with_the_dialers_attempts_finds_an_answered_call_never_submitted(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    from callcenter.service import dialer_attempts_lookup
    from dialer.models import CallAttempt

    lead = await make_lead(sessions)
    t = NOW - timedelta(hours=2)
    async with sessions() as s:
        for aid, outcome, mode in (
            ("att-a", "answered", "seat_first"),
            ("att-b", "busy", "seat_first"),
            ("att-c", "answered", "customer_first"),
            ("att-d", "answered", "automatic"),  # a recorded message: nothing to record
        ):
            s.add(
                CallAttempt(
                    attempt_id=aid,
                    lead_id=lead,
                    number="13800000000",
                    mode=mode,
                    campaign_kind="renewal",
                    ami_server="pbx1",
                    state="ended",
                    outcome=outcome,
                    ended_at=t,
                )
            )
        await s.commit()
    svc = RecordingsService(
        sessions,
        LocalStore(tmp_path / "store"),
        VirtualClock(NOW),
        RecordingSettings(),
        attempts_lookup=dialer_attempts_lookup(sessions),
    )
    assert isinstance(svc.store, LocalStore)
    await add_recording(sessions, svc.store, "att-a", ended_at=t, data=b"a", lead_id=lead)
    await add_recording(sessions, svc.store, "att-zz", ended_at=t, data=b"z", lead_id=lead)
    report = await svc.check()
    assert [(i["attempt_id"], i["reason"]) for i in report.answered_without_recording] == [
        ("att-c", "no recording submitted")
    ]
    assert [(i["attempt_id"], i["reason"]) for i in report.recordings_without_call] == [
        ("att-zz", "attempt unknown to the dialer")
    ]
