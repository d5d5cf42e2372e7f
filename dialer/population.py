"""A call population for measuring pacers: customers, specialists and calls of a pooled
campaign on a virtual clock (an event queue; no wall time, no I/O), seeded, driving the
pacer's interface (`dialer.predictive.Pacer`) directly. A full day of 20 specialists runs
in well under a second; bench/bench_predictive.py prints the figures.

What it models, every distribution a setting (`PopulationSettings`, defaults below):
* customers: answer probability = the answer rate x an hour factor x a weekday factor;
  answered calls ring a while first; unanswered ones end as no answer (at the ring timeout),
  busy, unreachable or invalid, each after its own time;
* specialists: sign in at the start of each window (a little late, at random), take pauses
  (a rate per hour, a duration), talk, wrap up; an answered call goes to the free specialist
  who has waited longest; with none free within 2 s it is abandoned and the customer hears
  the short message;
* the hold rule the dialer applies too: a free specialist who covers a ringing call pauses
  only when the pacer says the calls left uncovered stay within the abandon budget.

Defaults: the demo day's wrap-up (30 s, `callcenter demo`), ring timeout (30 s,
`DialPlan.ring_timeout_ms`) and calling windows (09:30-11:00, 15:30-17:00); ring, talk and
failure times are the desk's typical ones (docs/benchmarks.md "Predictive pacing").
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import Enum, auto

from dialer.predictive import CONNECT_GRACE, Busy, Pacer, PoolState
from schedules.windows import MIN_RING


@dataclass(frozen=True, slots=True)
class Dist:
    """A duration in seconds: `fixed` (a), `uniform` (a..b), `lognormal` (median a, sigma
    b of ln), `exponential` (mean a)."""

    kind: str
    a: float
    b: float = 0.0

    def draw(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        if self.kind == "lognormal":
            return rng.lognormvariate(math.log(self.a), self.b)
        if self.kind == "exponential":
            return rng.expovariate(1.0 / self.a)
        raise ValueError(
            f"unknown distribution {self.kind!r}: fixed, uniform, lognormal, exponential"
        )


@dataclass(frozen=True, slots=True)
class PopulationSettings:
    answer_rate: float = 0.35
    # Answer rate factors by local hour and by weekday (Monday = 0); missing = 1.0.
    hour_factors: tuple[tuple[int, float], ...] = ((9, 0.9), (10, 1.05), (15, 1.0), (16, 1.05))
    weekday_factors: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 0.95, 0.9, 0.85)
    answer_ring: Dist = Dist("lognormal", 7.0, 0.5)  # seconds of ringing before an answer
    ring_timeout: float = 30.0
    # Unanswered calls: (share, how long the call lasts); no answer rings to the timeout.
    unanswered: tuple[tuple[float, Dist | None], ...] = (
        (0.60, None),
        (0.15, Dist("uniform", 1.0, 4.0)),  # busy
        (0.15, Dist("uniform", 4.0, 9.0)),  # switched off / unreachable announcement
        (0.10, Dist("uniform", 1.0, 3.0)),  # invalid number
    )
    talk: Dist = Dist("lognormal", 30.0, 0.9)  # median 30 s, mean about 45 s
    wrap: Dist = Dist("uniform", 25.0, 35.0)  # the demo day's 30 s
    windows: tuple[tuple[float, float], ...] = ((9.5 * 3600, 11 * 3600), (15.5 * 3600, 17 * 3600))
    sign_in_late: Dist = Dist("uniform", 0.0, 120.0)
    pauses_per_hour: float = 0.5
    pause: Dist = Dist("uniform", 120.0, 420.0)
    last_call_margin: float = 35.0  # no new call this close to the window's end
    # Stress: moments when every specialist asks to pause; a spell of other talk times.
    all_pause_at: tuple[float, ...] = ()
    talk_spell: tuple[float, float, Dist] | None = None  # (from, to, talk times)

    def __post_init__(self) -> None:
        if self.ring_timeout < MIN_RING.total_seconds():
            raise ValueError(
                f"calls ring at least {MIN_RING.total_seconds():.0f} s; "
                f"ring_timeout {self.ring_timeout:g} s is shorter"
            )

    def answer_probability(self, day: date, second: float) -> float:
        hour = int(second // 3600)
        f = dict(self.hour_factors).get(hour, 1.0) * self.weekday_factors[day.weekday() % 7]
        return min(1.0, max(0.0, self.answer_rate * f))


class _Ev(Enum):
    RING_END = auto()
    GRACE_END = auto()
    TALK_END = auto()
    WRAP_END = auto()
    SIGN_IN = auto()
    PAUSE = auto()
    PAUSE_END = auto()
    DECIDE = auto()


class _St(Enum):
    OUT = auto()
    FREE = auto()
    TALK = auto()
    WRAP = auto()
    PAUSED = auto()


@dataclass(slots=True)
class _Agent:
    id: int
    state: _St = _St.OUT
    since: float = 0.0  # when the current state began
    wrap_until: float = 0.0
    pause_pending: bool = False
    idle_from: float = 0.0


@dataclass(slots=True)
class DayResult:
    day: date
    calls: int = 0
    answered: int = 0  # live answers: connected or abandoned
    abandoned: int = 0
    talk: float = 0.0  # seconds
    staffed: float = 0.0  # specialist-seconds signed in and not paused, inside the windows
    idle: float = 0.0  # of that, free (waiting for a call)
    window_seconds: float = 0.0
    abandon_30d: float = 0.0  # the campaign's rolling 30-day rate at the day's end
    messages: int = 0  # abandon messages played

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.answered if self.answered else 0.0


@dataclass(slots=True)
class _Call:
    id: int
    start: float
    answers: bool


@dataclass
class _Day:
    """One simulated day: the event queue and the pool's state."""

    settings: PopulationSettings
    pacer: Pacer
    day: date
    rng: random.Random
    agents: list[_Agent]
    result: DayResult
    decide_every: float = 1.0
    events: list[tuple[float, int, _Ev, int]] = field(default_factory=list)
    ringing: dict[int, _Call] = field(default_factory=dict)
    waiting: deque[int] = field(default_factory=deque)
    seq: int = 0
    now: float = 0.0
    window_end: float = 0.0
    decide_at: float | None = None
    pending: set[int] = field(default_factory=set)  # free specialists waiting to pause

    def at(self, t: float, ev: _Ev, ref: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, ev, ref))

    # -- the pool as the pacer sees it -----------------------------------------------------
    def state(self, leaving: _Agent | None = None, *, busy_too: bool = True) -> PoolState:
        free = sum(
            1
            for a in self.agents
            if a.state is _St.FREE and not a.pause_pending and a is not leaving
        )
        ringing = [self.now - c.start for c in self.ringing.values()]
        if not busy_too:  # only the predictive model looks at the busy specialists
            return PoolState(self.day, free, ringing, (), len(self.waiting))
        busy = [
            Busy(self.now - a.since, 0.0)
            if a.state is _St.TALK
            else Busy(None, a.wrap_until - self.now)
            for a in self.agents
            if a.state in (_St.TALK, _St.WRAP) and not a.pause_pending
        ]
        return PoolState(self.day, free, ringing, busy, len(self.waiting))

    def _set(self, a: _Agent, st: _St) -> None:
        if a.state is _St.FREE and self.window_end > 0:
            self.result.idle += max(0.0, min(self.now, self.window_end) - a.idle_from)
        a.state, a.since = st, self.now
        if st is _St.FREE:
            a.idle_from = self.now

    def _account(self, a: _Agent, st: _St) -> None:
        """Staffed time: counted from sign-in or a pause's end to a pause or the window's end."""
        if st in (_St.FREE,) and a.state in (_St.OUT, _St.PAUSED):
            self.result.staffed -= min(self.now, self.window_end)
        if st is _St.PAUSED or st is _St.OUT:
            self.result.staffed += min(self.now, self.window_end)

    # -- events ----------------------------------------------------------------------------
    def free_agent(self, a: _Agent) -> None:
        """`a` has just become available: a waiting call first, else a pending pause."""
        if a.pause_pending and self.pacer.may_release(self.state(leaving=a, busy_too=False)):
            a.pause_pending = False
            self.pending.discard(a.id)
            self._account(a, _St.PAUSED)
            self._set(a, _St.PAUSED)
            self.at(self.now + self.settings.pause.draw(self.rng), _Ev.PAUSE_END, a.id)
            return
        self._set(a, _St.FREE)
        if a.pause_pending:
            self.pending.add(a.id)
        if self.waiting:
            self.connect(self.waiting.popleft(), a)

    def connect(self, call_id: int, a: _Agent) -> None:
        self.pending.discard(a.id)
        self.pacer.answered(self.day, abandoned=False)
        self.result.answered += 1
        self._set(a, _St.TALK)
        spell = self.settings.talk_spell
        dist = spell[2] if spell and spell[0] <= self.now < spell[1] else self.settings.talk
        talk = dist.draw(self.rng)
        self.result.talk += talk
        self.at(self.now + talk, _Ev.TALK_END, a.id)

    def longest_idle(self) -> _Agent | None:
        free = [a for a in self.agents if a.state is _St.FREE]
        if not free:
            return None
        # A free specialist about to pause takes the call first: their pause waits on it.
        return min(free, key=lambda a: (not a.pause_pending, a.idle_from))

    def ring_end(self, call_id: int) -> None:
        call = self.ringing.pop(call_id)
        est = self.pacer.estimates
        est.attempt_ended(answered=call.answers, ring_seconds=self.now - call.start)
        if not call.answers:
            return
        a = self.longest_idle()
        if a is not None:
            self.connect(call_id, a)
        else:
            self.waiting.append(call_id)
            self.at(self.now + CONNECT_GRACE, _Ev.GRACE_END, call_id)

    def grace_end(self, call_id: int) -> None:
        if call_id in self.waiting:
            self.waiting.remove(call_id)
            self.pacer.answered(self.day, abandoned=True)
            self.result.answered += 1
            self.result.abandoned += 1
            self.result.messages += 1

    def talk_end(self, a: _Agent) -> None:
        self.pacer.estimates.talk_ended(self.now - a.since)
        wrap = self.settings.wrap.draw(self.rng)
        self._set(a, _St.WRAP)
        a.wrap_until = self.now + wrap
        self.at(a.wrap_until, _Ev.WRAP_END, a.id)

    def wrap_end(self, a: _Agent) -> None:
        self.pacer.estimates.wrap_ended(self.now - a.since)
        if self.now >= self.window_end:
            self._account(a, _St.OUT)
            self._set(a, _St.OUT)
            return
        self.free_agent(a)

    def pause(self, a: _Agent) -> None:
        self._schedule_pause(a)
        if a.state is _St.PAUSED or a.state is _St.OUT or a.pause_pending:
            return
        a.pause_pending = True
        if a.state is _St.FREE:
            self.free_agent(a)

    def _schedule_pause(self, a: _Agent) -> None:
        # The rate per second, tested rather than the hourly figure: a tiny hourly rate
        # (hypothesis drew 5e-324) divides to 0.0, and expovariate(0.0) divides by zero.
        rate = self.settings.pauses_per_hour / 3600.0
        if rate > 0:
            gap = self.rng.expovariate(rate)
            if self.now + gap < self.window_end:
                self.at(self.now + gap, _Ev.PAUSE, a.id)

    def sign_in(self, a: _Agent) -> None:
        if self.now >= self.window_end:
            return
        self._account(a, _St.FREE)
        self.free_agent(a)
        self._schedule_pause(a)

    def pause_end(self, a: _Agent) -> None:
        if self.now >= self.window_end:
            self._set(a, _St.OUT)
            return
        self._account(a, _St.FREE)
        self.free_agent(a)

    def decide(self) -> None:
        self.decide_at = None
        if self.now > self.window_end - self.settings.last_call_margin:
            return
        pacer = self.pacer
        modelled = pacer.limits.predictive and pacer.estimates.certain(pacer.limits)
        d = pacer.decide(self.state(busy_too=modelled))
        p = self.settings.answer_probability(self.day, self.now)
        for _ in range(d.calls):
            self.place(p)

    def place(self, p: float) -> None:
        s, rng = self.settings, self.rng
        self.result.calls += 1
        answers = rng.random() < p
        if answers:
            ring = s.answer_ring.draw(rng)
            answers = ring < s.ring_timeout
            if not answers:
                ring = s.ring_timeout
        else:
            ring = _unanswered(s, rng)
        self.seq += 1
        call = _Call(self.seq, self.now, answers)
        self.ringing[call.id] = call
        self.at(self.now + ring, _Ev.RING_END, call.id)

    def run_window(self, start: float, end: float) -> None:
        self.window_end = end
        self.pacer.new_window()
        self.result.window_seconds += end - start
        for a in self.agents:
            self.at(start + self.settings.sign_in_late.draw(self.rng), _Ev.SIGN_IN, a.id)
            for t in self.settings.all_pause_at:
                if start <= t < end:
                    self.at(t, _Ev.PAUSE, a.id)
        handlers: dict[_Ev, Callable[[int], None]] = {
            _Ev.RING_END: self.ring_end,
            _Ev.GRACE_END: self.grace_end,
            _Ev.TALK_END: lambda i: self.talk_end(self.agents[i]),
            _Ev.WRAP_END: lambda i: self.wrap_end(self.agents[i]),
            _Ev.SIGN_IN: lambda i: self.sign_in(self.agents[i]),
            _Ev.PAUSE: lambda i: self.pause(self.agents[i]),
            _Ev.PAUSE_END: lambda i: self.pause_end(self.agents[i]),
            _Ev.DECIDE: lambda i: self.decide(),
        }
        while self.events:
            t, _, ev, ref = heapq.heappop(self.events)
            self.now = t
            handlers[ev](ref)
            for i in list(self.pending):
                if self.agents[i].state is _St.FREE:
                    self.free_agent(self.agents[i])
            if self.decide_at is None and ev is not _Ev.DECIDE and t < end:
                self.decide_at = t + (0.0 if ev is _Ev.SIGN_IN else self.decide_every)
                self.at(self.decide_at, _Ev.DECIDE)
        for a in self.agents:
            if a.state is not _St.OUT:
                if a.state is _St.FREE:
                    self.result.idle += max(0.0, end - a.idle_from)
                if a.state is not _St.PAUSED:
                    self.result.staffed += end
                a.state, a.pause_pending = _St.OUT, False
        self.pending.clear()


