"""The AMI wire parser against the real Asterisk traces and against generated streams."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.ami.protocol import AmiParser, Message, MissingHeader, encode_action, parse_stream

FIXTURES = Path(__file__).parent / "fixtures" / "ami"
TRACES = sorted(FIXTURES.glob("*.ami")) + sorted((FIXTURES / "pjsip").glob("*.ami"))


def _trace_id(path: Path) -> str:
    return path.stem


def _feed_in_chunks(
    data: bytes, rnd: random.Random, low: int = 1, high: int = 200
) -> list[Message]:
    parser = AmiParser()
    out: list[Message] = []
    i = 0
    while i < len(data):
        n = rnd.randint(low, high)
        out += parser.feed(data[i : i + n])
        i += n
    assert parser.pending_bytes == 0
    return out


def _reference_parse(data: bytes) -> list[tuple[tuple[str, str], ...]]:
    """An independent, obviously-correct parser for well-formed streams."""
    text = data.decode("utf-8")
    if text.startswith("Asterisk Call Manager"):
        text = text.split("\r\n", 1)[1]
    out = []
    for block in text.split("\r\n\r\n"):
        if not block:
            continue
        pairs = []
        for line in block.split("\r\n"):
            key, _, value = line.partition(": ")
            pairs.append((key, value))
        out.append(tuple(pairs))
    return out


def test_fixtures_are_present() -> None:
    assert len(TRACES) >= 30


@pytest.mark.parametrize("trace", TRACES, ids=_trace_id)
def test_trace_parses_like_a_reference_parser_and_keeps_the_banner(trace: Path) -> None:
    data = trace.read_bytes()
    banner, messages = parse_stream(data)
    assert banner == "Asterisk Call Manager/11.0.0"
    assert [m.headers for m in messages] == _reference_parse(data)
    # Every message round-trips to the exact bytes Asterisk sent.
    body = data.split(b"\r\n", 1)[1]
    assert b"".join(m.to_bytes() for m in messages) == body


@pytest.mark.parametrize("trace", TRACES, ids=_trace_id)
def test_trace_fed_in_random_chunks_gives_identical_messages(trace: Path) -> None:
    data = trace.read_bytes()
    _, whole = parse_stream(data)
    rnd = random.Random(trace.name)
    for _ in range(3):
        assert _feed_in_chunks(data, rnd) == whole


def test_burst_split_inside_every_multibyte_character_keeps_chinese_names() -> None:
    data = (FIXTURES / "02_originate_answered_bridged.ami").read_bytes()
    _, whole = parse_stream(data)
    cut = data.index("续保专员".encode()) + 1  # inside the first character
    parser = AmiParser()
    got = parser.feed(data[:cut]) + parser.feed(data[cut:])
    assert got == whole
    assert any(m.get("CallerIDName") == "续保专员" for m in got)


def test_event_counts_of_the_burst_match_the_readme() -> None:
    _, messages = parse_stream((FIXTURES / "07_burst_50.ami").read_bytes())
    names = [m.name for m in messages if m.kind == "event"]
    assert len(names) == 5350 + 2  # the README counts from the first Originate, after login
    assert names.count("VarSet") == 1650
    assert names.count("Hangup") == 200
    assert names.count("OriginateResponse") == 50


def test_repeated_keys_are_all_kept_and_the_first_wins_for_lookup() -> None:
    _, messages = parse_stream((FIXTURES / "06_basic_actions.ami").read_bytes())
    concise = [m for m in messages if len(m.getall("Output")) > 1]
    assert concise, "the Command output of 06 has one Output header per CLI line"
    status = [m for m in messages if m.name == "Status" and m.getall("Variable")]
    assert status[0].getall("Variable")[0].startswith("NUMBER=")
    assert status[0]["Variable"] == status[0].getall("Variable")[0]


def test_empty_values_are_kept_as_empty_strings() -> None:
    _, messages = parse_stream(b"Event: VarSet\r\nAccountCode: \r\nValue: \r\nBare:\r\n\r\n")
    assert messages[0].headers == (
        ("Event", "VarSet"),
        ("AccountCode", ""),
        ("Value", ""),
        ("Bare", ""),
    )


def test_missing_header_raises_missing_header_with_the_message() -> None:
    msg = Message([("Event", "Hangup")])
    with pytest.raises(MissingHeader) as info:
        msg["Cause"]
    assert info.value.message is msg
    assert msg.get("Cause") is None


def test_old_style_command_output_follows_is_kept_line_by_line() -> None:
    data = (
        b"Asterisk Call Manager/1.1\r\n"
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: 7\r\n"
        b"Channel              Location             State\n"
        b"0 active channels\n"
        b"--END COMMAND--\r\n\r\n"
        b"Event: FullyBooted\r\nStatus: Fully Booted\r\n\r\n"
    )
    banner, messages = parse_stream(data)
    assert banner == "Asterisk Call Manager/1.1"
    assert messages[0]["Response"] == "Follows"
    assert messages[0].action_id == "7"
    assert messages[0].getall("Output") == [
        "Channel              Location             State",
        "0 active channels",
    ]
    assert messages[1].name == "FullyBooted"
    rnd = random.Random(4)
    assert _feed_in_chunks(data, rnd, 1, 7) == messages


def test_invalid_utf8_is_logged_and_the_message_kept(caplog: pytest.LogCaptureFixture) -> None:
    data = b"Event: Hangup\r\nCallerIDName: \xe7\xbb\xff\r\nCause: 16\r\n\r\nEvent: Ok\r\n\r\n"
    with caplog.at_level(logging.WARNING):
        _, messages = parse_stream(data)
    assert [m.name for m in messages] == ["Hangup", "Ok"]
    assert messages[0]["Cause"] == "16"
    assert "\ufffd" in (messages[0]["CallerIDName"] or "")
    assert any("invalid UTF-8" in r.getMessage() for r in caplog.records)


def test_stream_without_banner_is_parsed_from_the_first_byte() -> None:
    parser = AmiParser()
    assert parser.feed(b"Event: A\r\nX: 1\r\n\r\n") == [Message([("Event", "A"), ("X", "1")])]
    assert parser.banner is None


def test_bare_lf_inside_a_value_does_not_split_the_message() -> None:
    _, messages = parse_stream(b"Event: A\r\nData: one\ntwo\r\nX: 1\r\n\r\n")
    assert messages[0]["Data"] == "one\ntwo"
    assert messages[0]["X"] == "1"


def test_value_containing_colon_space_keeps_it() -> None:
    _, messages = parse_stream(b"Event: A\r\nAppData: NoOp(DIALSTATUS: BUSY)\r\n\r\n")
    assert messages[0]["AppData"] == "NoOp(DIALSTATUS: BUSY)"


def test_encode_action_repeats_variables_and_refuses_crlf_injection() -> None:
    data = encode_action("Originate", {"ActionID": "a1", "Variable": {"A": "1", "B": "张三"}})
    assert (
        data
        == "Action: Originate\r\nActionID: a1\r\nVariable: A=1\r\nVariable: B=张三\r\n\r\n".encode()
    )
    with pytest.raises(ValueError):
        encode_action("Originate", {"CallerID": "x\r\nAction: Hangup"})


# --- properties --------------------------------------------------------------------------

_key = st.one_of(
    st.sampled_from(["Event", "Variable", "Output", "Channel", "Cause-txt"]),  # repeats likely
    st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":"),
        min_size=1,
        max_size=12,
    ),
)
_value = st.one_of(
    st.sampled_from(["", " ", "续保专员", "a: b", "NoOp(x: y)", "专员一\t"]),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
        max_size=20,
    ),
)
_message = st.lists(st.tuples(_key, _value), min_size=1, max_size=8).filter(
    lambda pairs: pairs[0][0] != "Response"
)


def _encode(pairs: list[tuple[str, str]]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in pairs).encode("utf-8") + b"\r\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages=st.lists(_message, min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
    banner=st.booleans(),
)
def test_parser_never_loses_a_well_formed_message_wherever_the_stream_is_cut(
    messages: list[list[tuple[str, str]]], cuts: list[int], banner: bool
) -> None:
    data = b"".join(_encode(m) for m in messages)
    if banner:
        data = b"Asterisk Call Manager/11.0.0\r\n" + data
    points = sorted({c % (len(data) + 1) for c in cuts})  # may cut inside a UTF-8 character
    parser = AmiParser()
    got: list[Message] = []
    prev = 0
    for p in [*points, len(data)]:
        got += parser.feed(data[prev:p])
        prev = p
    assert [list(m.headers) for m in got] == messages
    for m, pairs in zip(got, messages, strict=True):
        assert m[pairs[0][0]] == pairs[0][1]  # the first value wins for a repeated key


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=400),
    chunk=st.integers(min_value=1, max_value=50),
)
def test_parser_never_raises_on_arbitrary_bytes(data: bytes, chunk: int) -> None:
    parser = AmiParser()
    for i in range(0, len(data), chunk):
        for m in parser.feed(data[i : i + chunk]):
            assert isinstance(m.headers, tuple)
            m.name, m.kind, m.as_dict()


@settings(max_examples=200, deadline=None)
@given(
    good=st.lists(_message, min_size=1, max_size=4),
    junk=st.binary(max_size=40).filter(lambda b: b"\r\n\r\n" not in b and not b.endswith(b"\r")),
)
def test_garbage_between_messages_does_not_swallow_the_next_message(
    good: list[list[tuple[str, str]]], junk: bytes
) -> None:
    data = (
        b"Asterisk Call Manager/11.0.0\r\n"
        + junk
        + b"\r\n\r\n"
        + b"".join(_encode(m) for m in good)
    )
    _, messages = parse_stream(data)
    assert [list(m.headers) for m in messages[-len(good) :]] == good


_pieces = st.sampled_from(
    ["A", "b", " ", ":", ": ", "\r\n", "\r", "\n", "续", "Response: Follows", "Output: x"]
)


@settings(max_examples=500, deadline=None)
@given(pieces=st.lists(_pieces, max_size=20))
def test_fast_path_and_general_parser_agree_on_any_block(pieces: list[str]) -> None:
    from dialer.ami.protocol import _parse_text, _parse_text_general

    text = "".join(pieces).replace("\r\n\r\n", "\r\n")
    assert _parse_text(text).headers == _parse_text_general(text).headers


_routing_pieces = st.sampled_from(
    [
        "Event: ",
        "ActionID",
        "ActionID: ",
        "ActionID:",
        "EventList",
        "A",
        ":",
        ": ",
        "\r\n",
        "\r",
        "\n",
        "续",
        "Response: Follows",
        "Output: x",
        "7",
    ]
)


@settings(max_examples=1000, deadline=None)
@given(pieces=st.lists(_routing_pieces, max_size=24))
def test_reading_the_event_name_and_action_id_from_the_text_agrees_with_the_headers(
    pieces: list[str],
) -> None:
    """The connection routes on the unsplit text (Message.event_name, _peek); what it reads
    there must be what the split headers say, for any block."""
    from dialer.ami.protocol import _parse_text_general

    text = "".join(pieces).replace("\r\n\r\n", "\r\n")
    lazy = Message._from_text(text)
    eager = _parse_text_general(text)
    assert lazy._peek("ActionID") == eager.get("ActionID")
    assert Message._from_text(text).event_name == eager.get("Event")
    assert lazy.headers == eager.headers


def test_an_event_nobody_reads_is_never_split_into_headers() -> None:
    parser = AmiParser(expect_banner=False)
    (msg,) = parser.feed(b"Event: Newexten\r\nChannel: PJSIP/8001-0001\r\nActionID: a-1\r\n\r\n")
    assert msg.event_name == "Newexten" and msg.action_id == "a-1"
    assert msg._dict is None, "routing must not split the headers"
    assert msg["Channel"] == "PJSIP/8001-0001" and msg._dict is not None
