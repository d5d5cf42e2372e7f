"""Recordings survive a kill by design: the attempt's result commits a durable
`attempt.recording` outbox message, and after a restart the relay hands it to the recordings
worker. Killed between hang-up and ingest: the file is ingested from that message. Killed in
the middle of the call: the file is named on the attempt as soon as the PBX reports it, so
the restarted dialer ends the attempt (fate unknown) with its recording message. A WAV that
belongs to nothing is reported by the integrity check with what to do."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.cli import main as cli_main
from callcenter.service import dialer_attempts_lookup, dialer_files_lookup
from crm_sync.config import CrmSettings
from crm_sync.models import OutboxMessage
from crm_sync.outbox import TOPIC_ATTEMPT_RECORDING
from crm_sync.relay import OutboxRelay
from crm_sync.wiring import build_relay
from dialer.engine import DialerEngine
from dialer.models import CallAttempt
from dialer.services import DialerService
from dialer.simulator import PbxSimulator
from recordings.config import RecordingSettings
from recordings.models import Recording
from recordings.wiring import Recordings, build_recordings
from schedules.clock import VirtualClock
from tests.test_dialer_support import MONDAY_0930, make_engine, seed
from tests.test_recordings_helpers import settle, write_call_wav
from tests.virtual_time import Driver


def _recordings(
    sessions: async_sessionmaker[AsyncSession], clock: VirtualClock, tmp_path: Path
) -> Recordings:
    return build_recordings(
        RecordingSettings(stable_interval=0.5, stable_checks=2, workers=1),
        sessions=sessions,
        clock=clock,
        recordings_dir=tmp_path / "recordings",
        monitor_dir=tmp_path / "monitor",
        attempts_lookup=dialer_attempts_lookup(sessions),
        files_lookup=dialer_files_lookup(sessions),
    )


async def _attempt(sessions: async_sessionmaker[AsyncSession]) -> CallAttempt | None:
    async with sessions() as s:
        return (await s.scalars(select(CallAttempt))).one_or_none()


def _relay(engine: AsyncEngine, clock: VirtualClock, rec: Recordings) -> OutboxRelay:
    """The restarted service's relay: no CRM sink, the recordings worker as consumer."""
    return build_relay(CrmSettings(), engine, clock, {TOPIC_ATTEMPT_RECORDING: rec.consumer()})


async def _dialling(
    sessions: async_sessionmaker[AsyncSession], clock: VirtualClock, sim: PbxSimulator, sid: int
) -> DialerEngine:
    """The first run: a dialer with no recordings worker, its one specialist ready."""
    first = make_engine(sessions, clock, [("pbx1", sim)])
    await first.start()
    await first.wait_connected()
    await DialerService(first).start_campaign("renewal")
    await DialerService(first).sign_in(sid, ready=True)
    return first


async def _recordings_rows(sessions: async_sessionmaker[AsyncSession]) -> list[Recording]:
    async with sessions() as s:
        return list((await s.scalars(select(Recording))).all())


async def _relay_until_ingested(
    relay: OutboxRelay,
    rec: Recordings,
    sessions: async_sessionmaker[AsyncSession],
    clock: VirtualClock,
) -> None:
    for _ in range(20):
        await relay.run_once()
        if await _recordings_rows(sessions):
            break
    await settle(rec.ingest, clock)


