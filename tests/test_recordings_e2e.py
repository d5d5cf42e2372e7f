"""The simulator's WAV for an answered call, through ingest, out of the review API."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from pydub import AudioSegment
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.web import create_app
from crm_sync.models import OutboxMessage
from crm_sync.outbox import TOPIC_ATTEMPT_RECORDING
from crm_sync.sinks import Outgoing, VerdictKind
from dialer.simulator.pbx import MONITOR_SPOOL
from dialer.simulator.wav import write_recording
from recordings.config import RecordingSettings
from recordings.ingest import RecordingJob
from recordings.models import Recording
from recordings.store import LocalStore
from recordings.wiring import Recordings, build_recordings
from schedules.clock import VirtualClock
from tests.test_recordings_helpers import make_lead, make_user, settle


def _recordings(
    tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> tuple[VirtualClock, Recordings]:
    clock = VirtualClock(datetime(2026, 1, 5, 2, 0, tzinfo=UTC))
    rec = build_recordings(
        RecordingSettings(stable_interval=0.5, stable_checks=2, workers=1),
        sessions=sessions,
        clock=clock,
        recordings_dir=tmp_path / "recordings",
        monitor_dir=tmp_path / "monitor",
    )
    return clock, rec


async def test_simulated_answered_call_is_stored_linked_and_playable_by_its_specialist(
    tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock, rec = _recordings(tmp_path, sessions)
    uid, token = await make_user(sessions, "8001", "specialist")
    _, other_token = await make_user(sessions, "8002", "specialist")
    lead = await make_lead(sessions, owner_id=uid)
    await rec.ingest.start()
    try:
        write_recording(tmp_path / "monitor" / "1795781502.0.wav", 4.96)
        rid = await rec.ingest.submit(
            RecordingJob(
                attempt_id="att-001",
                lead_id=lead,
                specialist_id=uid,
                wav_path=f"{MONITOR_SPOOL}/1795781502.0.wav",
                outcome="answered",
                ended_at=clock.now(),
                talk_seconds=4.96,
            )
        )
        await settle(rec.ingest, clock)
    finally:
        await rec.ingest.stop()

    async with sessions() as s:
        link = (await s.scalars(select(OutboxMessage))).one()
    assert link.payload["url"] == f"/api/recordings/{rid}/audio"

    app = create_app(sessions, [])
    containerish = type("C", (), {"route_tables": [], "cleanup_contexts": [], "app_values": {}})()
    rec.install(containerish)
    for table in containerish.route_tables:
        app.add_routes(table)
    for key, value in containerish.app_values.items():
        app[key] = value
    async with TestClient(TestServer(app)) as client:
        mine = {"Authorization": f"Bearer {token}"}
        listing = await (await client.get("/api/recordings", headers=mine)).json()
        assert [i["id"] for i in listing["items"]] == [rid]
        whole = await client.get(link.payload["url"], headers=mine)
        assert whole.status == 200
        body = await whole.read()
        store = rec.service.store
        assert isinstance(store, LocalStore)
        decoded = AudioSegment.from_file(store.path(f"2026/01/05/{rid}-att-001.mp3"))
        assert abs(len(decoded) / 1000 - 4.96) <= 0.1
        part = await client.get(link.payload["url"], headers={**mine, "Range": "bytes=100-199"})
        assert part.status == 206 and await part.read() == body[100:200]
        other = {"Authorization": f"Bearer {other_token}"}
        assert (await client.get(link.payload["url"], headers=other)).status == 404


async def test_an_attempt_recording_message_queues_the_recording_once_and_a_bad_one_is_parked(
    tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock, rec = _recordings(tmp_path, sessions)
    lead = await make_lead(sessions)
    consumer = rec.consumer()

    def message(mid: int, attempt: str, lead_id: int) -> Outgoing:
        payload = {
            "attempt_id": attempt,
            "lead_id": lead_id,
            "specialist_id": None,
            "outcome": "answered_hung_up_early",
            "ended_at": clock.now().isoformat(),
            "talk_seconds": 1.02,
            "recording": f"{MONITOR_SPOOL}/1795779201.0.wav",
        }
        return Outgoing(mid, TOPIC_ATTEMPT_RECORDING, f"attempt:{attempt}", payload, clock.now())

    await rec.ingest.start()
    try:
        write_recording(tmp_path / "monitor" / "1795779201.0.wav", 1.02)
        first = await consumer.deliver(message(1, "att-1", lead))
        again = await consumer.deliver(message(1, "att-1", lead))  # the relay's "at least once"
        unknown_lead = await consumer.deliver(message(2, "att-2", lead + 1000))
        await settle(rec.ingest, clock)
    finally:
        await rec.ingest.stop()
    assert (first.kind, again.kind) == (VerdictKind.DELIVERED, VerdictKind.DELIVERED)
    assert unknown_lead.kind == VerdictKind.PARK and "att-2" in unknown_lead.detail
    async with sessions() as s:
        rows = (await s.scalars(select(Recording))).all()
    assert [(r.attempt_id, r.status, r.outcome) for r in rows] == [
        ("att-1", "stored", "answered_hung_up_early")
    ]
