"""`callcenter ami replay` over every real trace: the right outcome for every attempt."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from callcenter.cli import main
from dialer.replay import TraceFiles, replay

FIXTURES = Path(__file__).parent / "fixtures" / "ami"
PJSIP = FIXTURES / "pjsip"

# Derived from the traces' READMEs: trace -> [(attempt id, outcome, dial status, customer
# cause, SIP tech cause, key pressed)]. A dial status of "-" means "none was sent".
EXPECTED: dict[str, list[tuple[str, str, str | None, int | None, int | None, str | None]]] = {
    "01_login_ok": [],
    "01_login_failed": [],
    "01_login_md5_challenge": [],
    "02_originate_answered_bridged": [
        ("renewal-lead-000123", "answered", "ANSWER", 16, None, None)
    ],
    "03_dial_busy_seat_first": [("03-0002", "busy", "BUSY", 17, None, None)],
    "03_dial_no_answer_seat_first": [("03-0002", "no_answer", "NOANSWER", 0, None, None)],
    "03_originate_bad_channel": [
        ("03-0002", "failed", None, None, None, None),  # Foo/123 async: Failure, no channel
        ("03-0003", "failed", None, None, None, None),  # Foo/123 sync: Response: Error
        ("03-0004", "failed", None, None, None, None),  # "Invalid channel"
        ("03-0005", "failed", None, 0, None, None),  # Local/999: no such extension
    ],
    "03_originate_busy": [("03-0002", "busy", "BUSY", 17, None, None)],
    "03_originate_congestion": [("03-0002", "congestion", "CONGESTION", 34, None, None)],
    "03_originate_customer_hangs_up_early": [
        ("03-0002", "answered_hung_up_early", "ANSWER", 16, None, None)
    ],
    "03_originate_no_answer": [("03-0002", "no_answer", None, 19, None, None)],
    "03_originate_powered_off": [("03-0002", "unreachable", "CHANUNAVAIL", 20, None, None)],
    "03_originate_unallocated": [("03-0002", "wrong_number", "NOANSWER", 1, None, None)],
    "04_automatic_callback_keypress": [("04-0002", "answered", "ANSWER", 16, None, "1")],
    "04_automatic_callback_playback": [("04-0002", "answered", "ANSWER", 0, None, None)],
    "05_hangup_by_action": [("05-0002", "hung_up_by_action", "ANSWER", 16, None, None)],
    "06_basic_actions": [
        ("06-0002", "hung_up_by_action", "ANSWER", 16, None, None),
        ("06-0020", "failed", None, None, None, None),  # Originate without Channel
    ],
    "08_originate_busy_channelid": [("renewal-lead-000125", "busy", "BUSY", 17, None, None)],
    "08_originate_customer_first_channelid": [
        ("renewal-lead-000124", "answered", "ANSWER", 16, None, None)
    ],
    "pjsip/pjsip_answered_seat_first": [("att-001", "answered", "ANSWER", 16, None, None)],
    "pjsip/pjsip_busy": [("att-002", "busy", "BUSY", 17, 486, None)],
    "pjsip/pjsip_no_answer": [("att-003", "no_answer", "NOANSWER", 0, None, None)],
    "pjsip/pjsip_unavailable_503": [("att-004", "congestion", "CONGESTION", 34, 503, None)],
    "pjsip/pjsip_switched_off_480": [("att-005", "unreachable", "NOANSWER", 19, 480, None)],
    "pjsip/pjsip_wrong_number_404": [("att-006", "wrong_number", "NOANSWER", 1, 404, None)],
    "pjsip/pjsip_customer_hangs_up_early": [
        ("att-007", "answered_hung_up_early", "ANSWER", 16, None, None)
    ],
    "pjsip/pjsip_customer_presses_1": [("att-008", "answered", "ANSWER", 16, None, "1")],
    "pjsip/pjsip_customer_first_answered": [("att-009", "answered", "ANSWER", 16, None, None)],
    # Ten customers who hang up 1 s after answering: who hung up comes from the carrier's
    # HangupRequest, whatever order the two Hangups arrive in.
    "pjsip/pjsip_customer_hangs_up_first_race": [
        (f"att-{n}", "answered_hung_up_early", "ANSWER", 16, None, None) for n in range(211, 221)
    ],
    "pjsip/pjsip_customer_first_busy": [("att-010", "busy", "BUSY", 17, 486, None)],
    # Originate timeout: cause 19 with Asterisk's derived TechCause 480 -- still "no answer".
    "pjsip/pjsip_customer_first_no_answer": [("att-011", "no_answer", None, 19, 480, None)],
    "pjsip/pjsip_customer_first_unavailable_503": [
        ("att-012", "congestion", "CONGESTION", 34, 503, None)
    ],
    "pjsip/pjsip_customer_first_switched_off_480": [
        ("att-013", "unreachable", "NOANSWER", 19, 480, None)
    ],
    "pjsip/pjsip_customer_first_wrong_number_404": [
        ("att-014", "wrong_number", "NOANSWER", 1, 404, None)
    ],
    # A supervisor listens in (ChanSpy, pjsip_chanspy_*; in their own folder: their customer
    # talks 20 s, not the simulator's digit-7 56 s, so tests/test_board_chanspy.py compares
    # the simulator with them under a scenario of the traced times): the replayer counts every Originate
    # it sees, so the spy's own call (spy-NNN, no ATTEMPT_ID) is listed too; it ends with the
    # spied call (option E), cause 0. The spied call's outcome is unchanged.
    **{
        f"pjsip/chanspy/pjsip_chanspy_{mode}": [
            (f"att-{n}", "answered", "ANSWER", 16, None, None),
            (f"spy-00{n - 202}", "answered", "ANSWER", 0, None, None),
        ]
        for n, mode in ((203, "listen"), (204, "whisper"), (205, "barge"))
    },
    # `core stop gracefully`: the bridged call ends normally; the next Originate is refused
    # (the tracker's "failed"; the engine records it not sent, dialer.shutdown).
    "pjsip/shutdown/pjsip_originate_while_shutting_down": [
        ("att-206", "answered", "ANSWER", 16, None, None),
        ("att-207", "failed", None, None, None, None),
    ],
}

BEHAVIOUR_OUTCOME = {
    "answer": "answered",
    "busy": "busy",
    "no_answer": "no_answer",
    "unavailable": "congestion",
    "hangs_up_early": "answered_hung_up_early",
    "switched_off": "unreachable",
    "wrong_number": "wrong_number",
    "answer_presses_1": "answered",
}


def test_every_trace_has_an_expectation() -> None:
    traces = {p.relative_to(FIXTURES).with_suffix("").as_posix() for p in FIXTURES.rglob("*.ami")}
    assert traces - {"07_burst_50", "pjsip/pjsip_burst_30"} == set(EXPECTED)


@pytest.mark.parametrize("trace", sorted(EXPECTED))
def test_replay_gives_the_right_outcome_for_every_attempt(trace: str) -> None:
    results = replay(TraceFiles.beside(FIXTURES / f"{trace}.ami"))
    got = [
        (r.attempt_id, r.outcome.value, r.dial_status, r.cause, r.tech_cause, r.key_pressed)
        for r in results
    ]
    assert got == EXPECTED[trace]


def test_seat_first_answered_call_has_seat_number_durations_and_recording() -> None:
    (r,) = replay(TraceFiles.beside(FIXTURES / "02_originate_answered_bridged.ami"))
    assert (r.seat, r.number, r.mode) == ("8001", "13800000010", "seat_first")
    assert r.ring_seconds == pytest.approx(2.0, abs=0.2)
    assert r.talk_seconds == pytest.approx(4.96, abs=0.2)  # the recording is 4.96 s
    assert r.recording == "/var/spool/asterisk/monitor/1795779201.0.wav"
    assert r.bridged and r.answered
    assert r.linkedid == "1795779201.0" and len(r.uniqueids) == 4


def test_customer_first_with_channel_id_keeps_the_string_ids() -> None:
    (r,) = replay(TraceFiles.beside(FIXTURES / "08_originate_customer_first_channelid.ami"))
    assert (r.seat, r.number, r.mode) == ("8006", "13800000010", "customer_first")
    assert r.linkedid == "lead-000124-attempt-1"
    assert "lead-000124-attempt-1-b" in r.uniqueids
    assert r.recording is not None and r.recording.endswith("lead-000124-attempt-1.wav")


def test_result_says_which_rule_decided() -> None:
    (r,) = replay(TraceFiles.beside(PJSIP / "pjsip_customer_first_no_answer.ami"))
    assert r.why == "OriginateResponse Reason 3 (originate timeout)"
    (r,) = replay(TraceFiles.beside(PJSIP / "pjsip_switched_off_480.ami"))
    assert r.why == "SIP 480 (TechCause)"


def test_no_answer_rings_for_the_dial_timeout() -> None:
    (r,) = replay(TraceFiles.beside(PJSIP / "pjsip_no_answer.ami"))
    assert r.ring_seconds == pytest.approx(30.0, abs=0.1)
    assert r.talk_seconds is None


def test_burst_of_50_local_calls_all_answered_with_recordings() -> None:
    results = replay(TraceFiles.beside(FIXTURES / "07_burst_50.ami"))
    assert [r.attempt_id for r in results] == [f"burst-{i:03d}" for i in range(50)]
    assert Counter(r.outcome.value for r in results) == {"answered": 50}
    assert all(r.recording and r.talk_seconds and r.talk_seconds > 4 for r in results)
    assert len({r.linkedid for r in results}) == 50


def test_pjsip_burst_of_30_matches_the_ground_truth() -> None:
    results = {r.attempt_id: r for r in replay(TraceFiles.beside(PJSIP / "pjsip_burst_30.ami"))}
    truth = [json.loads(line) for line in (PJSIP / "truth.jsonl").read_text().splitlines() if line]
    assert len(truth) == 30 and set(results) == {t["attempt_id"] for t in truth}
    for t in truth:
        r = results[t["attempt_id"]]
        e = t["expected"]
        assert (
            r.outcome.value,
            r.dial_status,
            r.cause,
            r.tech_cause,
            r.bridged,
            r.key_pressed,
            r.seat,
            r.number,
        ) == (
            BEHAVIOUR_OUTCOME[t["behaviour"]],
            e["dialstatus"],
            e["customer_cause"],
            e["tech_cause"],
            e["bridged"],
            e["dtmf"],
            t["seat"],
            t["number"],
        ), t["attempt_id"]


@pytest.mark.parametrize(
    "trace",
    [
        "pjsip/pjsip_busy",
        "pjsip/pjsip_customer_first_switched_off_480",
        "03_originate_busy",
        "04_automatic_callback_keypress",
        "08_originate_customer_first_channelid",
    ],
)
def test_without_actions_attempts_are_discovered_from_the_events(trace: str) -> None:
    full = replay(TraceFiles.beside(FIXTURES / f"{trace}.ami"))
    bare = replay(TraceFiles.beside(FIXTURES / f"{trace}.ami", use_actions=False))
    assert [(r.attempt_id, r.outcome, r.seat, r.number) for r in bare] == [
        (r.attempt_id, r.outcome, r.seat, r.number) for r in full
    ]


def test_without_timeline_outcomes_hold_and_durations_are_unknown() -> None:
    (r,) = replay(TraceFiles.beside(PJSIP / "pjsip_busy.ami", use_timeline=False))
    assert r.outcome.value == "busy"
    assert r.ring_seconds is None


def test_cli_prints_one_json_line_per_attempt(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ami", "replay", str(FIXTURES / "03_originate_bad_channel.ami")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["attempt_id"] for line in lines] == ["03-0002", "03-0003", "03-0004", "03-0005"]
    assert {line["outcome"] for line in lines} == {"failed"}
    assert lines[1]["why"] == "Originate refused: Originate failed"
    for key in (
        "seat",
        "number",
        "cause",
        "tech_cause",
        "dial_status",
        "ring_seconds",
        "talk_seconds",
        "key_pressed",
    ):
        assert key in lines[0]


def test_cli_refuses_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ami", "replay", str(tmp_path / "nope.ami")]) == 2
    assert "no such trace" in capsys.readouterr().err
