"""The simulator against the real Asterisk 22 traces: same actions in, same key events out
(per channel, modulo ids and times; see tests/test_conformance_support.py for the rules),
and the same outcome from the call tracker."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialer.ami.protocol import Message, parse_stream
from tests.test_conformance_support import (
    action_vars,
    diff,
    key_view,
    outcome_summary,
    outcomes_of_run,
    outcomes_of_trace,
    run_against_simulator,
    trace_actions,
)

FIXTURES = Path(__file__).parent / "fixtures" / "ami"
TRACES = sorted(FIXTURES.glob("*.ami")) + sorted((FIXTURES / "pjsip").glob("*.ami"))


def _real_messages(ami: Path) -> list[Message]:
    return parse_stream(ami.read_bytes())[1]


@pytest.mark.parametrize("ami", TRACES, ids=[p.stem for p in TRACES])
async def test_simulator_sends_the_same_key_events_and_outcomes_as_real_asterisk(
    ami: Path, tmp_path: Path
) -> None:
    base = ami.with_suffix("")
    real = _real_messages(ami)
    kept = action_vars(trace_actions(base))
    run = await run_against_simulator(base, monitor_dir=tmp_path)

    problems = diff(key_view(real, kept), key_view(run.messages, kept))
    assert not problems, "\n".join(problems)

    assert outcome_summary(outcomes_of_run(run)) == outcome_summary(outcomes_of_trace(base))


def test_the_comparison_notices_a_wrong_cause() -> None:
    _, real = parse_stream((FIXTURES / "03_originate_busy.ami").read_bytes())
    tampered = [
        m
        if m.get("Cause") != "17"
        else type(m).from_pairs([(k, "21" if k == "Cause" else v) for k, v in m.headers])
        for m in real
    ]
    assert diff(key_view(real), key_view(tampered))
