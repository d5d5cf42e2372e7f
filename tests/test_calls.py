"""The call tracker: classification, event reordering, reconnects and time-outs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.ami import events as ev
from dialer.ami.events import parse_event
from dialer.ami.protocol import AmiParser, Message
from dialer.calls import (
    CallFacts,
    CallResult,
    CallState,
    CallTracker,
    Mode,
    Outcome,
    Party,
    classify,
    hangup_party,
    infer_mode,
)
from dialer.domain import CallBridged, PbxShuttingDown, RecordingNamed
from dialer.replay import Replayer

FIXTURES = Path(__file__).parent / "fixtures" / "ami"

Timed = list[tuple[Message, float]]


def load(trace: str) -> tuple[Timed, Timed]:
    """(actions sent, messages received), each with its timeline time."""
    ami = (FIXTURES / f"{trace}.ami").read_bytes()
    actions = (FIXTURES / f"{trace}.actions").read_bytes()
    sent: Timed = []
    received: Timed = []
    recv_parser = AmiParser()
    send_parser = AmiParser(expect_banner=False)
    for line in (FIXTURES / f"{trace}.timeline.jsonl").read_text().splitlines():
        entry = json.loads(line)
        off, length, t = entry["off"], entry["len"], entry["t"]
        if entry["dir"] == "send":
            sent += [(m, t) for m in send_parser.feed(actions[off : off + length])]
        else:
            received += [(m, t) for m in recv_parser.feed(ami[off : off + length])]
    return sent, received


def run(sent: Timed, received: Timed, **tracker_options: float) -> list[CallResult]:
    rep = Replayer(**tracker_options)
    for msg, t in sent:
        rep.action(msg, t)
    for msg, t in received:
        rep.message(msg, t)
    return rep.finish(received[-1][1] if received else None)


def outcomes(results: list[CallResult]) -> list[tuple[str | None, Outcome]]:
    return [(r.attempt_id, r.outcome) for r in results]


# --- classify (pure) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (CallFacts(sync_error="Originate failed"), Outcome.FAILED),
        (CallFacts(originate_response="Failure", originate_reason=0), Outcome.FAILED),
        (CallFacts(), Outcome.UNKNOWN),
        (CallFacts(customer_dialled=True, answered=True, talk_seconds=30.0), Outcome.ANSWERED),
        (CallFacts(customer_dialled=True, answered=True, talk_seconds=None), Outcome.ANSWERED),
        (
            CallFacts(customer_dialled=True, answered=True, talk_seconds=1.0),
            Outcome.ANSWERED_HUNG_UP_EARLY,
        ),
        (
            CallFacts(
                customer_dialled=True, answered=True, talk_seconds=1.0, hung_up_by=Party.SEAT
            ),
            Outcome.ANSWERED,
        ),
        (
            CallFacts(
                customer_dialled=True, answered=True, talk_seconds=9.0, hung_up_by_action=True
            ),
            Outcome.HUNG_UP_BY_ACTION,
        ),
        # Local channels: the ;2 cause, DialStatus, Reason.
        (CallFacts(customer_dialled=True, cause=17, dial_status="BUSY"), Outcome.BUSY),
        (CallFacts(customer_dialled=True, cause=34, dial_status="CONGESTION"), Outcome.CONGESTION),
        (
            CallFacts(customer_dialled=True, cause=20, dial_status="CHANUNAVAIL"),
            Outcome.UNREACHABLE,
        ),
        (CallFacts(customer_dialled=True, cause=1, dial_status="NOANSWER"), Outcome.WRONG_NUMBER),
        (CallFacts(customer_dialled=True, cause=0, dial_status="NOANSWER"), Outcome.NO_ANSWER),
        (
            CallFacts(
                customer_dialled=True, cause=19, originate_response="Failure", originate_reason=3
            ),
            Outcome.NO_ANSWER,
        ),
        (CallFacts(customer_dialled=True, cause=0, originate_reason=5), Outcome.BUSY),
        (CallFacts(customer_dialled=True, cdr_disposition="NO ANSWER"), Outcome.NO_ANSWER),
        # PJSIP: NOANSWER covers three outcomes; Cause and TechCause tell them apart.
        (
            CallFacts(customer_dialled=True, cause=19, tech_cause=480, dial_status="NOANSWER"),
            Outcome.UNREACHABLE,
        ),
        (
            CallFacts(customer_dialled=True, cause=1, tech_cause=404, dial_status="NOANSWER"),
            Outcome.WRONG_NUMBER,
        ),
        (CallFacts(customer_dialled=True, cause=0, dial_status="NOANSWER"), Outcome.NO_ANSWER),
        (
            CallFacts(customer_dialled=True, cause=17, tech_cause=486, originate_reason=0),
            Outcome.BUSY,
        ),
        (
            CallFacts(customer_dialled=True, cause=34, tech_cause=503, originate_reason=0),
            Outcome.CONGESTION,
        ),
        # The originate timeout's 480 is Asterisk's own mapping of cause 19, not a SIP reply.
        (
            CallFacts(
                customer_dialled=True,
                cause=19,
                tech_cause=480,
                originate_response="Failure",
                originate_reason=3,
            ),
            Outcome.NO_ANSWER,
        ),
        (
            CallFacts(customer_dialled=True, originate_response="Failure", originate_reason=0),
            Outcome.FAILED,
        ),
        (CallFacts(customer_dialled=True, lost=True), Outcome.UNKNOWN),
    ],
)
def test_classify(facts: CallFacts, expected: Outcome) -> None:
    assert classify(facts) == expected


def test_early_hangup_threshold_is_configurable() -> None:
    facts = CallFacts(customer_dialled=True, answered=True, talk_seconds=4.0)
    assert classify(facts, early_hangup_seconds=2.0) == Outcome.ANSWERED
    assert classify(facts, early_hangup_seconds=5.0) == Outcome.ANSWERED_HUNG_UP_EARLY
    sent, received = load("02_originate_answered_bridged")
    (result,) = run(sent, received, early_hangup_seconds=10.0)
    assert result.outcome == Outcome.ANSWERED_HUNG_UP_EARLY


def test_a_short_call_the_seat_ended_is_not_a_customer_hanging_up_early() -> None:
    sent, received = load("06_basic_actions")  # the seat's half is hung up after ~2 s
    without_hangup_action = [(m, t) for m, t in sent if m.get("Action") != "Hangup"]
    results = run(without_hangup_action, received, early_hangup_seconds=10.0)
    assert outcomes(results)[0] == ("06-0002", Outcome.ANSWERED)
    assert results[0].talk_seconds is not None and results[0].talk_seconds < 10.0


# --- order independence -------------------------------------------------------------------

SINGLE_CALL_TRACES = [
    "02_originate_answered_bridged",
    "03_dial_busy_seat_first",
    "03_originate_busy",
    "03_originate_congestion",
    "03_originate_customer_hangs_up_early",
    "03_originate_powered_off",
    "03_originate_unallocated",
    "04_automatic_callback_keypress",
    "08_originate_customer_first_channelid",
    "pjsip/pjsip_busy",
    "pjsip/pjsip_switched_off_480",
    "pjsip/pjsip_wrong_number_404",
    "pjsip/pjsip_customer_presses_1",
    "pjsip/pjsip_customer_first_busy",
    "pjsip/pjsip_customer_first_no_answer",
    "pjsip/pjsip_customer_first_switched_off_480",
    "pjsip/pjsip_customer_first_wrong_number_404",
]


def _moved(received: Timed, index: int, to: int) -> Timed:
    out = list(received)
    item = out.pop(index)
    out.insert(to, item)
    return out


@pytest.mark.parametrize("trace", SINGLE_CALL_TRACES)
def test_originate_response_anywhere_after_the_first_channel_gives_the_same_outcome(
    trace: str,
) -> None:
    sent, received = load(trace)
    expected = outcomes(run(sent, received))
    names = [m.name for m, _ in received]
    index = names.index("OriginateResponse")
    first_channel = names.index("Newchannel")
    for to in range(first_channel + 1, len(received)):
        assert outcomes(run(sent, _moved(received, index, to))) == expected, to


@pytest.mark.parametrize("trace", SINGLE_CALL_TRACES)
def test_cdr_and_dial_end_arriving_early_or_late_give_the_same_outcome(trace: str) -> None:
    sent, received = load(trace)
    expected = outcomes(run(sent, received))
    for i, (msg, _) in enumerate(received):
        if msg.name == "Cdr":
            assert outcomes(run(sent, _moved(received, i, 3))) == expected  # before Newchannel
            assert outcomes(run(sent, _moved(received, i, len(received)))) == expected
        if msg.name == "DialEnd" and "Channel" not in msg:  # the originate's own DialEnd
            last_hangup = max(j for j, (m, _) in enumerate(received) if m.name == "Hangup")
            assert outcomes(run(sent, _moved(received, i, last_hangup))) == expected


def test_late_events_after_the_result_are_ignored() -> None:
    sent, received = load("pjsip/pjsip_busy")
    rep = Replayer()
    for msg, t in sent:
        rep.action(msg, t)
    for msg, t in received:
        rep.message(msg, t)
    assert outcomes(rep.results) == [("att-002", Outcome.BUSY)]  # before the end of input
    for msg, t in received:  # everything again, as if duplicated
        rep.message(msg, t)
    assert rep.tracker.flush(100.0) == []
    assert rep.tracker.active() == []


@pytest.mark.parametrize(
    "trace", ["07_burst_50", "pjsip/pjsip_burst_30", "03_originate_bad_channel"]
)
def test_nothing_is_left_behind_once_every_attempt_is_reported(trace: str) -> None:
    sent, received = load(trace)
    rep = Replayer()
    for msg, t in sent:
        rep.action(msg, t)
    for msg, t in received:
        rep.message(msg, t)
    assert rep.tracker.active() == []
    assert set(rep.tracker.stats().values()) == {0}


# --- the state machine -----------------------------------------------------------------------


def test_every_transition_is_logged_with_the_attempt_id(caplog: pytest.LogCaptureFixture) -> None:
    sent, received = load("02_originate_answered_bridged")
    with caplog.at_level(logging.INFO, logger="dialer.calls"):
        run(sent, received)
    lines = [r.getMessage() for r in caplog.records if "renewal-lead-000123" in r.getMessage()]
    for step in ("-> dialling", "-> ringing", "-> answered", "-> bridged", "-> ended"):
        assert any(step in line for line in lines), step


def test_state_follows_the_customer_leg_not_the_seat() -> None:
    _sent, received = load("pjsip/pjsip_answered_seat_first")
    tracker = CallTracker()
    tracker.register("att-001", Mode.SEAT_FIRST, seat="8001", number="13800000010", started_at=0.0)
    seen: list[CallState | None] = []
    for msg, t in received:
        tracker.handle(parse_event(msg), t)
        state = tracker.state_of("att-001")
        if not seen or seen[-1] != state:
            seen.append(state)
    # The seat answering (its own Newstate Up, the originate's DialEnd ANSWER) is not the customer.
    assert seen == [
        CallState.ORIGINATING,
        CallState.DIALLING,
        CallState.RINGING,
        CallState.ANSWERED,
        CallState.BRIDGED,
        None,  # finished and forgotten
    ]


def test_channel_id_binds_the_call_before_any_originate_response() -> None:
    _, received = load("08_originate_customer_first_channelid")
    tracker = CallTracker()
    tracker.register(
        "lead-000124",
        Mode.CUSTOMER_FIRST,
        seat="8006",
        number="13800000010",
        channel_id="lead-000124-attempt-1",
        started_at=0.0,
    )
    for msg, t in received:
        if msg.name == "OriginateResponse":
            break
        tracker.handle(parse_event(msg), t)
    assert tracker.state_of("lead-000124") == CallState.ANSWERED


def test_unregistered_calls_are_not_reported_unless_discovery_is_on() -> None:
    _, received = load("pjsip/pjsip_busy")
    tracker = CallTracker()
    results = [r for msg, t in received for r in tracker.handle(parse_event(msg), t)]
    assert results == []
    assert tracker.expire(1000.0) == []


def test_originate_refused_synchronously_is_failed_with_the_error() -> None:
    tracker = CallTracker()
    tracker.register("a1", Mode.SEAT_FIRST, seat="8001", number="138", started_at=0.0)
    (result,) = tracker.originate_failed("a1", "Originate failed", 0.1)
    assert (result.outcome, result.error) == (Outcome.FAILED, "Originate failed")
    assert tracker.active() == []


def test_hangup_by_action_can_be_noted_by_attempt_id() -> None:
    _, received = load("02_originate_answered_bridged")
    tracker = CallTracker()
    tracker.register("renewal-lead-000123", Mode.SEAT_FIRST, seat="8001", number="13800000010")
    tracker.note_hangup_action(attempt_id="renewal-lead-000123")
    results = [r for msg, t in received for r in tracker.handle(parse_event(msg), t)]
    assert outcomes(results) == [("renewal-lead-000123", Outcome.HUNG_UP_BY_ACTION)]
    assert results[0].talk_seconds is not None and results[0].answered


# --- time-outs and reconnects ------------------------------------------------------------------


def test_missing_originate_response_is_waited_for_then_the_facts_decide() -> None:
    _, received = load("03_originate_busy")
    tracker = CallTracker(response_grace_seconds=5.0)
    tracker.register(
        "03-0002",
        Mode.CUSTOMER_FIRST,
        seat="8002",
        number="13800000011",
        channel="Local/13800000011@customers",  # claims the call by its dial string
        started_at=0.0,
    )
    last = 0.0
    for msg, t in received:
        if msg.name != "OriginateResponse":
            assert tracker.handle(parse_event(msg), t) == []
            last = t
    assert tracker.expire(last + 1.0) == []  # still waiting for the OriginateResponse
    (result,) = tracker.expire(last + 5.0)
    assert result.outcome == Outcome.BUSY


def test_an_attempt_that_hears_nothing_becomes_unknown() -> None:
    tracker = CallTracker()
    tracker.register("a1", Mode.SEAT_FIRST, seat="8001", number="138", started_at=100.0)
    assert tracker.expire(130.0, originate_timeout=60.0) == []
    (result,) = tracker.expire(161.0, originate_timeout=60.0)
    assert result.outcome == Outcome.UNKNOWN


def _core_show_channels(received: Timed) -> list[ev.CoreShowChannel]:
    out = []
    for msg, _ in received:
        event = parse_event(msg)
        if isinstance(event, ev.CoreShowChannel):
            out.append(event)
    return out


def test_resync_keeps_live_calls_and_they_finish_normally() -> None:
    _, received = load("06_basic_actions")
    live = _core_show_channels(received)
    assert len(live) == 4
    tracker = CallTracker()
    tracker.register("06-0002", Mode.SEAT_FIRST, seat="8005", number="13800000017", started_at=0.0)
    tracker.register("gone", Mode.SEAT_FIRST, seat="8009", number="139", started_at=0.0)
    names = [m.name for m, _ in received]
    cut = names.index("CoreShowChannel")
    for msg, t in received[:cut]:
        tracker.handle(parse_event(msg), t)
    state_before = tracker.state_of("06-0002")
    # The link dropped here; after the reconnect CoreShowChannels lists the live channels.
    results = tracker.resync(live, received[cut][1])
    assert outcomes(results) == [("gone", Outcome.UNKNOWN)]
    assert tracker.state_of("06-0002") == state_before == CallState.BRIDGED
    rest = [r for msg, t in received[cut:] for r in tracker.handle(parse_event(msg), t)]
    assert outcomes(rest) == [("06-0002", Outcome.ANSWERED)]


def test_resync_rebuilds_a_call_known_only_from_the_channel_list() -> None:
    _, received = load("06_basic_actions")
    live = _core_show_channels(received)
    tracker = CallTracker()
    tracker.register("06-0002", Mode.SEAT_FIRST, seat="8005", number="13800000017")
    # The OriginateResponse is the only thing we heard before the link dropped.
    response = next(parse_event(m) for m, _ in received if m.name == "OriginateResponse")
    tracker.handle(response, 1.0)
    assert tracker.resync(live, 2.0) == []
    cut = [m.name for m, _ in received].index("CoreShowChannelsComplete")
    rest = [r for msg, t in received[cut:] for r in tracker.handle(parse_event(msg), t)]
    assert [r.attempt_id for r in rest] == ["06-0002"]
    assert rest[0].answered


def test_resync_with_no_live_channel_turns_open_attempts_unknown() -> None:
    _, received = load("02_originate_answered_bridged")
    tracker = CallTracker()
    tracker.register("renewal-lead-000123", Mode.SEAT_FIRST, seat="8001", number="13800000010")
    names = [m.name for m, _ in received]
    for msg, t in received[: names.index("BridgeEnter")]:
        tracker.handle(parse_event(msg), t)
    (result,) = tracker.resync([], 50.0)
    assert result.outcome == Outcome.UNKNOWN
    assert result.answered  # the facts gathered so far are kept in the result
    later = [r for msg, t in received for r in tracker.handle(parse_event(msg), t)]
    assert later == []  # its late events do not resurrect it


def _channel_of(msg: Message) -> str | None:
    return msg.get("Uniqueid") or msg.get("DestUniqueid") or msg.get("UniqueID")


@pytest.mark.parametrize("trace", SINGLE_CALL_TRACES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(swaps=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_neighbouring_events_of_different_channels_may_swap(trace: str, swaps: list[int]) -> None:
    """Asterisk keeps each channel's events in order but interleaves channels freely."""
    sent, received = _LOADED.setdefault(trace, load(trace))
    expected = _EXPECTED.setdefault(trace, outcomes(run(sent, received)))
    shuffled = list(received)
    for s in swaps:
        i = s % (len(shuffled) - 1)
        a, b = shuffled[i][0], shuffled[i + 1][0]
        if _channel_of(a) != _channel_of(b) and "Event" in a and "Event" in b:
            shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
    assert outcomes(run(sent, shuffled)) == expected


