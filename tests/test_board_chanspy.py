"""The simulator answers a supervisor's ChanSpy as the real Asterisk 22 did: the actions of
pjsip_chanspy_listen / _whisper / _barge replayed against it at the traces' times, and its key
events compared with the capture's (tests/test_conformance_support.py).

The traced customer (last digit 7) talked 20 s; the simulator's digit 7 talks ~56 s, which
other tests rely on, so the run gives the simulator a scenario with the traced call's times."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialer.ami.protocol import parse_stream
from dialer.simulator.behaviour import Scenario
from tests.test_conformance_support import (
    action_vars,
    diff,
    key_view,
    run_against_simulator,
    trace_actions,
)

CHANSPY = Path(__file__).parent / "fixtures" / "ami" / "pjsip" / "chanspy"
TRACED_CALL = {"outcomes": {"longcall": 1.0}, "ring_seconds": 1.0, "talk_seconds": 20.0}


@pytest.mark.parametrize("mode", ["listen", "whisper", "barge"])
async def test_the_simulator_spies_as_the_traced_asterisk(mode: str) -> None:
    base = CHANSPY / f"pjsip_chanspy_{mode}"
    _, real = parse_stream(base.with_suffix(".ami").read_bytes())
    kept = action_vars(trace_actions(base))

    def traced_times(sim: object) -> None:
        sim.pbx.scenario = Scenario(TRACED_CALL)  # type: ignore[attr-defined]

    run = await run_against_simulator(base, at=[(0.0, traced_times)])
    assert diff(key_view(real, kept), key_view(run.messages, kept)) == []
    names = [m.get("Event") for m in run.messages]
    assert names.count("ChanSpyStart") == 1 and names.count("ChanSpyStop") == 1
