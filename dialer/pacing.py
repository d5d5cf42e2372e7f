"""Pacing: how many calls may run and how fast new ones may start. Pure, over a monotonic time
given by the caller (the project Clock's `monotonic()`), so tests need no sleeps.

* `RateLimiter`: a token bucket, `rate` new calls per second with a burst of `burst`.
* `TrunkLimiter`: per trunk, a maximum of simultaneous calls and of new calls per second.
* `campaign_capacity`: how many more calls a campaign may start now.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(slots=True)
class RateLimiter:
    """Token bucket. `delay(now)` says how long until a call may start; `take(now)` takes one
    token if there is one. Time never runs backwards for it (an earlier `now` is ignored)."""

    rate: float  # tokens per second
    burst: float = 1.0
    tokens: float = field(default=-1.0)
    last: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        if self.tokens < 0:
            self.tokens = self.burst

    def _refill(self, now: float) -> None:
        if self.last is None:
            self.last = now
            return
        if now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now

    def delay(self, now: float) -> float:
        self._refill(now)
        if self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def reserve(self, now: float) -> float:
        """Take the next token, now or in the future (the bucket goes into debt): how long
        until it is due. Callers that reserve together get evenly spaced slots in their
        order, and each waits once, instead of all waking to retry for every token."""
        self._refill(now)
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0.0 else -self.tokens / self.rate


@dataclass(slots=True)
class TrunkLimiter:
    """A trunk's limits: at most `max_calls` at once and `max_cps` new calls per second.

    `admit(now)` returns 0.0 when a call may start (and counts it), a positive number of
    seconds to wait for the rate limit, or `math.inf` when the trunk is full (wait for a
    `release()`). `reserve(now)` counts the call at once and books its slot of the rate."""

    max_calls: int
    max_cps: float
    active: int = 0
    bucket: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        if self.max_calls < 0:
            raise ValueError("max_calls must not be negative")
        # A burst of 1: calls start evenly spaced, never in a clump at the top of a second.
        self.bucket = RateLimiter(self.max_cps, 1.0)

    def admit(self, now: float) -> float:
        if self.active >= self.max_calls:
            return math.inf
        if not self.bucket.take(now):
            return self.bucket.delay(now)
        self.active += 1
        return 0.0

    def reserve(self, now: float) -> float | None:
        """Count a call now and give it the next slot of the rate: the seconds to wait for
        it (0.0: start now), or None when the trunk is full (wait for a `release()`)."""
        if self.active >= self.max_calls:
            return None
        self.active += 1
        return self.bucket.reserve(now)

    def release(self) -> None:
        if self.active > 0:
            self.active -= 1

    @property
    def full(self) -> bool:
        return self.active >= self.max_calls


def campaign_capacity(concurrency: int, active: int) -> int:
    """More calls a campaign may start now (never negative)."""
    return max(0, concurrency - active)


__all__ = ["RateLimiter", "TrunkLimiter", "campaign_capacity"]
