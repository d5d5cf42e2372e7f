"""Ingest end to end with real audio: WAV in the monitor folder -> stored MP3, row, outbox."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydub import AudioSegment
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.models import OutboxMessage
from recordings.audio import sha256_file
from recordings.config import RecordingSettings
from recordings.exceptions import StoreError
from recordings.ingest import Ingest, RecordingJob
from recordings.models import Recording
from recordings.store import LocalStore
from schedules.clock import VirtualClock
from tests.test_recordings_helpers import make_lead, make_user, settle, write_call_wav

SPOOL = "/var/spool/asterisk/monitor"
ENDED = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)


class Env:
    def __init__(self, tmp: Path, sessions: async_sessionmaker[AsyncSession], **over: object):
        self.monitor = tmp / "monitor"
        self.monitor.mkdir()
        self.clock = VirtualClock()
        self.store = LocalStore(tmp / "store")
        settings = RecordingSettings(
            stable_interval=0.5, stable_checks=2, appear_timeout=5, workers=2, **over
        )
        self.sessions = sessions
        self.ingest = Ingest(
            sessions,
            self.store,
            self.clock,
            settings,
            monitor_dir=self.monitor,
            work_dir=tmp / "work",
        )

    def job(
        self, attempt: str, name: str, lead_id: int | None, outcome: str = "answered", **kw: object
    ) -> RecordingJob:
        return RecordingJob(
            attempt_id=attempt,
            lead_id=lead_id,
            specialist_id=kw.pop("specialist_id", None),  # type: ignore[arg-type]
            wav_path=f"{SPOOL}/{name}",
            outcome=outcome,
            ended_at=ENDED,
            talk_seconds=kw.pop("talk_seconds", None),  # type: ignore[arg-type]
        )

    async def row(self, rid: int) -> Recording:
        async with self.sessions() as s:
            rec = await s.get(Recording, rid)
            assert rec is not None
            return rec


@pytest.fixture
async def env(tmp_path: Path, sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Env]:
    e = Env(tmp_path, sessions)
    await e.ingest.start()
    try:
        yield e
    finally:
        await e.ingest.stop()


@pytest.mark.parametrize("source", ["generated", "1795779201.0.wav", "1795781502.0.wav"])
async def test_answered_call_becomes_mp3_of_the_same_duration_checksummed_and_linked(
    env: Env, fixtures_dir: Path, source: str
) -> None:
    name = "1795790000.7.wav" if source == "generated" else source
    wav = env.monitor / name
    if source == "generated":
        duration = write_call_wav(wav, [(2.0, 0.8), (1.0, 0.0), (4.25, 0.5)])
    else:
        shutil.copyfile(fixtures_dir / "audio" / source, wav)
        duration = len(AudioSegment.from_wav(wav)) / 1000
    uid, _ = await make_user(env.sessions, "8001", "specialist")
    lead = await make_lead(env.sessions, owner_id=uid)

    rid = await env.ingest.submit(env.job("att-001", name, lead, specialist_id=uid))
    await settle(env.ingest, env.clock)

    rec = await env.row(rid)
    assert rec.status == "stored", rec.error
    assert rec.storage_key is not None and rec.storage_key.startswith("2026/01/05/")
    stored = env.store.path(rec.storage_key)
    assert stored.suffix == ".mp3"
    decoded = AudioSegment.from_file(stored, format="mp3")
    assert abs(len(decoded) / 1000 - duration) <= 0.1
    assert abs((rec.duration_seconds or 0) - duration) <= 0.01
    assert rec.sha256 == sha256_file(stored)
    assert rec.size_bytes == stored.stat().st_size
    assert rec.waveform is not None and len(rec.waveform) == 200
    assert not wav.exists(), "the original is removed once stored and recorded"
    if source == "generated":
        assert rec.speech_seconds == pytest.approx(6.25, abs=0.06)
        assert rec.silence_ratio == pytest.approx(1 / 7.25, abs=0.01)
    async with env.sessions() as s:
        msgs = (await s.scalars(select(OutboxMessage))).all()
    assert [(m.topic, m.key) for m in msgs] == [("recording.stored", f"lead:{lead}")]
    assert msgs[0].payload["url"] == f"/api/recordings/{rid}/audio"
    assert msgs[0].payload["checksum"] == f"sha256:{rec.sha256}"
    assert msgs[0].payload["attempt_id"] == "att-001"


async def test_header_only_file_is_flagged_not_transcoded(env: Env, fixtures_dir: Path) -> None:
    wav = env.monitor / "1795779300.3.wav"
    write_call_wav(wav, [])
    assert wav.stat().st_size == 44
    rid = await env.ingest.submit(env.job("att-busy", wav.name, None, outcome="busy"))
    await settle(env.ingest, env.clock)
    rec = await env.row(rid)
    assert rec.status == "no_audio"
    assert rec.storage_key is None and rec.sha256 is None
    assert await env.store.keys() == []
    async with env.sessions() as s:
        assert (await s.scalars(select(OutboxMessage))).all() == []


async def test_truncated_and_garbage_wavs_are_quarantined_and_the_worker_goes_on(
    env: Env, fixtures_dir: Path
) -> None:
    good = (fixtures_dir / "audio" / "1795781502.0.wav").read_bytes()
    (env.monitor / "1.1.wav").write_bytes(good[:30001])  # cut mid-sample, header says more
    (env.monitor / "2.2.wav").write_bytes(b"RIFF\x00\x00garbage" * 50)
    (env.monitor / "3.3.wav").write_bytes(good)
    ids = [await env.ingest.submit(env.job(f"att-{i}", f"{i}.{i}.wav", None)) for i in (1, 2, 3)]
    await settle(env.ingest, env.clock)
    rows = [await env.row(i) for i in ids]
    assert [r.status for r in rows] == ["corrupt", "corrupt", "stored"]
    assert "truncated" in (rows[0].error or "")
    quarantine = env.ingest.quarantine_dir
    assert sorted(p.name for p in quarantine.iterdir()) == [
        f"{ids[0]}-1.1.wav",
        f"{ids[1]}-2.2.wav",
    ]
    assert (quarantine / f"{ids[0]}-1.1.wav").read_bytes() == good[:30001]
    assert all(not t.done() for t in env.ingest._tasks), "workers are still alive"


async def test_a_growing_file_is_processed_only_once_it_stops_changing(env: Env) -> None:
    wav = env.monitor / "9.9.wav"
    # Asterisk writes a zero-size header first and fixes it on close.
    wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(28))
    rid = await env.ingest.submit(env.job("att-grow", wav.name, None))
    for i in range(6):
        await env.clock.advance(0.5)
        with wav.open("ab") as f:
            f.write(bytes(1600 + i))
        assert (await env.row(rid)).status == "pending"
    write_call_wav(wav, [(3.0, 0.5)])  # closed: header finalised
    await settle(env.ingest, env.clock)
    assert (await env.row(rid)).status == "stored"


async def test_a_file_that_never_appears_is_marked_missing(env: Env) -> None:
    rid = await env.ingest.submit(env.job("att-lost", "404.0.wav", None))
    await env.clock.advance(4.0)
    assert (await env.row(rid)).status == "pending"
    await settle(env.ingest, env.clock)
    rec = await env.row(rid)
    assert rec.status == "missing"
    assert "did not appear" in (rec.error or "")


async def test_a_link_out_of_the_monitor_folder_is_never_followed(env: Env, tmp_path: Path) -> None:
    secret = tmp_path / "outside.wav"
    write_call_wav(secret, [(1.0, 0.5)])
    (env.monitor / "5.5.wav").symlink_to(secret)
    rid = await env.ingest.submit(env.job("att-link", "5.5.wav", None))
    bad = await env.ingest.submit(env.job("att-dots", "../../etc/passwd", None))
    await settle(env.ingest, env.clock)
    assert (await env.row(rid)).status == "missing"
    assert "link" in ((await env.row(rid)).error or "")
    assert (await env.row(bad)).status == "missing"
    assert secret.exists() and await env.store.keys() == []


async def test_submitting_the_same_attempt_twice_keeps_one_recording(env: Env) -> None:
    write_call_wav(env.monitor / "7.7.wav", [(1.0, 0.5)])
    a = await env.ingest.submit(env.job("att-7", "7.7.wav", None))
    b = await env.ingest.submit(env.job("att-7", "7.7.wav", None))
    await settle(env.ingest, env.clock)
    assert a == b
    assert (await env.row(a)).status == "stored"
    assert len(await env.store.keys()) == 1


async def test_pending_recordings_are_picked_up_again_after_a_restart(
    tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = Env(tmp_path, sessions)
    await first.ingest.start()
    write_call_wav(first.monitor / "8.8.wav", [(1.0, 0.5)])
    rid = await first.ingest.submit(first.job("att-8", "8.8.wav", None))
    await first.ingest.stop()  # "crash" before the file was stable
    assert (await first.row(rid)).status == "pending"
    second = Ingest(
        sessions,
        first.store,
        first.clock,
        first.ingest.settings,
        monitor_dir=first.monitor,
        work_dir=tmp_path / "work",
    )
    await second.start()
    try:
        await settle(second, first.clock)
    finally:
        await second.stop()
    assert (await first.row(rid)).status == "stored"


async def test_process_pool_and_ogg_opus_are_configurable(
    tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    e = Env(tmp_path, sessions, executor="process", format="ogg")
    await e.ingest.start()
    try:
        write_call_wav(e.monitor / "6.6.wav", [(2.5, 0.5)])
        rid = await e.ingest.submit(e.job("att-6", "6.6.wav", None))
        await settle(e.ingest, e.clock)
    finally:
        await e.ingest.stop()
    rec = await e.row(rid)
    assert rec.status == "stored" and rec.format == "ogg"
    assert rec.storage_key is not None
    decoded = AudioSegment.from_file(e.store.path(rec.storage_key), format="ogg")
    assert abs(len(decoded) / 1000 - 2.5) <= 0.1


async def test_an_unknown_lead_is_refused_at_submit(env: Env) -> None:
    with pytest.raises(ValueError, match="att-x"):
        await env.ingest.submit(env.job("att-x", "1.1.wav", 999_999))


async def test_two_instances_on_one_recording_leave_one_stored_copy(
    tmp_path: Path, env: Env, sessions: async_sessionmaker[AsyncSession]
) -> None:
    other = Ingest(
        sessions,
        env.store,
        env.clock,
        env.ingest.settings,
        monitor_dir=env.monitor,
        work_dir=tmp_path / "work-b",
    )
    await other.start()
    try:
        write_call_wav(env.monitor / "4.4.wav", [(2.0, 0.5)])
        rid = await env.ingest.submit(env.job("att-4", "4.4.wav", None))
        racing = asyncio.create_task(other.process(rid))
        await settle(env.ingest, env.clock)
        while not racing.done():
            await env.clock.advance(0.5)
        await racing
    finally:
        await other.stop()
    rec = await env.row(rid)
    assert rec.status == "stored"
    assert rec.storage_key is not None
    assert rec.sha256 == sha256_file(env.store.path(rec.storage_key))


class _StoreDownFor(LocalStore):
    """A store that refuses the first `n` writes (an object store that is down), then works."""

    def __init__(self, root: Path, n: int) -> None:
        super().__init__(root)
        self.refusals = n

    async def put(self, key: str, src: Path, content_type: str) -> None:
        if self.refusals > 0:
            self.refusals -= 1
            raise StoreError(f"cannot write {key}: connection refused")
        await super().put(key, src, content_type)


async def _ingest_with(
    tmp_path: Path, sessions: async_sessionmaker[AsyncSession], refusals: int, **over: object
) -> tuple[Env, Ingest]:
    """An ingest whose store is down for the first `refusals` writes (the fixture's own
    ingest is not started: it would retry with a working store)."""
    env = Env(tmp_path, sessions, retry_poll=10.0, **over)
    ingest = Ingest(
        sessions,
        _StoreDownFor(tmp_path / "flaky-store", refusals),
        env.clock,
        env.ingest.settings,
        monitor_dir=env.monitor,
        work_dir=tmp_path / "work",
    )
    await ingest.start()
    return env, ingest


async def _run_until(env: Env, ingest: Ingest, rid: int, done: Any, seconds: float) -> Recording:
    """Advance the clock in 5 s steps, letting the retry loop and the workers run."""
    for _ in range(int(seconds / 5)):
        rec = await env.row(rid)
        if done(rec):
            return rec
        await env.clock.advance(5)
        await settle(ingest, env.clock)
    return await env.row(rid)


async def test_a_failed_store_is_tried_again_after_the_delay_and_then_stored(
    tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    env, ingest = await _ingest_with(tmp_path, sessions, 1)
    try:
        write_call_wav(env.monitor / "5.5.wav", [(1.5, 0.5)])
        rid = await ingest.submit(env.job("att-5", "5.5.wav", None))
        await settle(ingest, env.clock)
        failed = await env.row(rid)
        assert failed.status == "failed" and failed.tries == 1
        assert failed.retry_at is not None and failed.retry_at > env.clock.now()
        assert "try 2 of 4" in (failed.error or "")
        assert (env.monitor / "5.5.wav").exists(), "the WAV waits for the retry"
        due = failed.retry_at
        # Not before its time.
        await env.clock.advance((due - env.clock.now()).total_seconds() - 5)
        await settle(ingest, env.clock)
        assert (await env.row(rid)).status == "failed"
        rec = await _run_until(env, ingest, rid, lambda r: r.status == "stored", 60)
    finally:
        await ingest.stop()
    assert rec.status == "stored", rec.error
    assert rec.retry_at is None and rec.error is None and rec.tries == 1
    assert not (env.monitor / "5.5.wav").exists()


async def test_a_store_that_stays_down_stops_being_retried_and_says_so(
    tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    env, ingest = await _ingest_with(tmp_path, sessions, 99, retry_delays=[10.0, 20.0])
    try:
        write_call_wav(env.monitor / "6.6.wav", [(1.0, 0.5)])
        rid = await ingest.submit(env.job("att-6", "6.6.wav", None))
        await settle(ingest, env.clock)
        rec = await _run_until(env, ingest, rid, lambda r: r.tries == 3, 200)
        await env.clock.advance(300)  # nothing is due any more
        await settle(ingest, env.clock)
        rec = await env.row(rid)
    finally:
        await ingest.stop()
    assert rec.status == "failed" and rec.tries == 3 and rec.retry_at is None
    assert "no automatic retry left" in (rec.error or "")
    assert (env.monitor / "6.6.wav").exists()
