"""An imported post-underwriting callback list is dialled from its first calling window on
(issue 11, finding 2; node 8 of the desk's process): the real importer (`callcenter import
--kind callback`), the automatic callback campaign, the calls on the simulator over TCP."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.models import Lead
from schedules.clock import VirtualClock
from schedules.config import DeskCalendar
from schedules.timeline_run import run_timeline
from tests.dialing_support import (
    Originates,
    attempts,
    ended,
    record_originates,
    running,
    shanghai,
)
from tests.test_import_cli import cli, cli_env
from tests.test_import_support import row, write_csv
from tests.virtual_time import Driver

__all__ = ["cli_env"]  # the fixture, used by name

# Three newly underwritten customers; the carrier UA answers numbers ending in 0.
ROWS = [
    row("CB001", holder="赵一", holder_phone="13800000110"),
    row("CB002", holder="钱二", holder_phone="13800000120"),
    row("CB003", holder="孙三", holder_phone="13800000130"),
]


async def _leads(sessions: async_sessionmaker[AsyncSession]) -> list[Lead]:
    async with sessions() as s:
        return list((await s.scalars(select(Lead).order_by(Lead.id))).all())


@pytest.mark.usefixtures("cli_env")
async def test_an_imported_callback_list_is_called_from_the_first_window_on(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_csv(tmp_path / "承保回访.csv", ROWS)
    assert await cli("import", str(path), "--kind", "callback") == 0
    leads = await _leads(sessions)
    assert [lead.kind for lead in leads] == ["callback"] * 3
    assert all(lead.owner_id is None for lead in leads)  # nobody's: the automatic campaign's

    clock = VirtualClock(shanghai(9, 29, 50))  # Monday, ten seconds before the window

    drive = Driver(clock, sessions)
    with record_originates(monkeypatch, clock) as seen:
        async with running(sessions, clock) as (_engine, service, _sim):
            await service.start_campaign("callback")
            await drive.until(lambda: _after(clock, shanghai(9, 29, 59)))
            assert seen.sent == []  # the window is not open yet
            await drive.until(lambda: _called(seen, 3))
            await drive.until(lambda: ended(sessions, 3))
    assert sorted(s.variables["LEAD_ID"] for s in seen.sent) == sorted(str(x.id) for x in leads)
    assert {s.exten for s in seen.sent} == {"callback"}
    assert {s.channel for s in seen.sent} == {
        "PJSIP/13800000110@carrier",
        "PJSIP/13800000120@carrier",
        "PJSIP/13800000130@carrier",
    }
    assert all(shanghai(9, 30) <= s.at < shanghai(11, 0) for s in seen.sent)  # the first window
    rows = await attempts(sessions)
    assert {a.campaign_kind for a in rows} == {"callback"} and len(rows) == 3


@pytest.mark.usefixtures("cli_env")
async def test_a_callback_list_imported_as_new_before_the_fix_is_made_due_by_the_timeline(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "承保回访.csv", ROWS[:1])
    assert await cli("import", str(path), "--kind", "callback") == 0
    async with sessions() as s:  # as the importer left such lists before: status new
        await s.execute(update(Lead).values(status="new", due_on=date(2026, 1, 2)))
        await s.commit()
    day, now = date(2026, 1, 5), shanghai(8, 30)  # the daily run
    report = await run_timeline(sessions, day=day, now=now, desk=DeskCalendar())
    assert report.made_due["callback"] == 1
    [lead] = await _leads(sessions)
    assert lead.status == "due" and lead.owner_id is None


async def _called(seen: Originates, n: int) -> bool:
    return len(seen.sent) >= n


async def _after(clock: VirtualClock, when: datetime) -> bool:
    return clock.now() >= when