_LOADED: dict[str, tuple[Timed, Timed]] = {}
_EXPECTED: dict[str, list[tuple[str | None, Outcome]]] = {}


def test_two_attempts_on_one_dial_string_are_told_apart_by_their_originate_responses() -> None:
    """A wrong guess by dial string is undone by the OriginateResponse's Uniqueid."""
    _, first = load("03_dial_busy_seat_first")
    tracker = CallTracker()
    # `a` claims the call by its dial string; the OriginateResponse says it is `b`'s.
    tracker.register("a", Mode.SEAT_FIRST, seat="8003", number="1", channel="Local/8003@seats")
    tracker.register("b", Mode.SEAT_FIRST, seat="8003", number="2")
    results = []
    for msg, t in first:
        event = parse_event(msg)
        if isinstance(event, ev.OriginateResponse):
            event = ev.OriginateResponse(
                response=event.response,
                reason=event.reason,
                channel=event.channel,
                action_id="b",
                uniqueid=event.uniqueid,
                message=event.message,
            )
        results += tracker.handle(event, t)
    assert outcomes(results) == [("b", Outcome.BUSY)]
    assert tracker.active() == ["a"]


@pytest.mark.parametrize(
    ("exten", "application", "variables", "mode"),
    [
        ("13800000010", None, {}, Mode.SEAT_FIRST),
        ("connect-seat", None, {"SEAT": "8002"}, Mode.CUSTOMER_FIRST),
        ("s", None, {"SEAT": "8002"}, Mode.CUSTOMER_FIRST),
        ("callback", None, {}, Mode.APPLICATION),
        (None, "Playback", {}, Mode.APPLICATION),
    ],
)
def test_the_flow_of_an_unregistered_originate_is_inferred(
    exten: str | None, application: str | None, variables: dict[str, str], mode: Mode
) -> None:
    assert infer_mode(exten, application, variables) == mode