async def test_a_kill_between_hang_up_and_ingest_is_recovered_from_the_durable_message(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    clock = VirtualClock(MONDAY_0930 + timedelta(minutes=30))
    async with sessions() as s:
        (sid,), (lead,) = await seed(s, specialists=1, leads=[("renewal", "0", 0)])  # 3 s talk
    monitor = tmp_path / "monitor"
    sim = PbxSimulator(clock=clock, users={"dialer": "secret"}, monitor_dir=monitor, seed=1)
    await sim.start("127.0.0.1", 0)
    try:
        # The first run has no recordings worker at all: whatever it held in memory about the
        # call dies with it once the result is committed.
        first = await _dialling(sessions, clock, sim, sid)

        async def hung_up() -> bool:
            a = await _attempt(sessions)
            return a is not None and a.ended_at is not None

        await Driver(clock, sessions).until(hung_up)
        await first.stop(grace=0)  # killed after the hang-up, before any ingest
    finally:
        await sim.stop()
    (wav,) = list(monitor.glob("*.wav"))
    assert await _recordings_rows(sessions) == []
    async with sessions() as s:
        (message,) = (
            await s.scalars(
                select(OutboxMessage).where(OutboxMessage.topic == TOPIC_ATTEMPT_RECORDING)
            )
        ).all()
    assert message.state == "pending" and message.payload["recording"].endswith(wav.name)

    rec = _recordings(sessions, clock, tmp_path)  # the restart
    await rec.ingest.start()
    relay = _relay(engine, clock, rec)
    try:
        await _relay_until_ingested(relay, rec, sessions, clock)
    finally:
        await relay.sink.close()
        await rec.ingest.stop()

    attempt = await _attempt(sessions)
    assert attempt is not None
    (row,) = await _recordings_rows(sessions)
    assert (row.attempt_id, row.lead_id, row.specialist_id) == (attempt.attempt_id, lead, sid)
    assert row.status == "stored", row.error
    assert not wav.exists()
    async with sessions() as s:
        done = await s.get(OutboxMessage, message.id)
    assert done is not None and (done.state, done.sink) == ("delivered", "recordings")


async def test_the_recording_of_a_call_cut_off_by_a_kill_is_ingested_and_linked_after_restart(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    clock = VirtualClock(MONDAY_0930 + timedelta(minutes=30))
    async with sessions() as s:
        (sid,), (lead,) = await seed(s, specialists=1, leads=[("renewal", "7", 0)])  # ~57 s
    monitor = tmp_path / "monitor"
    sim = PbxSimulator(clock=clock, users={"dialer": "secret"}, monitor_dir=monitor, seed=1)
    await sim.start("127.0.0.1", 0)
    try:
        first = await _dialling(sessions, clock, sim, sid)

        async def named() -> bool:
            a = await _attempt(sessions)
            return a is not None and a.recording_file is not None

        await Driver(clock, sessions).until(
            named
        )  # the file is named on the attempt while the call goes on
        await first.stop(grace=0)  # killed in the middle of the call

        # The PBX finishes the call without us and MixMonitor closes the file.
        await Driver(clock, sessions).until(lambda: any(monitor.glob("*.wav")))
        (wav,) = list(monitor.glob("*.wav"))
        attempt = await _attempt(sessions)
        assert attempt is not None and attempt.ended_at is None
        assert attempt.recording_file is not None and attempt.recording_file.endswith(wav.name)

        rec = _recordings(sessions, clock, tmp_path)
        await rec.ingest.start()
        second = make_engine(sessions, clock, [("pbx1", sim)])
        relay = _relay(engine, clock, rec)
        try:
            await second.start()

            async def ended() -> bool:
                a = await _attempt(sessions)
                return a is not None and a.ended_at is not None

            await Driver(clock, sessions).until(ended)
            await _relay_until_ingested(relay, rec, sessions, clock)
        finally:
            await second.stop()
            await relay.sink.close()
            await rec.ingest.stop()
    finally:
        await sim.stop()

    attempt = await _attempt(sessions)
    assert attempt is not None and attempt.unknown and attempt.ended_at is not None
    async with sessions() as s:
        (row,) = (await s.scalars(select(Recording))).all()
    assert (row.attempt_id, row.lead_id, row.specialist_id) == (attempt.attempt_id, lead, sid)
    assert row.outcome == "unknown" and row.status == "stored", row.error
    assert row.source_name == wav.name and not wav.exists()
    report = await rec.service.check(verify_checksums=True)
    assert report.unlinked_monitor_files == []


async def test_check_reports_a_monitor_file_that_belongs_to_nothing_with_what_to_do(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    clock = VirtualClock(MONDAY_0930)
    rec = _recordings(sessions, clock, tmp_path)
    async with sessions() as s:
        (sid,), (lead,) = await seed(s, specialists=1, leads=[("renewal", "0", 0)])
        s.add(
            CallAttempt(
                attempt_id="att-live",
                lead_id=lead,
                number="+8613900000000",
                specialist_id=sid,
                mode="seat_first",
                campaign_kind="renewal",
                ami_server="pbx1",
                state="answered",
                recording_file="/var/spool/asterisk/monitor/1795779201.0.wav",
                created_at=clock.now(),
            )
        )
        await s.commit()
    write_call_wav(tmp_path / "monitor" / "1795779201.0.wav", [(1.0, 0.5)])  # being recorded
    write_call_wav(tmp_path / "monitor" / "1795779999.7.wav", [(1.0, 0.5)])  # nobody's
    assert (await rec.service.check()).ok is False
    report = await rec.service.check()
    assert [f["file"] for f in report.unlinked_monitor_files] == ["1795779999.7.wav"]


def test_the_check_command_names_the_unlinked_file_and_what_to_do(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", db_url)
    monkeypatch.setenv("CALLCENTER_DATA_DIR", str(tmp_path))
    from callcenter.settings import Settings

    monitor = Settings().effective_monitor_dir
    assert cli_main(["recordings", "check", "--no-checksums"]) == 0
    assert "files in the monitor folder that belong to no call: 0" in capsys.readouterr().out
    write_call_wav(monitor / "1795779999.7.wav", [(0.5, 0.5)])
    assert cli_main(["recordings", "check", "--no-checksums"]) == 1
    out = capsys.readouterr().out
    assert "files in the monitor folder that belong to no call: 1" in out
    assert "1795779999.7.wav" in out and "callcenter recordings ingest" in out
