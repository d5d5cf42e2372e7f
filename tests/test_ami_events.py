"""Typed AMI events decoded from real Asterisk messages."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dialer.ami import events as ev
from dialer.ami.events import EventDecoder, GenericEvent, parse_event
from dialer.ami.protocol import Message, parse_stream

FIXTURES = Path(__file__).parent / "fixtures" / "ami"
TRACES = sorted(FIXTURES.glob("*.ami")) + sorted((FIXTURES / "pjsip").glob("*.ami"))


def _events(name: str) -> list[Message]:
    _, messages = parse_stream((FIXTURES / name).read_bytes())
    return [m for m in messages if m.kind == "event"]


def _first(name: str, event: str, **headers: str) -> Message:
    for m in _events(name):
        if m.name == event and all(m.get(k) == v for k, v in headers.items()):
            return m
    raise AssertionError(f"no {event} {headers} in {name}")


@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.stem)
def test_every_typed_event_of_every_trace_decodes_without_an_error(
    trace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, messages = parse_stream(trace.read_bytes())
    decoder = EventDecoder()
    with caplog.at_level(logging.ERROR, logger="dialer.ami.decoding"):
        for msg in messages:
            if msg.kind != "event":
                continue
            event = decoder.decode(msg)
            if msg.name in ev.DECODERS:
                assert not isinstance(event, GenericEvent), msg
            assert event.name == msg.name
            assert event.message is msg
    assert not caplog.records
    assert not decoder.reported


def test_originate_dial_begin_has_no_caller_channel() -> None:
    event = parse_event(_first("02_originate_answered_bridged.ami", "DialBegin"))
    assert isinstance(event, ev.DialBegin)
    assert event.channel is None and event.uniqueid is None
    assert event.dest_channel == "Local/8001@seats-00000000;1"
    assert event.dest_linkedid == "1795779201.0"
    assert event.dial_string == "8001@seats"


def test_dialplan_dial_end_has_both_sides_and_the_status() -> None:
    msg = _first("pjsip/pjsip_busy.ami", "DialEnd", DialStatus="BUSY")
    event = parse_event(msg)
    assert isinstance(event, ev.DialEnd)
    assert event.channel is not None and event.channel.startswith("PJSIP/8002-")
    assert event.dest_channel.startswith("PJSIP/carrier-")
    assert event.dial_status == "BUSY"


def test_hangup_carries_cause_and_sip_tech_cause() -> None:
    event = parse_event(_first("pjsip/pjsip_wrong_number_404.ami", "Hangup", TechCause="404"))
    assert isinstance(event, ev.Hangup)
    assert (event.cause, event.tech_cause) == (1, 404)
    assert event.cause_txt == "Unallocated (unassigned) number"
    normal = parse_event(_first("02_originate_answered_bridged.ami", "Hangup"))
    assert isinstance(normal, ev.Hangup) and normal.tech_cause is None


def test_failed_originate_response_has_no_uniqueid_and_the_dial_string_as_channel() -> None:
    event = parse_event(_first("03_originate_busy.ami", "OriginateResponse"))
    assert isinstance(event, ev.OriginateResponse)
    assert event.uniqueid is None  # `<unknown>` on the wire
    assert event.message["Uniqueid"] == "<unknown>"
    assert (event.response, event.reason, event.success) == ("Failure", 5, False)
    assert event.channel == "Local/13800000011@customers"
    assert event.action_id == "03-0002"


def test_chinese_caller_name_survives_decoding() -> None:
    event = parse_event(_first("02_originate_answered_bridged.ami", "OriginateResponse"))
    assert isinstance(event, ev.OriginateResponse)
    assert event.caller_id_name == "续保专员"


def test_user_event_exposes_its_custom_headers() -> None:
    event = parse_event(_first("04_automatic_callback_keypress.ami", "UserEvent"))
    assert isinstance(event, ev.UserEvent)
    assert event.user_event == "CallbackResult"
    assert event.get("Key") == "1"
    assert event.get("ReadStatus") == "OK"


def test_dtmf_end_direction_and_duration() -> None:
    event = parse_event(
        _first("pjsip/pjsip_customer_presses_1.ami", "DTMFEnd", Direction="Received")
    )
    assert isinstance(event, ev.DTMFEnd)
    assert (event.digit, event.direction, event.duration_ms) == ("1", "Received", 200)


def test_cdr_uses_the_uniqueid_spelling_of_cdrs() -> None:
    event = parse_event(_first("03_originate_unallocated.ami", "Cdr"))
    assert isinstance(event, ev.Cdr)
    assert event.uniqueid.startswith("17957")
    assert event.disposition == "NO ANSWER"
    assert event.destination_channel is None  # empty on the wire


def test_status_variables_and_core_show_channel() -> None:
    status = next(
        parse_event(m)
        for m in _events("06_basic_actions.ami")
        if m.name == "Status" and m.getall("Variable")
    )
    assert isinstance(status, ev.Status)
    assert dict(status.variables)["NUMBER"] == "13800000017"
    csc = parse_event(_first("06_basic_actions.ami", "CoreShowChannel"))
    assert isinstance(csc, ev.CoreShowChannel)
    assert csc.linkedid and csc.uniqueid and csc.action_id
    done = parse_event(_first("06_basic_actions.ami", "CoreShowChannelsComplete"))
    assert isinstance(done, ev.CoreShowChannelsComplete) and done.list_items == 4


def test_unknown_event_is_a_generic_event_with_its_message() -> None:
    msg = _first("02_originate_answered_bridged.ami", "Newexten")
    event = parse_event(msg)
    assert isinstance(event, GenericEvent)
    assert event.name == "Newexten"
    assert event.message is msg


def test_missing_required_header_is_logged_once_with_the_raw_message_and_gives_a_generic_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    decoder = EventDecoder()
    broken = Message(
        [("Event", "Hangup"), ("Channel", "PJSIP/carrier-00000001"), ("Uniqueid", "1.1")]
    )
    with caplog.at_level(logging.ERROR, logger="dialer.ami.decoding"):
        first = decoder.decode(broken)
        second = decoder.decode(broken)
    assert isinstance(first, GenericEvent) and isinstance(second, GenericEvent)
    assert first.name == "Hangup" and first.message is broken
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "Linkedid" in errors[0].getMessage()
    assert "PJSIP/carrier-00000001" in errors[0].getMessage()  # the raw message is in the log


def test_a_malformed_integer_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    decoder = EventDecoder()
    msg = Message(
        [
            ("Event", "Hangup"),
            ("Channel", "x"),
            ("Uniqueid", "1"),
            ("Linkedid", "1"),
            ("Cause", "sixteen"),
        ]
    )
    with caplog.at_level(logging.ERROR, logger="dialer.ami.decoding"):
        event = decoder.decode(msg)
    assert isinstance(event, GenericEvent)
    assert len(caplog.records) == 1


def test_a_message_without_event_header_is_generic() -> None:
    event = parse_event(Message([("Response", "Success")]))
    assert isinstance(event, GenericEvent)
    assert event.name == "Success"


def test_events_compare_without_their_message_and_are_frozen() -> None:
    a = ev.Hangup(channel="c", uniqueid="1", linkedid="1", cause=16)
    b = ev.Hangup(channel="c", uniqueid="1", linkedid="1", cause=16, message=Message([("X", "y")]))
    assert a == b
    with pytest.raises(AttributeError):
        a.cause = 17  # type: ignore[misc]
