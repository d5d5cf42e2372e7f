"""The supervisors' board over HTTP, on SQLite and PostgreSQL, with the wired service and the
PBX simulator over TCP: the live state reaches the board, listening in sends the ChanSpy
Originate of the traces and is logged, a specialist is refused, a call can be hung up."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from callcenter.board.models import BoardEntry, SupervisorAction
from dialer.models import CallAttempt
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


async def test_moving_a_call_sends_the_key2_actions_and_logs_the_refusal(site: Site) -> None:
    """Move = Setvar SEAT, Setvar SEAT_TIMEOUT, Redirect of the customer's channel (as in
    pjsip_key2_redirect_to_seat). The simulator models a Redirect only for a channel on the
    callback's hold, so it refuses this one ("Redirect failed"): the supervisor is told why
    and the audit log keeps the failure."""
    attempt = await _talking(site)
    lina_seat = (await _board(site))["seat"].get(str(site.specialists[1]))
    to = lina_seat["seat"] if lina_seat else "PJSIP/8101"
    resp = await site.client.post(
        f"/api/board/calls/{attempt}/move", headers=site.bearer(), json={"to": to}
    )
    assert resp.status == 409
    assert "Redirect failed" in (await resp.json())["error"]
    assert site.sim.action_counts["Setvar"] == 2 and site.sim.action_counts["Redirect"] == 1
    log = await (await site.client.get("/api/board/actions", headers=site.bearer())).json()
    assert [(a["action"], a["status"], a["target_seat"]) for a in log] == [("move", "failed", to)]
