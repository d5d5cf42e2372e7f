from __future__ import annotations

import math

import pytest

from dialer.pacing import RateLimiter, TrunkLimiter, campaign_capacity


def test_rate_limiter_spaces_calls_at_its_rate() -> None:
    rl = RateLimiter(rate=2.0, burst=1)
    assert rl.take(0.0)
    assert not rl.take(0.1)
    assert rl.delay(0.1) == pytest.approx(0.4)
    assert rl.take(0.5)


def test_rate_limiter_allows_a_burst_then_the_rate() -> None:
    rl = RateLimiter(rate=1.0, burst=3)
    assert [rl.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert rl.take(1.0)


def test_trunk_limiter_caps_simultaneous_calls_until_release() -> None:
    tl = TrunkLimiter(max_calls=2, max_cps=100)
    assert tl.admit(0.0) == 0.0
    assert tl.admit(1.0) == 0.0
    assert tl.admit(2.0) == math.inf
    tl.release()
    assert tl.admit(3.0) == 0.0


def test_trunk_limiter_caps_new_calls_per_second() -> None:
    tl = TrunkLimiter(max_calls=100, max_cps=5)
    started = 0
    now = 0.0
    while now < 10.0:
        wait = tl.admit(now)
        if wait == 0.0:
            started += 1
        now += 0.01
    assert 49 <= started <= 51


def test_campaign_capacity_is_never_negative() -> None:
    assert campaign_capacity(10, 4) == 6
    assert campaign_capacity(3, 5) == 0


def test_a_trunk_keeps_one_limiter_when_two_campaigns_set_its_limits() -> None:
    from dialer.ami.supervisor import AmiConfig
    from dialer.state import AmiServerSpec, PbxServer

    server = PbxServer(AmiServerSpec("pbx1", AmiConfig()))
    first = server.trunk("carrier", 30, 5.0)
    assert first.admit(0.0) == 0.0
    # A call waiting on `first` must see the release made after the other campaign's call.
    second = server.trunk("carrier", 60, 20.0)
    assert second is first and (second.active, second.max_calls) == (1, 60)
    second.release()
    assert first.active == 0


def test_calls_reserving_together_get_evenly_spaced_slots_in_their_order() -> None:
    tl = TrunkLimiter(max_calls=100, max_cps=1000)
    waits = [tl.reserve(5.0) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.001, 0.002, 0.003])
    assert tl.active == 4
    # Once the slots have passed, the next call starts at once (no burst built up meanwhile).
    assert tl.reserve(6.0) == 0.0
    assert tl.reserve(6.0) == pytest.approx(0.001)


def test_a_full_trunk_reserves_no_slot_until_a_call_ends() -> None:
    tl = TrunkLimiter(max_calls=1, max_cps=10)
    assert tl.reserve(0.0) == 0.0
    assert tl.reserve(1.0) is None and tl.active == 1
    tl.release()
    assert tl.reserve(1.0) == 0.0