# --- who hung up: the request that started it, not the order of the Hangups ----------------


def _seat_hangup_first(received: Timed) -> Timed:
    """The race trace as the live run saw it in 2 of 7 calls: each seat's Hangup arrives
    1 ms before the carrier's, although the carrier's HangupRequest came first."""
    out = list(received)
    for i, (msg, t) in enumerate(received):
        if msg.get("Event") != "Hangup" or not (msg.get("Channel") or "").startswith(
            "PJSIP/carrier-"
        ):
            continue
        linked = msg.get("Linkedid")
        j = next(
            k
            for k in range(i + 1, len(received))
            if received[k][0].get("Event") == "Hangup" and received[k][0].get("Linkedid") == linked
        )
        seat = out.pop(out.index(received[j]))
        out.insert(out.index((msg, t)), (seat[0], t - 0.001))
    return out


def test_a_customer_who_hangs_up_early_is_early_whichever_hangup_arrives_first() -> None:
    sent, received = load("pjsip/pjsip_customer_hangs_up_first_race")
    swapped = _seat_hangup_first(received)
    firsts = [
        m.get("Channel", "")[:13]
        for m, _ in swapped
        if m.get("Event") == "Hangup" and m.get("Channel", "").startswith("PJSIP/8002")
    ]
    assert len(firsts) == 10
    for trace in (received, swapped):
        results = run(sent, trace)
        assert [(r.attempt_id, r.outcome) for r in results] == [
            (f"att-{n}", Outcome.ANSWERED_HUNG_UP_EARLY) for n in range(211, 221)
        ]
        assert all(r.facts.hung_up_by is Party.CUSTOMER for r in results)


