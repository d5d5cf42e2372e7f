"""The supervisors' board over HTTP, on SQLite and PostgreSQL, with the wired service and the
PBX simulator over TCP: the live state reaches the board, listening in sends the ChanSpy
Originate of the traces and is logged, a specialist is refused, a call can be hung up or
moved to a free seat."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from callcenter.board.models import BoardEntry, SupervisorAction
from crm_sync.models import Lead
from dialer.exceptions import NotYourLead
from dialer.models import CallAttempt
from dialer.outcomes import ANSWERED_OUTCOMES
from tests.seat_page_support import Site, drive_until, site_fixture  # noqa: F401


async def _board(site: Site) -> dict[str, Any]:
    resp = await site.client.get("/api/board", headers=site.bearer())
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def _talking(site: Site) -> str:
    """王芳 signs in and is ready; her customer (digit 7: a long call) answers. Returns the
    attempt id once the board shows the call answered."""
    wang = site.specialists[0]
    await site.service.dialer.sign_in(wang, ready=True)
    found: dict[str, str] = {}

    async def answered() -> bool:
        calls = (await _board(site))["call"]
        for key, c in calls.items():
            if c["specialist_id"] == wang and c["answered"]:
                found["id"] = key
                return True
        return False

    await drive_until(site.clock, answered)
    return found["id"]


async def test_the_board_shows_a_call_from_start_to_end_and_the_seat_states(site: Site) -> None:
    attempt = await _talking(site)
    board = await _board(site)
    wang = str(site.specialists[0])
    assert board["seat"][wang]["state"] == "on_call"
    call = board["call"][attempt]
    assert call["seat"] == board["seat"][wang]["seat"]
    assert "*" in call["number"], "a wall display shows a masked number"
    assert board["link"]["pbx1"]["connected"] is True
    # It is shared through the database, as another process's board reads it.
    async with site.service.container.sessions() as s:
        row = await s.get(BoardEntry, ("call", attempt))
        assert row is not None and not row.gone

    async def ended() -> bool:
        return attempt not in (await _board(site))["call"]

    await drive_until(site.clock, ended, step=1.0)

    async def wrapping_up() -> bool:
        # The call leaves the board at the hang-up; the seat once the result is written.
        return (await _board(site))["seat"][wang]["state"] == "wrap_up"

    await drive_until(site.clock, wrapping_up, step=0.25)


async def test_listening_in_originates_chanspy_to_the_supervisors_seat_and_is_logged(
    site: Site,
) -> None:
    attempt = await _talking(site)
    seen: list[bytes] = []
    sim_pbx = _sim(site)
    sim_pbx.sinks.add(lambda data, _cls: seen.append(data))
    resp = await site.client.post(
        f"/api/board/calls/{attempt}/whisper", headers=site.bearer(), json={}
    )
    assert resp.status == 200, await resp.text()
    done = await resp.json()
    assert done["status"] == "done" and done["target_seat"] == "PJSIP/8999"
    wang_seat = (await _board(site))["seat"][str(site.specialists[0])]["seat"]
    assert done["channel"].startswith(wang_seat + "-"), "whisper goes to the specialist's leg"

    async def spying() -> bool:
        return any(b"Event: ChanSpyStart" in d for d in seen)

    await drive_until(site.clock, spying)
    spy = next(c for c in sim_pbx.channels.values() if c.name.startswith("PJSIP/8999-"))
    assert (spy.app, spy.appdata) == ("ChanSpy", f"{done['channel']},qwE")
    start = next(d for d in seen if b"Event: ChanSpyStart" in d).decode()
    assert f"SpyeeChannel: {done['channel']}" in start and "SpyerChannel: PJSIP/8999-" in start
    log = await (await site.client.get("/api/board/actions", headers=site.bearer())).json()
    assert [(a["action"], a["attempt_id"], a["status"]) for a in log] == [
        ("whisper", attempt, "done")
    ]
    assert log[0]["specialist_id"] == site.specialists[0]


async def test_a_specialist_may_not_listen_in_nor_read_the_board(site: Site) -> None:
    from tests.seat_page_support import sign_in

    attempt = await _talking(site)
    csrf = await sign_in(site.client, "lina")
    resp = await site.client.post(
        f"/api/board/calls/{attempt}/listen", headers={"X-CSRF-Token": csrf}, json={}
    )
    assert resp.status == 403
    assert (await site.client.get("/api/board")).status == 403
    assert (await site.client.get("/board")).status == 403
    async with site.service.container.sessions() as s:
        assert (await s.scalars(select(SupervisorAction))).all() == []


async def test_a_supervisor_hangs_up_a_call_and_it_ends_by_action(site: Site) -> None:
    attempt = await _talking(site)
    resp = await site.client.post(f"/api/board/calls/{attempt}/hangup", headers=site.bearer())
    assert resp.status == 200, await resp.text()

    async def ended() -> bool:
        return attempt not in (await _board(site))["call"]

    await drive_until(site.clock, ended)
    outcome: dict[str, str | None] = {}

    async def written() -> bool:
        # The call leaves the board at the hang-up; its result is written just after.
        async with site.service.container.sessions() as s:
            outcome["v"] = await s.scalar(
                select(CallAttempt.outcome).where(CallAttempt.attempt_id == attempt)
            )
        return outcome["v"] is not None

    await drive_until(site.clock, written)
    assert outcome["v"] == "hung_up_by_action"


async def test_an_action_on_a_call_that_is_not_live_is_a_clear_404(site: Site) -> None:
    resp = await site.client.post("/api/board/calls/att-nope/listen", headers=site.bearer())
    assert resp.status == 404
    assert "ended" in (await resp.json())["error"]


def _sim(site: Site) -> Any:
    return site.sim.pbx


async def free_seat(site: Site) -> str:
    """李娜 signs in ready with nothing to call (her lead is due tomorrow): a free seat."""
    lina = site.specialists[1]
    async with site.service.container.sessions() as s:
        lead = await s.get(Lead, site.leads[1])
        assert lead is not None
        lead.next_attempt_at = site.clock.now() + timedelta(days=1)
        await s.commit()
    await site.service.dialer.sign_in(lina, ready=True)

    async def shown() -> bool:
        return str(lina) in (await _board(site))["seat"]

    await drive_until(site.clock, shown)
    seat: str = (await _board(site))["seat"][str(lina)]["seat"]
    return seat


async def test_a_supervisor_moves_a_call_to_a_free_seat_and_its_result_stays_on_the_attempt(
    site: Site,
) -> None:
    """The Redirect of a bridged customer channel is not in the lab traces (the key-2 one
    moves a channel on hold): the simulator follows Asterisk 22's documented behaviour
    (BridgeLeave, the bridge dissolves, the old seat's leg hangs up, the channel runs
    connect-seat and Dials the new seat); see dialer/simulator/dialplan.py."""
    attempt = await _talking(site)
    wang, lina = site.specialists
    lina_seat = await free_seat(site)
    seen: list[str] = []
    site.sim.pbx.sinks.add(lambda data, _cls: seen.append(data.decode()))
    resp = await site.client.post(
        f"/api/board/calls/{attempt}/move", headers=site.bearer(), json={"to": str(lina)}
    )
    assert resp.status == 200, await resp.text()
    done = await resp.json()
    assert (done["status"], done["target_seat"]) == ("done", lina_seat)
    assert done["channel"].startswith("PJSIP/carrier-"), "the customer's leg is moved"

    async def moved() -> bool:
        board = await _board(site)
        call = board["call"].get(attempt)
        return (
            call is not None
            and call["seat"] == lina_seat
            and board["seat"][str(lina)]["state"] == "on_call"
        )

    await drive_until(site.clock, moved)
    board = await _board(site)
    assert board["seat"][str(wang)]["state"] == "wrap_up", "王芳 talked: she wraps up"
    leave = [e for e in seen if e.startswith("Event: BridgeLeave")]
    assert done["channel"] in leave[0], "the customer leaves the bridge first"
    dial = next(e for e in seen if "Application: Dial" in e and "connect-seat" in e)
    assert f"AppData: {lina_seat}," in dial
    # 李娜 is not the lead's owner: the contact result stays 王芳's to set.
    with pytest.raises(NotYourLead):
        await site.service.dialer.dispose(site.leads[0], lina, "renewed")

    async def written() -> bool:
        async with site.service.container.sessions() as s:
            row = await s.scalar(select(CallAttempt).where(CallAttempt.attempt_id == attempt))
        return row is not None and row.outcome is not None

    await drive_until(site.clock, written, step=1.0)
    await site.service.dialer.dispose(site.leads[0], wang, "renewed")
    async with site.service.container.sessions() as s:
        rows = (
            await s.scalars(select(CallAttempt).where(CallAttempt.lead_id == site.leads[0]))
        ).all()
        lead = await s.get(Lead, site.leads[0])
    assert [r.attempt_id for r in rows] == [attempt], "one attempt, not a new one"
    row = rows[0]
    assert row.outcome in ANSWERED_OUTCOMES and (row.talk_seconds or 0) > 0
    assert (row.specialist_id, row.contact_result) == (wang, "renewed")
    assert lead is not None and lead.owner_id == wang
    log = await (await site.client.get("/api/board/actions", headers=site.bearer())).json()
    assert [(a["action"], a["status"], a["specialist_id"]) for a in log] == [("move", "done", wang)]

    async def lina_wraps_up() -> bool:
        return (await _board(site))["seat"][str(lina)]["state"] in ("wrap_up", "ready")

    await drive_until(site.clock, lina_wraps_up)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_call_is_not_moved_to_a_seat_that_is_not_free_and_the_refusal_is_logged(
    site: Site,
) -> None:
    attempt = await _talking(site)
    lina = site.specialists[1]
    resp = await site.client.post(
        f"/api/board/calls/{attempt}/move", headers=site.bearer(), json={"to": str(lina)}
    )
    assert resp.status == 409
    assert "nobody is signed in" in (await resp.json())["error"]
    assert site.sim.action_counts["Redirect"] == 0, "nothing is sent for a seat that is away"
    # A seat that is busy (here: the call's own) is refused too.
    wang_seat = (await _board(site))["seat"][str(site.specialists[0])]["seat"]
    resp = await site.client.post(
        f"/api/board/calls/{attempt}/move", headers=site.bearer(), json={"to": wang_seat}
    )
    assert resp.status == 409
    log = await (await site.client.get("/api/board/actions", headers=site.bearer())).json()
    assert [(a["action"], a["status"]) for a in log] == [("move", "failed")] * 2
    assert (await _board(site))["call"][attempt]["seat"] == wang_seat, "the call stays put"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_specialist_may_not_move_a_call(site: Site) -> None:
    from tests.seat_page_support import sign_in

    attempt = await _talking(site)
    csrf = await sign_in(site.client, "lina")
    resp = await site.client.post(
        f"/api/board/calls/{attempt}/move",
        headers={"X-CSRF-Token": csrf},
        json={"to": str(site.specialists[1])},
    )
    assert resp.status == 403