def _unanswered(s: PopulationSettings, rng: random.Random) -> float:
    x = rng.random() * sum(w for w, _ in s.unanswered)
    for w, dist in s.unanswered:
        x -= w
        if x <= 0:
            return s.ring_timeout if dist is None else min(s.ring_timeout, dist.draw(rng))
    return s.ring_timeout


def simulate_day(
    settings: PopulationSettings, pacer: Pacer, specialists: int, day: date, seed: int
) -> DayResult:
    rng = random.Random(f"{seed}:{day.isoformat()}")
    sim = _Day(settings, pacer, day, rng, [_Agent(i) for i in range(specialists)], DayResult(day))
    for start, end in settings.windows:
        sim.now = start
        sim.run_window(start, end)
    sim.result.abandon_30d = pacer.ledger.window(day).rate
    pacer.ledger.prune(day)
    return sim.result


def simulate_days(
    settings: PopulationSettings,
    pacer: Pacer,
    specialists: int,
    days: int = 30,
    seed: int = 1,
    first: date = date(2026, 11, 2),
) -> list[DayResult]:
    """`days` calling days (weekends skipped) for one pacer: the same seed gives the same
    customers and specialists to every pacer."""
    out: list[DayResult] = []
    d = first
    while len(out) < days:
        if d.weekday() < 5:
            out.append(simulate_day(settings, pacer, specialists, d, seed))
        d += timedelta(days=1)
    return out


__all__ = ["DayResult", "Dist", "PopulationSettings", "simulate_day", "simulate_days"]
