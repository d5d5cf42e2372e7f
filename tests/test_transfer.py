"""Callback key 2 handed to a free specialist during the call (dialer.transfer): the seat
choice, the tracker's view of the redirected call, the result, and the Setvar + Redirect
over real TCP against the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.models import Lead
from dialer import queues
from dialer.ami import events as ev
from dialer.ami.connection import AmiConnection, Reply
from dialer.ami.exceptions import AmiTimeout
from dialer.ami.protocol import HeaderValue, Message
from dialer.calls import CallResult, CallTracker, KeyPress, Mode, Outcome
from dialer.models import CallAttempt, SeatState
from dialer.results import Finished, dispose, record_result
from dialer.seats import Seat
from dialer.simulator import PbxSimulator
from dialer.transfer import (
    TransferFailed,
    choose_seat,
    connect_now,
    seat_endpoint,
    wants_specialist,
)
from schedules.clock import VirtualClock
from schedules.retry import RetryConfig
from schedules.windows import CallingHours
from tests.test_dialer_support import seed

MONDAY_1000 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # 10:00 Shanghai

# --- the seat choice (pure) -------------------------------------------------------------------


def _seat(sid: int, state: SeatState, since_minutes: float, attempt: str | None = None) -> Seat:
    return Seat(
        sid,
        f"PJSIP/{8000 + sid}",
        state=state,
        since=MONDAY_1000 - timedelta(minutes=since_minutes),
        attempt_id=attempt,
    )


def test_the_lead_owners_seat_is_chosen_when_it_is_free() -> None:
    seats = [_seat(1, SeatState.READY, 30), _seat(2, SeatState.READY, 1)]
    chosen = choose_seat(seats, owner_id=2)
    assert chosen is not None and chosen.specialist_id == 2


def test_otherwise_the_seat_ready_the_longest_is_chosen() -> None:
    seats = [
        _seat(1, SeatState.READY, 5),
        _seat(2, SeatState.ON_CALL, 60),  # the owner, busy
        _seat(3, SeatState.READY, 20),
        _seat(4, SeatState.READY, 90, attempt="att-preview"),  # a preview offered
        _seat(5, SeatState.PAUSED, 120),
    ]
    chosen = choose_seat(seats, owner_id=2)
    assert chosen is not None and chosen.specialist_id == 3


def test_no_free_seat_means_no_choice() -> None:
    seats = [_seat(1, SeatState.WRAP_UP, 5), _seat(2, SeatState.RINGING, 1)]
    assert choose_seat(seats, owner_id=None) is None
    assert choose_seat([], owner_id=1) is None


def test_seat_endpoint_and_the_key_that_asks_for_a_specialist() -> None:
    assert seat_endpoint("PJSIP/8001") == "8001"
    assert seat_endpoint("Local/8002@seats") == "8002"
    assert wants_specialist("2") and not wants_specialist("1") and not wants_specialist(None)


# --- connect_now with a fake send -------------------------------------------------------------


class FakeSend:
    """Records actions; answers each with the next scripted reply (or raises it)."""

    def __init__(self, *replies: Reply | Exception) -> None:
        self.replies = list(replies)
        self.sent: list[tuple[str, dict[str, HeaderValue]]] = []

    async def __call__(
        self,
        action: str,
        headers: dict[str, HeaderValue] | None = None,
        **_: object,
    ) -> Reply:
        self.sent.append((action, dict(headers or {})))
        reply = self.replies.pop(0) if self.replies else _reply("Success")
        if isinstance(reply, Exception):
            raise reply
        return reply


def _reply(response: str, message: str = "") -> Reply:
    return Reply(Message((("Response", response), ("Message", message))))


async def test_connect_now_sets_the_seat_then_redirects_to_connect_seat() -> None:
    send = FakeSend()
    await connect_now(send, "PJSIP/carrier-00000003", "PJSIP/8001", seat_timeout=7)
    assert send.sent == [
        ("Setvar", {"Channel": "PJSIP/carrier-00000003", "Variable": "SEAT", "Value": "8001"}),
        ("Setvar", {"Channel": "PJSIP/carrier-00000003", "Variable": "SEAT_TIMEOUT", "Value": 7}),
        (
            "Redirect",
            {
                "Channel": "PJSIP/carrier-00000003",
                "Context": "dialer",
                "Exten": "connect-seat",
                "Priority": 1,
            },
        ),
    ]


async def test_a_refused_setvar_stops_before_the_redirect() -> None:
    send = FakeSend(_reply("Error", "No such channel"))
    with pytest.raises(TransferFailed) as err:
        await connect_now(send, "PJSIP/carrier-00000003", "PJSIP/8001")
    assert not err.value.sent and "No such channel" in err.value.reason
    assert [a for a, _ in send.sent] == ["Setvar"]


async def test_a_redirect_without_an_answer_has_an_unknown_fate() -> None:
    send = FakeSend(_reply("Success"), _reply("Success"), AmiTimeout("Redirect timed out"))
    with pytest.raises(TransferFailed) as err:
        await connect_now(send, "PJSIP/carrier-00000003", "PJSIP/8001")
    assert err.value.sent, "the seat may ring: it must stay held until the call ends"
    send = FakeSend(_reply("Success"), _reply("Success"), _reply("Error", "Redirect failed"))
    with pytest.raises(TransferFailed) as err:
        await connect_now(send, "PJSIP/carrier-00000003", "PJSIP/8001")
    assert not err.value.sent and "Redirect failed" in err.value.reason


# --- the tracker on a synthetic redirected call ------------------------------------------------

CUST = "PJSIP/carrier-00000001"
SEAT = "PJSIP/8001-00000002"


def _e(name: str, **headers: str) -> ev.AmiEvent:
    return ev.parse_event(Message((("Event", name), *headers.items())))


def _chan(name: str, uid: str, state: str = "6") -> dict[str, str]:
    return {"Channel": name, "ChannelState": state, "Uniqueid": uid, "Linkedid": "att-1"}


def _dest(name: str, uid: str) -> dict[str, str]:
    return {"DestChannel": name, "DestUniqueid": uid, "DestLinkedid": "att-1"}


def _answered_callback(tracker: CallTracker) -> list[tuple[ev.AmiEvent, float]]:
    tracker.register(
        "att-1",
        Mode.APPLICATION,
        number="13800000019",
        started_at=0.0,
        channel="PJSIP/13800000019@carrier",
        channel_id="att-1",
    )
    return [
        (_e("Newchannel", **_chan(CUST, "att-1", "0")), 0.0),
        (_e("DialBegin", **_dest(CUST, "att-1"), DialString="13800000019@carrier"), 0.0),
        (_e("Newstate", **_chan(CUST, "att-1", "5")), 0.1),
        (_e("Newstate", **_chan(CUST, "att-1")), 2.0),
        (_e("DialEnd", **_dest(CUST, "att-1"), DialStatus="ANSWER"), 2.0),
        (
            _e("OriginateResponse", ActionID="att-1", Response="Success", Channel=CUST,
               Context="dialer", Exten="callback", Reason="4", Uniqueid="att-1"),
            2.0,
        ),
        (
            _e("UserEvent", **_chan(CUST, "att-1"), UserEvent="CallbackResult", Key="2",
               ReadStatus="OK"),
            6.0,
        ),
    ]  # fmt: skip


def _seat_leg(answer: bool) -> list[tuple[ev.AmiEvent, float]]:
    evs = [
        (_e("VarSet", **_chan(CUST, "att-1"), Variable="SEAT", Value="8001"), 6.1),
        (
            _e("VarSet", **_chan(CUST, "att-1"), Variable="MIXMONITOR_FILENAME",
               Value="/var/spool/asterisk/monitor/att-1.wav"),
            6.2,
        ),
        (_e("Newchannel", **_chan(SEAT, "9.2", "0")), 6.2),
        (
            _e("DialBegin", **_chan(CUST, "att-1"), **_dest(SEAT, "9.2"), DialString="8001"),
            6.2,
        ),
    ]  # fmt: skip
    if not answer:
        return [
            *evs,
            (_e("DialEnd", **_chan(CUST, "att-1"), **_dest(SEAT, "9.2"), DialStatus="NOANSWER"),
             16.2),
            (_e("Hangup", **_chan(SEAT, "9.2", "5"), Cause="0"), 16.2),
            (_e("Hangup", **_chan(CUST, "att-1"), Cause="16"), 19.0),
        ]  # fmt: skip
    bridge = {"BridgeUniqueid": "b-1"}
    return [
        *evs,
        (_e("Newstate", **_chan(SEAT, "9.2")), 7.0),
        (_e("DialEnd", **_chan(CUST, "att-1"), **_dest(SEAT, "9.2"), DialStatus="ANSWER"), 7.0),
        (_e("BridgeEnter", **_chan(SEAT, "9.2"), **bridge), 7.0),
        (_e("BridgeEnter", **_chan(CUST, "att-1"), **bridge), 7.0),
        (_e("BridgeLeave", **_chan(CUST, "att-1"), **bridge), 37.0),
        (_e("Hangup", **_chan(CUST, "att-1"), Cause="16"), 37.0),
        (_e("Hangup", **_chan(SEAT, "9.2"), Cause="16"), 37.0),
    ]  # fmt: skip


def _feed(tracker: CallTracker, events: list[tuple[ev.AmiEvent, float]]) -> list[CallResult]:
    results: list[CallResult] = []
    for event, t in events:
        results += tracker.handle(event, t)
    return results


def test_key_2_on_a_live_call_reaches_the_hook_with_the_channel_to_redirect() -> None:
    keys: list[KeyPress] = []
    tracker = CallTracker(on_key=keys.append)
    assert _feed(tracker, _answered_callback(tracker)) == []
    assert keys == [KeyPress("att-1", "2", CUST, "att-1", Mode.APPLICATION, 6.0)]


def test_the_redirected_call_names_the_seat_and_counts_talk_from_the_bridge() -> None:
    tracker = CallTracker()
    (result,) = _feed(tracker, [*_answered_callback(tracker), *_seat_leg(answer=True)])
    assert (result.outcome, result.key_pressed, result.bridged) == (Outcome.ANSWERED, "2", True)
    assert result.connected_seat == "PJSIP/8001"
    assert result.talk_seconds == pytest.approx(30.0)  # 7.0 -> 37.0, not the menu from 2.0
    assert result.recording == "/var/spool/asterisk/monitor/att-1.wav"
    assert "connected to seat PJSIP/8001" in result.why
    assert tracker.stats()["channels"] == 0


def test_a_seat_that_never_answered_leaves_an_unbridged_answered_call() -> None:
    tracker = CallTracker()
    (result,) = _feed(tracker, [*_answered_callback(tracker), *_seat_leg(answer=False)])
    assert (result.outcome, result.key_pressed, result.bridged) == (Outcome.ANSWERED, "2", False)
    assert result.connected_seat is None
    assert result.talk_seconds == pytest.approx(17.0)  # answer to hang-up


def test_no_hook_for_a_key_read_after_the_customer_is_gone() -> None:
    keys: list[KeyPress] = []
    tracker = CallTracker(on_key=keys.append)
    events = _answered_callback(tracker)
    # A UserEvent queued behind the customer's Hangup (the other channel keeps the call open).
    key_event = events.pop()
    events += [
        (_e("Newchannel", **_chan(SEAT, "9.2", "0")), 3.0),
        (_e("Hangup", **_chan(CUST, "att-1"), Cause="16"), 5.0),
        key_event,
    ]
    _feed(tracker, events)
    assert keys == []


# --- the result (both databases) ---------------------------------------------------------------


async def _callback_attempt(session: AsyncSession, lead: Lead) -> CallAttempt:
    attempt = CallAttempt(
        attempt_id=queues.new_attempt_id(),
        lead_id=lead.id,
        phone_id=lead.phone_id,
        number="+8613900000009",
        mode="automatic",
        campaign_kind="callback",
        ami_server="pbx1",
        created_at=MONDAY_1000,
    )
    session.add(attempt)
    await session.flush()
    return attempt


def _hours(kind: str) -> CallingHours:
    return CallingHours()


async def test_key_2_connected_gives_the_lead_to_that_specialist_not_a_booking(
    session: AsyncSession,
) -> None:
    specs, leads = await seed(session, specialists=2, leads=[("callback", "9", None)])
    lead = await session.get(Lead, leads[0])
    assert lead is not None
    attempt = await _callback_attempt(session, lead)
    fin = Finished(
        attempt.attempt_id, "answered", answered=True, bridged=True, key_pressed="2",
        talk_seconds=30, specialist_id=specs[1], seat="PJSIP/8101",
    )  # fmt: skip
    eff = await record_result(
        session, attempt, fin, now=MONDAY_1000, hours_for=_hours, retry=RetryConfig()
    )
    await session.commit()
    assert not eff.book_specialist and eff.talked and eff.contact_result is None
    assert (eff.specialist_id, attempt.specialist_id, attempt.seat) == (
        specs[1], specs[1], "PJSIP/8101",
    )  # fmt: skip
    assert (lead.owner_id, lead.status) == (specs[1], "assigned")
    assert lead.distributed_on == MONDAY_1000.date()
    # Until the result is set: in that specialist's queue tomorrow, as a booked callback.
    assert lead.next_attempt_at is not None and lead.next_attempt_at > MONDAY_1000
    assert lead.callback_at == lead.next_attempt_at
    assert "waiting for the specialist's contact result" in (attempt.reason or "")
    # The specialist who talked sets the contact result.
    await dispose(
        session, lead.id, specs[1], "renewed", callback_at=None, note=None,
        now=MONDAY_1000 + timedelta(minutes=2), hours_for=_hours,
    )  # fmt: skip
    await session.commit()
    assert (lead.contact_result, lead.status, attempt.contact_result) == (
        "renewed", "closed", "renewed",
    )  # fmt: skip
    assert lead.callback_at is None


async def test_key_2_not_connected_is_booked_for_later_as_before(session: AsyncSession) -> None:
    specs, leads = await seed(session, specialists=1, leads=[("callback", "9", None)])
    lead = await session.get(Lead, leads[0])
    assert lead is not None
    attempt = await _callback_attempt(session, lead)
    # The seat was chosen but never answered: no bridge.
    fin = Finished(
        attempt.attempt_id, "answered", answered=True, key_pressed="2", talk_seconds=17,
        specialist_id=specs[0], seat="PJSIP/8100",
    )  # fmt: skip
    eff = await record_result(
        session, attempt, fin, now=MONDAY_1000, hours_for=_hours, retry=RetryConfig()
    )
    await session.commit()
    assert eff.book_specialist and not eff.talked and eff.contact_result == "callback"
    assert (lead.owner_id, lead.status) == (specs[0], "scheduled")
    assert lead.callback_at is not None and attempt.specialist_id is None


# --- over TCP against the simulator ------------------------------------------------------------


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(MONDAY_1000)


@pytest.fixture
async def sim(clock: VirtualClock) -> AsyncIterator[PbxSimulator]:
    s = PbxSimulator(clock=clock)
    await s.start("127.0.0.1", 0)
    yield s
    await s.stop()


class _Call:
    """One callback Originate tracked live; key 2 hands the customer to `seat`."""

    def __init__(self, sim: PbxSimulator, clock: VirtualClock, seat: str | None) -> None:
        self.clock = clock
        self.seat = seat
        self.conn = AmiConnection(
            sim.host, sim.port, username="dialer", secret="dialer-secret", clock=clock
        )
        self.tracker = CallTracker(on_key=self.on_key)
        self.results: list[CallResult] = []
        self.transfer: asyncio.Task[None] | None = None
        self.error: TransferFailed | None = None

    def on_key(self, press: KeyPress) -> None:
        if self.seat is not None and wants_specialist(press.key):
            self.transfer = asyncio.ensure_future(self.connect(press.channel, self.seat))

    async def connect(self, channel: str, seat: str) -> None:
        try:
            await connect_now(self.conn.send, channel, seat, attempt_id="att-1")
        except TransferFailed as exc:
            self.error = exc

    async def run(self, channel: str) -> CallResult:
        self.conn.subscribe(lambda e: self.results.extend(self.tracker.handle(e, self.mono())))
        await self.conn.connect()
        self.tracker.register(
            "att-1", Mode.APPLICATION, started_at=0.0, channel=channel, channel_id="att-1"
        )
        headers: dict[str, HeaderValue] = {
            "Channel": channel,
            "Context": "dialer",
            "Exten": "callback",
            "Priority": 1,
            "Async": "true",
            "Timeout": 30000,
            "ChannelId": "att-1",
            "Variable": ["ATTEMPT_ID=att-1"],
        }
        assert (await self.conn.send("Originate", headers, action_id="att-1")).ok
        for _ in range(20000):
            if self.results:
                await self.conn.close()
                return self.results[0]
            if self.transfer is not None and not self.transfer.done():
                await self.transfer  # no PBX time passes while the actions are in flight
            else:
                await self.clock.advance(0.05)
        raise AssertionError("the call never ended")

    def mono(self) -> float:
        return self.clock.monotonic()


@pytest.mark.parametrize(
    ("channel", "seat", "device"),
    [
        ("PJSIP/13800000019@carrier", "PJSIP/8001", "PJSIP/8001"),
        ("Local/13800000019@customers", "Local/8001@seats", "Local/8001@seats"),
    ],
)
async def test_key_2_redirected_over_tcp_bridges_the_customer_with_the_seat(
    sim: PbxSimulator, clock: VirtualClock, channel: str, seat: str, device: str
) -> None:
    call = _Call(sim, clock, seat)
    result = await call.run(channel)
    assert call.error is None
    assert sim.action_counts["Setvar"] == 2 and sim.action_counts["Redirect"] == 1
    assert (result.outcome, result.key_pressed) == (Outcome.ANSWERED, "2")
    assert result.attempt_id == "att-1" and result.bridged and result.connected_seat == device
    assert result.recording is not None and result.recording.endswith("att-1.wav")
    # The PBX clock only moved in 0.05 s steps: the talk time is the behaviour's, from the
    # bridge (14 s Local, 4.5 s PJSIP), not the menu before it.
    expected = 14.0 if channel.startswith("Local") else 4.5
    assert result.talk_seconds == pytest.approx(expected, abs=0.2)


async def test_without_a_redirect_the_hold_runs_out_and_nothing_is_bridged(
    sim: PbxSimulator, clock: VirtualClock
) -> None:
    call = _Call(sim, clock, seat=None)
    result = await call.run("PJSIP/13800000019@carrier")
    assert (result.key_pressed, result.bridged, result.connected_seat) == ("2", False, None)
    assert result.outcome is Outcome.ANSWERED
    assert result.talk_seconds is not None and result.talk_seconds > 20  # the 20 s hold


async def test_a_seat_that_does_not_answer_leaves_the_call_unbridged(
    sim: PbxSimulator, clock: VirtualClock
) -> None:
    sim.pbx.unanswered_seats.add("8002")
    call = _Call(sim, clock, seat="PJSIP/8002")
    result = await call.run("PJSIP/13800000019@carrier")
    assert call.error is None and sim.action_counts["Redirect"] == 1
    assert (result.key_pressed, result.bridged, result.connected_seat) == ("2", False, None)
    assert any(c.startswith("PJSIP/8002-") for c in result.channels), "the seat was dialled"


async def test_a_redirect_outside_the_hold_is_refused(
    sim: PbxSimulator, clock: VirtualClock
) -> None:
    conn = AmiConnection(sim.host, sim.port, username="dialer", secret="dialer-secret", clock=clock)
    await conn.connect()
    try:
        with pytest.raises(TransferFailed) as err:
            await connect_now(conn.send, "PJSIP/carrier-0000ffff", "PJSIP/8001")
        assert "No such channel" in err.value.reason and not err.value.sent
        reply = await conn.send("Redirect", {"Channel": "PJSIP/x", "Context": "dialer"})
        assert (reply.ok, reply.get("Message")) == (False, "Exten not specified")
    finally:
        await conn.close()
