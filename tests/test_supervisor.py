"""AmiSupervisor: backoff schedule, silence, dead link, reconnect with resync (VirtualClock)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from dialer.ami.exceptions import AmiDisconnected
from dialer.ami.supervisor import AmiConfig, AmiSupervisor, backoff_delay, backoff_delays
from dialer.simulator import PbxSimulator
from schedules.clock import VirtualClock
from tests.test_ami_connection import SECRET, until


def test_backoff_grows_exponentially_up_to_the_cap_with_jitter() -> None:
    assert [backoff_delay(n, base=0.5, cap=30, rand=1.0) for n in range(9)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
        30.0,
    ]
    assert backoff_delay(3, base=0.5, cap=30, rand=0.0) == pytest.approx(0.4)
    assert backoff_delay(100, base=0.5, cap=30, rand=0.5) == pytest.approx(30 * 0.55)
    delays = backoff_delays(0.5, 30, random.Random(1))
    sample = [next(delays) for _ in range(50)]
    assert all(0.05 <= d <= 30 for d in sample)
    assert len(set(sample)) == 50  # jitter: no two clients reconnect in lockstep


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def sim(clock: VirtualClock) -> AsyncIterator[PbxSimulator]:
    s = PbxSimulator(clock=clock, users={"dialer": SECRET})
    await s.start("127.0.0.1", 0)
    yield s
    await s.stop()


def _config(sim: PbxSimulator, **kw: Any) -> AmiConfig:
    return AmiConfig(host=sim.host, port=sim.port, username="dialer", secret=SECRET, **kw)


async def test_link_survives_minutes_of_silence(sim: PbxSimulator, clock: VirtualClock) -> None:
    sup = AmiSupervisor(
        _config(sim, ping_interval=20, ping_timeout=5), clock=clock, event_parser=lambda m: m
    )
    async with sup:
        await until(lambda: sup.connected)
        for _ in range(300):  # five minutes without a single event
            await clock.advance(1.0)
            await asyncio.sleep(0)
        await until(lambda: sim.action_counts["Ping"] >= 14)
        assert sup.connected and sup.connects == 1
        assert (await sup.send("Ping")).ok


async def test_a_silent_dead_link_is_detected_by_ping_and_reopened(
    sim: PbxSimulator, clock: VirtualClock
) -> None:
    sup = AmiSupervisor(
        _config(sim, ping_interval=10, ping_timeout=3, backoff_base=1, backoff_cap=2),
        clock=clock,
        event_parser=lambda m: m,
    )
    async with sup:
        await until(lambda: sup.connected)
        sim.mute = True  # socket open, nothing answered: a half-dead link
        await until(lambda: not sup.connected, clock)
        sim.mute = False
        await until(lambda: sup.connected and sup.connects == 2, clock)


async def test_reconnect_fails_pending_resends_nothing_and_resyncs_live_calls(
    sim: PbxSimulator, clock: VirtualClock
) -> None:
    resyncs: list[list[str]] = []

    def on_resync(channels: Sequence[Any]) -> None:
        resyncs.append(
            sorted(c.channel if hasattr(c, "channel") else c["Channel"] for c in channels)
        )

    sup = AmiSupervisor(
        _config(sim, backoff_base=1, backoff_cap=4), clock=clock, on_resync=on_resync
    )
    async with sup:
        await until(lambda: sup.connected)
        assert resyncs == [[]]
        pending = asyncio.create_task(
            sup.send(
                "Originate",
                {
                    "Channel": "Local/13800000017@customers",
                    "Context": "dialer",
                    "Exten": "connect-seat",
                    "Variable": "SEAT=8001",
                },
                action_id="att-001",
                timeout=60,
            )
        )
        await until(lambda: sim.action_counts["Originate"] == 1)
        await sim.drop_clients()  # mid-call: the customer is ringing
        await until(lambda: pending.done())
        with pytest.raises(AmiDisconnected, match="att-001"):
            pending.result()
        with pytest.raises(AmiDisconnected):
            await sup.send("Ping")
        await until(lambda: len(resyncs) == 2, clock)
        assert sup.connects == 2
        live = resyncs[1]
        # The customer's legs are live; the seat's only if the dialplan got to dial it
        # before the drop (the clock decides): whatever is listed belongs to this call.
        assert any(name.startswith("Local/13800000017@customers-") for name in live)
        assert all(
            name.startswith(("Local/13800000017@customers-", "Local/8001@seats-")) for name in live
        )
        assert sim.action_counts["Originate"] == 1  # never replayed


async def test_stop_cancels_cleanly_while_reconnecting(clock: VirtualClock) -> None:
    sup = AmiSupervisor(AmiConfig(host="127.0.0.1", port=1, secret="x"), clock=clock)
    sup.start()
    await until(lambda: sup.last_error is not None)
    await sup.stop()
    assert not sup.connected


async def test_a_failing_resync_reconnects_instead_of_killing_the_supervisor(
    sim: PbxSimulator, clock: VirtualClock
) -> None:
    attempts: list[int] = []

    def on_resync(channels: Sequence[Any]) -> None:
        attempts.append(len(channels))
        if len(attempts) == 1:
            raise RuntimeError("database is locked")

    sup = AmiSupervisor(
        _config(sim, backoff_base=1, backoff_cap=2), clock=clock, on_resync=on_resync
    )
    async with sup:
        await until(lambda: sup.connected, clock)
        assert len(attempts) == 2 and sup.connects == 2
