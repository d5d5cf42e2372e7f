"""Helper for tests (no tests here): calls placed one after another on the PBX simulator over
real TCP, their events fed to a `CallTracker` at the virtual clock's time of arrival."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dialer.ami import events as ev
from dialer.ami.connection import AmiConnection
from dialer.ami.protocol import HeaderValue
from dialer.calls import CallResult, CallTracker, Mode
from dialer.originate import variables_of
from dialer.simulator import PbxSimulator
from schedules.clock import VirtualClock


@dataclass(frozen=True)
class Planned:
    attempt_id: str
    mode: Mode
    headers: dict[str, HeaderValue]  # from dialer.originate (seat_first, reminder, ...)


async def run_calls(
    sim: PbxSimulator,
    clock: VirtualClock,
    calls: Sequence[Planned],
    *,
    step: float = 0.25,
    on_event: Callable[[ev.AmiEvent], None] | None = None,
    on_results: Callable[[list[CallResult]], None] | None = None,
) -> list[CallResult]:
    """Each call is sent once the previous one has ended; time moves by `step` at a time
    (small steps keep events apart in time the way the PBX sent them)."""
    tracker = CallTracker()
    results: list[CallResult] = []

    def handle(event: ev.AmiEvent) -> None:
        if on_event is not None:
            on_event(event)
        ended = tracker.handle(event, clock.monotonic())
        if on_results is not None:
            on_results(ended)
        results.extend(ended)

    conn = AmiConnection(sim.host, sim.port, username="dialer", secret="secret", clock=clock)
    conn.subscribe(handle)
    await conn.connect()
    try:
        for i, call in enumerate(calls):
            h = call.headers
            tracker.register(
                call.attempt_id,
                call.mode,
                seat=str(h["Channel"]) if call.mode is Mode.SEAT_FIRST else None,
                number=variables_of(h).get("NUMBER"),
                channel=str(h["Channel"]),
                channel_id=str(h.get("ChannelId") or "") or None,
                started_at=clock.monotonic(),
            )
            assert (await conn.send("Originate", h, action_id=call.attempt_id)).ok
            deadline = time.monotonic() + 60
            while len(results) <= i:
                assert time.monotonic() < deadline, f"{call.attempt_id} never ended"
                await clock.advance(step)
                for _ in range(20):  # let the simulator's bytes reach the client
                    await asyncio.sleep(0)
    finally:
        await conn.close()
    return results
