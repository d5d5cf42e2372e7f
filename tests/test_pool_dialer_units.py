"""The pooled campaigns' unit (`dialer.pool_dialer.PoolDialer`) with fakes: no database, no
PBX. A fake claim hands out calls, a fake link records the AMI actions, the bus carries the
events the call tracker would publish. The pacer asked, the guard applied, an answer given
to the member free longest or to one who frees up within the 2 s, a pause or a sign-out
held (and shown in the seat's view, what the seat page reads)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from dialer.ami.supervisor import AmiConfig
from dialer.campaigns import CallingWindows, CampaignInfo
from dialer.domain import CustomerWaiting, SeatChanged, SendCall
from dialer.models import SeatState
from dialer.pool import PacingSettings, pacing_limits
from dialer.pool_dialer import PoolDialer
from dialer.predictive import Pacer
from dialer.queues import AutomaticQueues
from dialer.runtime import DialerRuntime
from dialer.seat_commands import SeatCommands
from dialer.seats import Seat, seat_view
from dialer.state import AmiServerSpec, DialerConfig, LiveCall, PbxServer
from schedules.clock import VirtualClock
from schedules.windows import CallingPlan

NOW = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai: a window is open
CAMP = CampaignInfo(
    7, "lapsed", "lapsed", "customer_first", True, 10, "carrier", 30, 5.0, None, None,
    pooled=True, pacing="predictive", pacing_ratio_cap=2.0,
)  # fmt: skip


class FakeReply:
    ok = True

    def get(self, _key: str) -> str | None:
        return None


class FakeLink:
    connected = True

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send(self, action: str, headers: dict[str, Any], **_: Any) -> FakeReply:
        self.sent.append((action, dict(headers)))
        return FakeReply()


class FakeRegistry:
    def get(self, campaign_id: int) -> CampaignInfo | None:
        return CAMP if campaign_id == CAMP.id else None


def _unit(members: int) -> tuple[PoolDialer, DialerRuntime, list[LiveCall], FakeLink]:
    clock = VirtualClock(NOW)
    config = DialerConfig()
    spec = AmiServerSpec("pbx1", AmiConfig())
    rt = DialerRuntime(None, clock, [spec], config, CallingWindows(CallingPlan(), config))  # type: ignore[arg-type]
    rt.running = True
    link = FakeLink()
    rt.servers["pbx1"].link = link  # type: ignore[assignment]
    sent: list[LiveCall] = []

    async def send(cmd: SendCall) -> None:
        sent.append(cmd.live)

    rt.bus.register(SendCall, send)
    claimed = iter(range(1000))

    async def claim(camp: CampaignInfo, server: PbxServer, n: int, _q: Any) -> list[LiveCall]:
        return [
            LiveCall(f"att-{i}", i, f"+86138{i:08d}", "Asia/Shanghai", camp.kind,
                     camp.mode, server.spec.name, camp.id)
            for i in (next(claimed) for _ in range(n))
        ]  # fmt: skip

    prepared = AutomaticQueues(lock=False, daily_cap=None)
    pool = PoolDialer(rt, FakeRegistry(), claim, prepared)  # type: ignore[arg-type]
    pool.members[CAMP.id] = {sid: "always" for sid in range(1, members + 1)}
    pool._members_at[CAMP.id] = clock.monotonic()  # fresh: no database read
    pool._open[CAMP.id] = True  # inside the window already
    pool._ledger_at[CAMP.id] = clock.monotonic()  # the day's record just read
    pool.pacers[CAMP.id] = Pacer(pacing_limits(_settings(), 0.03))
    for sid in range(1, members + 1):
        since = NOW - timedelta(seconds=60 - sid)  # 1 has waited longest
        rt.seats[sid] = Seat(sid, f"PJSIP/{8100 + sid}", state=SeatState.READY, since=since)
    return pool, rt, sent, link


class FakePreClaims:
    async def drop(self, _specialist_id: int, _why: str) -> None:
        pass


class FakeSeatDialer:
    """What SeatCommands asks of the seat dialer: wake a seat, drop its pre-claim."""

    def __init__(self) -> None:
        self.woken: list[int] = []
        self.pre = FakePreClaims()

    def wake(self, specialist_id: int) -> None:
        self.woken.append(specialist_id)


class FakeSeatStore:
    def __init__(self) -> None:
        self.flushes = 0

    async def flush(self) -> None:
        self.flushes += 1


def _commands(pool: PoolDialer, rt: DialerRuntime) -> tuple[SeatCommands, FakeSeatDialer]:
    dialer = FakeSeatDialer()
    commands = SeatCommands(rt, dialer, FakeSeatStore())  # type: ignore[arg-type]
    commands.hold_pause = lambda seat: not pool.may_pause(seat)  # as the engine wires it
    return commands, dialer


def _settings() -> PacingSettings:
    return PacingSettings(True, "predictive", CAMP.pacing_ratio_cap, 0.02, 0.03)


def _certain(pacer: Pacer, answers: int) -> None:
    """Estimates the pacer trusts (a 35 % answer rate), and a day with room for abandons."""
    for i in range(200):
        pacer.estimates.attempt_ended(answered=i % 20 < 7, ring_seconds=8.0)
    for _ in range(100):
        pacer.estimates.talk_ended(120.0)
        pacer.estimates.wrap_ended(10.0)
    for _ in range(answers):
        pacer.ledger.record(NOW.date(), abandoned=False)
    pacer.gain = 3.0  # the drop-rate controller after a day of answers without abandons


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_uncertain_estimates_place_one_call_per_free_member() -> None:
    pool, _rt, sent, _ = _unit(members=3)
    assert await pool.round(CAMP) == 3
    await _settle()
    assert len(sent) == 3 and pool.decisions[CAMP.id].reason == "estimates uncertain"
    assert await pool.round(CAMP) == 0  # each free member covered once


async def test_certain_estimates_call_ahead_within_the_ratio_cap() -> None:
    pool, _rt, _sent, _ = _unit(members=3)
    _certain(pool.pacers[CAMP.id], answers=400)
    n = await pool.round(CAMP)
    assert pool.decisions[CAMP.id].mode.value == "predictive"
    assert 3 < n <= 6  # ahead of the 3 free members, never above 2 x 3 in flight
    assert await pool.round(CAMP) <= 6 - n


async def test_a_day_with_no_abandon_budget_stays_progressive_whatever_the_model() -> None:
    pool, _rt, _sent, _ = _unit(members=3)
    _certain(pool.pacers[CAMP.id], answers=0)  # no answers today: no call may go uncovered
    assert await pool.round(CAMP) == 3


async def test_an_answer_goes_to_the_member_free_longest_by_setvar_and_redirect() -> None:
    pool, rt, _sent, link = _unit(members=2)
    await pool.round(CAMP)
    live = next(iter(rt.live.values()))
    rt.bus.publish(CustomerWaiting("pbx1", live.attempt_id, "PJSIP/carrier-00000001"))
    await _settle()
    assert live.specialist_id == 1 and rt.seats[1].state is SeatState.RINGING
    assert [a for a, _ in link.sent] == ["Setvar", "Setvar", "Redirect"]
    assert link.sent[0][1]["Value"] == "8101" and link.sent[2][1]["Exten"] == "connect-seat"


async def test_an_answer_waits_for_a_member_who_frees_up_within_the_grace() -> None:
    pool, rt, _sent, link = _unit(members=1)
    await pool.round(CAMP)
    seat = rt.seats[1]
    rt.record(seat, seat.dial(NOW, "att-other"))  # busy with something else
    live = next(iter(rt.live.values()))
    rt.bus.publish(CustomerWaiting("pbx1", live.attempt_id, "PJSIP/carrier-00000001"))
    assert live.specialist_id is None and live.attempt_id in pool.waiting
    t = seat.call_end(NOW, 0.0)  # free again within the 2 s
    rt.bus.publish(SeatChanged(1, t))
    await _settle()
    assert live.specialist_id == 1 and [a for a, _ in link.sent][-1] == "Redirect"


async def test_a_free_member_covering_a_ringing_call_may_not_pause_yet() -> None:
    pool, rt, _sent, _ = _unit(members=1)
    assert pool.may_pause(rt.seats[1])  # nothing ringing yet
    await pool.round(CAMP)
    assert not pool.may_pause(rt.seats[1])  # the call placed for them would be abandoned
    rt.seats[1].pending_pause = "lunch"  # held by SeatCommands.pause
    pool.release_held()
    assert rt.seats[1].state is SeatState.READY
    rt.live.clear()
    pool.mine.clear()  # the call settled
    pool.release_held()
    assert rt.seats[1].state is SeatState.PAUSED


async def test_a_held_pause_shows_in_the_seat_view_and_starts_when_the_calls_settle() -> None:
    pool, rt, _sent, _ = _unit(members=1)
    commands, _dialer = _commands(pool, rt)
    heard: list[SeatState] = []
    rt.bus.subscribe(SeatChanged, lambda e: heard.append(e.transition.to_state))
    await pool.round(CAMP)
    view = seat_view(await commands.pause(1, "lunch"))
    assert view["state"] == "ready" and view["pending_pause"] == "lunch"
    assert view["pending_sign_out"] is False and heard == []
    assert await pool.round(CAMP) == 0  # no new call is placed for a member leaving
    rt.live.clear()
    pool.mine.clear()  # the call settled unanswered
    pool.release_held()
    assert heard == [SeatState.PAUSED] and seat_view(rt.seats[1])["pending_pause"] is None


async def test_ready_takes_a_held_pause_back() -> None:
    pool, rt, _sent, _ = _unit(members=1)
    commands, dialer = _commands(pool, rt)
    await pool.round(CAMP)
    await commands.pause(1, "lunch")
    view = seat_view(await commands.set_ready(1))
    assert view["state"] == "ready" and view["pending_pause"] is None and dialer.woken == [1]


async def test_a_held_sign_out_takes_the_next_answer_then_signs_the_member_out() -> None:
    pool, rt, _sent, _ = _unit(members=1)
    commands, _dialer = _commands(pool, rt)
    await pool.round(CAMP)
    seat = await commands.sign_out(1)
    view = seat_view(seat)
    assert view["state"] == "ready" and view["pending_sign_out"] is True
    live = next(iter(rt.live.values()))
    rt.bus.publish(CustomerWaiting("pbx1", live.attempt_id, "PJSIP/carrier-00000001"))
    await _settle()
    assert live.specialist_id == 1 and seat.state is SeatState.RINGING  # not abandoned
    seat.answer(NOW)
    rt.record(seat, seat.call_end(NOW, 30.0))
    assert seat_view(seat)["pending_sign_out"] is True  # shown through the wrap-up
    rt.record(seat, seat.wrap_done(NOW))
    assert seat.state is SeatState.OFFLINE


async def test_a_held_sign_out_happens_when_the_calls_settle_unanswered() -> None:
    pool, rt, _sent, _ = _unit(members=1)
    commands, _dialer = _commands(pool, rt)
    await pool.round(CAMP)
    await commands.sign_out(1)
    pool.release_held()
    assert rt.seats[1].state is SeatState.READY  # still covering the ringing call
    rt.live.clear()
    pool.mine.clear()
    pool.release_held()
    assert rt.seats[1].state is SeatState.OFFLINE


async def test_a_member_not_covering_any_call_signs_out_at_once() -> None:
    pool, rt, _sent, _ = _unit(members=1)
    commands, _dialer = _commands(pool, rt)
    seat = await commands.sign_out(1)  # nothing ringing for the pool
    assert seat.state is SeatState.OFFLINE and seat_view(seat)["pending_sign_out"] is False