@pytest.mark.parametrize(
    ("channel", "soft", "customer", "party"),
    [
        ("PJSIP/carrier-00000001", False, True, Party.CUSTOMER),  # the customer's BYE
        ("PJSIP/carrier-00000001", True, True, Party.PBX),  # our dialplan's Hangup()
        ("PJSIP/8002-00000000", False, False, Party.SEAT),  # the specialist's BYE
        ("Local/13800000014@customers-00000009;2", True, True, Party.CUSTOMER),  # 03 early
        ("Local/13800000010@customers-0000000e;2", False, True, Party.PBX),  # 04 playback
        ("Local/13800000018@customers-0000000f;1", True, True, Party.PBX),  # 04 keypress
    ],
)
def test_the_party_that_hung_up_follows_the_request(
    channel: str, soft: bool, customer: bool, party: Party
) -> None:
    assert hangup_party(channel, soft, customer) is party


def _playback_failed(received: Timed) -> Timed:
    """Every PLAYBACKSTATUS of a trace turned to FAILED (the prompt missing on the PBX)."""
    out: Timed = []
    for msg, t in received:
        if msg.get("Variable") == "PLAYBACKSTATUS":
            msg = Message(tuple((k, "FAILED" if k == "Value" else v) for k, v in msg.headers))
        out.append((msg, t))
    return out


