"""A recording whose submission was lost (crash or failed submit between the dialer's result
commit and its `on_attempt_ended` hook) is passed again when the service starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.service import resubmit_lost_recordings
from crm_sync.models import Lead
from dialer import queues
from dialer.engine import AttemptEnded
from dialer.models import CallAttempt
from recordings.models import Recording
from tests.test_dialer_support import seed

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


async def test_an_answered_call_whose_recording_never_reached_recordings_is_submitted_again(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        specs, leads = await seed(s, specialists=1, leads=[("renewal", "0", 0)] * 4)
        lead = await s.get(Lead, leads[0])
        assert lead is not None
        ids = {}
        for i, (name, ended, wav) in enumerate(
            [
                ("lost", NOW - timedelta(hours=2), "lost.wav"),
                ("stored", NOW - timedelta(hours=1), "stored.wav"),
                ("no_recording", NOW - timedelta(hours=1), None),
                ("old", NOW - timedelta(days=3), "old.wav"),
            ]
        ):
            ids[name] = queues.new_attempt_id()
            s.add(
                CallAttempt(
                    attempt_id=ids[name],
                    lead_id=leads[i],
                    number=f"+861390000000{i}",
                    specialist_id=specs[0],
                    seat="PJSIP/8100",
                    mode="seat_first",
                    campaign_kind="renewal",
                    ami_server="pbx1",
                    state="ended",
                    outcome="answered",
                    talk_seconds=30.0,
                    recording_file=wav,
                    created_at=ended - timedelta(minutes=1),
                    ended_at=ended,
                )
            )
        s.add(
            Recording(
                attempt_id=ids["stored"],
                lead_id=leads[1],
                outcome="answered",
                source_name="stored.wav",
                ended_at=NOW - timedelta(hours=1),
            )
        )
        await s.commit()
    passed: list[AttemptEnded] = []

    async def hook(e: AttemptEnded) -> None:
        passed.append(e)

    assert await resubmit_lost_recordings(sessions, hook, NOW) == 1
    (e,) = passed
    assert (e.attempt_id, e.recording, e.specialist_id, e.outcome) == (
        ids["lost"],
        "lost.wav",
        specs[0],
        "answered",
    )
    assert e.ended_at == NOW - timedelta(hours=2)