def test_a_message_that_could_not_play_is_a_failure_not_a_reached_customer() -> None:
    sent, received = load("04_automatic_callback_playback")
    (played,) = run(sent, received)
    assert played.outcome == Outcome.ANSWERED and played.facts.hung_up_by is Party.PBX
    (missing,) = run(sent, _playback_failed(received))
    assert missing.outcome == Outcome.FAILED
    assert "PLAYBACKSTATUS=FAILED" in missing.why


def test_a_key_read_before_a_failed_goodbye_still_counts() -> None:
    sent, received = load("04_automatic_callback_keypress")
    (result,) = run(sent, _playback_failed(received))
    assert (result.outcome, result.key_pressed) == (Outcome.ANSWERED, "1")


def test_the_tracker_publishes_the_recording_name_and_the_first_bridge_of_its_own_calls() -> None:
    """A fake bus consumer: what the engine needs while a call runs comes from the tracker,
    once per call (the real trace of an answered, bridged call)."""
    sent, received = load("02_originate_answered_bridged")
    rep = Replayer()
    heard: list[object] = []
    rep.tracker.publish, rep.tracker.server = heard.append, "pbx1"
    for msg, t in sent:
        rep.action(msg, t)
    for msg, t in received:
        rep.message(msg, t)
    results = rep.finish(received[-1][1])
    (result,) = results
    bridged = [e for e in heard if isinstance(e, CallBridged)]
    named = [e for e in heard if isinstance(e, RecordingNamed)]
    assert len(bridged) == 1 and bridged[0].server == "pbx1"
    assert [e.file_name for e in named] == [result.recording]
    assert result.recording


def test_the_tracker_publishes_that_asterisk_is_shutting_down() -> None:
    heard: list[object] = []
    tracker = CallTracker(publish=heard.append, server="pbx2")
    (msg,) = AmiParser(expect_banner=False).feed(b"Event: Shutdown\r\nShutdown: Cleanly\r\n\r\n")
    tracker.handle(parse_event(msg), 1.0)
    assert heard == [PbxShuttingDown("pbx2")]
