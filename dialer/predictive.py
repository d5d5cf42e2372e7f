"""Predictive pacing for pooled campaigns: how many customer-first calls to start now so that
answered calls find a free specialist, with the abandon rate held under its cap. Pure: plain
data in, a number of calls out; time is what the caller says (`now`, seconds, monotonic).

The method (docs/dialer.md "Predictive pacing"):

1. **Estimates per campaign and window** (`Estimates`): answer probability (recent attempts
   weigh more, so a jump in the answer rate is followed within a few dozen calls), the ring
   time of answered and of unanswered calls, talk time and wrap-up time (recent samples).
   Few samples (the start of a window) = uncertain = progressive.
2. **The marginal risk of one more call** (a queueing model of the next 30 seconds, after
   Samuelson, "Predictive dialing for outbound telephone call centers", Interfaces 29(5),
   1999): every 2 s ahead, Y = the answers by then of the calls ringing (each with its chance
   given how long it has rung) and of the answered calls waiting, plus the talkers still
   busy by then; K = the specialists who can be free by then (free now, wrap-ups ending by
   then with the 2 s grace, every talker). Y is a Poisson-binomial; P(Y >= K) by the refined
   normal approximation (skewness-corrected: few answers are skewed). A call started now is
   answered at one of those moments with the chance the ring times give; its marginal risk
   is the chance that, answered, it finds no specialist. The pacer starts calls while the
   next one's risk stays within the target (one threshold for every call: spending the
   abandons where they buy the most talk).
3. **An adaptive drop-rate controller** (like the adaptive modes of VICIdial): the model's
   threshold = target x a gain; each connected answer raises the gain a little, each
   abandon lowers it (1 - target) / target times as much, so the abandons settle at the
   target whatever the model misjudges (answers bunch up, specialists pause).
4. **Hard guards that do not trust the estimates** (`Pacer.budget`): every ringing call
   beyond the free specialists is counted as if it will be answered and abandoned. Such
   calls are allowed only while the rolling 30 days ending today, with all of them
   abandoned, stay at or under the cap, and today alone at or under the day's ceiling
   (`day_cap`, 5 %, of at least `day_floor` answers, 200; set it to the cap and the floor to
   0 to hold every single day to the cap). A free specialist
   who covers a ringing call cannot pause until the calls settle (`Pacer.may_release`; the
   simulator applies it, and so must the dialer), so the count of uncovered calls only grows
   by new calls, and the rates hold at every moment of every calling day.
5. **Supervisor caps**: calls in flight per available specialist (`ratio_cap`, progressive
   = 1) and the target abandon rate (never above the cap; the cap never above the legal
   maximum).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum

LEGAL_MAX_ABANDON = 0.03  # the desk's jurisdiction: 3 % of live answers over 30 days
ABANDON_DAYS = 30
CONNECT_GRACE = 2.0  # an answered call with no specialist within this many seconds is abandoned
ADAPT_STEP = 0.01  # the controller's step per connected answer (log of the gain)
# The model's target x gain: where the controller starts and its bounds.
GAIN_START, GAIN_MIN, GAIN_MAX = 0.5, 0.02, 10.0


class PacingMode(StrEnum):
    PROGRESSIVE = "progressive"
    PREDICTIVE = "predictive"


@dataclass(frozen=True, slots=True)
class PacingLimits:
    """What a supervisor and the law allow for one campaign."""

    abandon_cap: float = 0.03  # hard: never above over the rolling 30 days
    target_abandon: float = 0.02  # what the model aims at, at or under the cap
    ratio_cap: float = 3.0  # calls in flight per available specialist
    legal_max: float = LEGAL_MAX_ABANDON
    min_answers: int = 15  # answered calls in the window before the estimates are trusted
    min_attempts: int = 40
    predictive: bool = True  # False: always progressive
    # Hard as well: no single day above this (never below the cap; = the cap: every day
    # held to the cap, so the 30 days hold even if the campaign stops calling) ...
    day_cap: float = 0.05
    # ... measured against at least this many answers: a day with fewer may abandon
    # day_cap x day_floor calls (10), so a day does not start progressive until its first
    # ~20 answers (0: strictly the day's own answers).
    day_floor: int = 200

    def __post_init__(self) -> None:
        if not 0.0 <= self.legal_max < 1.0:
            raise ValueError("the legal maximum abandon rate must be between 0 and 1")
        if not 0.0 <= self.abandon_cap <= self.legal_max:
            raise ValueError(
                f"the abandon cap {self.abandon_cap:.2%} must be between 0 and the legal "
                f"maximum {self.legal_max:.2%}; set a lower cap"
            )
        if not 0.0 <= self.target_abandon <= self.abandon_cap:
            raise ValueError(
                f"the target abandon rate {self.target_abandon:.2%} must not exceed the cap "
                f"{self.abandon_cap:.2%}"
            )
        if self.ratio_cap < 1.0:
            raise ValueError("the pacing ratio cap must be at least 1 (1 = progressive)")
        if not 0.0 <= self.day_cap < 1.0:
            raise ValueError("the day's abandon ceiling must be between 0 and 1")
        if self.day_floor < 0:
            raise ValueError("the day's floor of answers must not be negative")


# -- the 30-day record ----------------------------------------------------------------------


@dataclass(slots=True)
class DayCount:
    answered: int = 0  # live answers: connected to a specialist or abandoned
    abandoned: int = 0

    @property
    def rate(self) -> float:
        return self.abandoned / self.answered if self.answered else 0.0


@dataclass(slots=True)
class AbandonLedger:
    """Live answers and abandons per calling day of one campaign."""

    days: dict[date, DayCount] = field(default_factory=dict)

    def record(self, day: date, *, abandoned: bool) -> None:
        c = self.days.setdefault(day, DayCount())
        c.answered += 1
        c.abandoned += int(abandoned)

    def day(self, day: date) -> DayCount:
        return self.days.get(day, DayCount())

    def window(self, today: date, days: int = ABANDON_DAYS) -> DayCount:
        """The rolling `days` ending with `today`."""
        first = today - timedelta(days=days - 1)
        out = DayCount()
        for d, c in self.days.items():
            if first <= d <= today:
                out.answered += c.answered
                out.abandoned += c.abandoned
        return out

    def budget(self, today: date, cap: float, floor: int = 0) -> int:
        """How many ringing calls may go uncovered by a free specialist: if all of them were
        answered and abandoned, today's abandons would still be at or under `cap` x today's
        answers, or x `floor` while the day has fewer answers than that."""
        return _room(self.day(today), cap, floor)

    def window_budget(self, today: date, cap: float, days: int = ABANDON_DAYS) -> int:
        """The same for the rolling `days` ending with `today`: if every uncovered call were
        answered and abandoned, the 30-day rate would still be at or under `cap`."""
        return _room(self.window(today, days), cap)

    def prune(self, today: date, keep: int = ABANDON_DAYS) -> None:
        first = today - timedelta(days=keep - 1)
        for d in [d for d in self.days if d < first]:
            del self.days[d]


def _room(c: DayCount, cap: float, floor: int = 0) -> int:
    """The most uncovered calls U with abandoned + U <= cap x max(answered + U, floor)."""
    if cap <= 0.0:
        return 0
    room = math.floor((cap * c.answered - c.abandoned) / (1.0 - cap) + 1e-9)
    if floor > c.answered:  # while answered + U stays under the floor, the floor counts
        room = max(room, min(math.floor(cap * floor - c.abandoned + 1e-9), floor - c.answered - 1))
    return max(0, room)


def abandon_budget(ledger: AbandonLedger, today: date, limits: PacingLimits) -> int:
    """The hard rule, whatever the estimates: how many calls may ring uncovered by a free
    specialist so that, if every one were answered and abandoned, the rolling 30 days ending
    today stay at or under the cap and today at or under its ceiling (of at least
    `day_floor` answers). The pacer and the dialer's last word (`dialer.pool_state`) both
    apply it."""
    return min(
        ledger.window_budget(today, limits.abandon_cap),
        ledger.budget(today, max(limits.day_cap, limits.abandon_cap), limits.day_floor),
    )


# -- estimates --------------------------------------------------------------------------------


class _Samples:
    """Recent durations, kept sorted for survival look-ups."""

    def __init__(self, size: int) -> None:
        self.recent: deque[float] = deque(maxlen=size)
        self.sorted: list[float] = []
        self.total = 0.0
        self._survival: dict[float, float] = {}  # look-ups since the last sample

    def add(self, x: float) -> None:
        self._survival.clear()
        if len(self.recent) == self.recent.maxlen:
            old = self.recent[0]
            del self.sorted[bisect_right(self.sorted, old) - 1]
            self.total -= old
        self.recent.append(x)
        self.total += x
        self.sorted.insert(bisect_right(self.sorted, x), x)

    def __len__(self) -> int:
        return len(self.sorted)

    def mean(self, default: float) -> float:
        return self.total / len(self.sorted) if self.sorted else default

    def survival(self, t: float) -> float:
        """The share of samples longer than `t` (1.0 with no samples: assume it goes on)."""
        s = self._survival.get(t)
        if s is None:
            n = len(self.sorted)
            s = self._survival[t] = 1.0 if n == 0 else (n - bisect_right(self.sorted, t)) / n
        return s

    def quantile(self, q: float, default: float) -> float:
        if not self.sorted:
            return default
        return self.sorted[min(len(self.sorted) - 1, int(q * len(self.sorted)))]


class Estimates:
    """Live estimates of one campaign in one window."""

    def __init__(self, half_life: float = 300.0, samples: int = 400) -> None:
        # Exponentially weighted counts: an attempt `half_life` attempts ago weighs half.
        self._decay = 0.5 ** (1.0 / half_life)
        self._w_attempts = 0.0
        self._w_answers = 0.0
        self.attempts = 0
        self.answers = 0
        self.answer_ring = _Samples(samples)  # ring seconds before an answer
        self.fail_ring = _Samples(samples)  # seconds an unanswered call lasted
        self.talk = _Samples(samples)
        self.wrap = _Samples(samples)

    def attempt_ended(self, *, answered: bool, ring_seconds: float) -> None:
        self._w_attempts = self._w_attempts * self._decay + 1.0
        self._w_answers = self._w_answers * self._decay + float(answered)
        self.attempts += 1
        self.answers += int(answered)
        (self.answer_ring if answered else self.fail_ring).add(ring_seconds)

    def talk_ended(self, seconds: float) -> None:
        self.talk.add(seconds)

    def wrap_ended(self, seconds: float) -> None:
        self.wrap.add(seconds)

    @property
    def answer_probability(self) -> float:
        # A weak prior of one answer in two attempts keeps it off 0 and 1 with few calls.
        return (self._w_answers + 1.0) / (self._w_attempts + 2.0)

    def certain(self, limits: PacingLimits) -> bool:
        return self.answers >= limits.min_answers and self.attempts >= limits.min_attempts

    def answers_after(self, rung: float) -> float:
        """The chance that a call which has rung `rung` seconds without result is answered."""
        p = self.answer_probability
        a = p * self.answer_ring.survival(rung)
        f = (1.0 - p) * self.fail_ring.survival(rung)
        return a / (a + f) if a + f > 0 else 0.0

    def answers_within(self, rung: float, horizons: Sequence[float]) -> list[float]:
        """For each horizon, the chance that a call which has rung `rung` seconds without
        result is answered within the next that many seconds."""
        p = self.answer_probability
        alive = self.answer_ring.survival(rung)
        den = p * alive + (1.0 - p) * self.fail_ring.survival(rung)
        if den <= 0:
            return [0.0] * len(horizons)
        return [p * (alive - self.answer_ring.survival(rung + h)) / den for h in horizons]

    def free_within(self, talked: float | None, wrap_left: float, horizon: float) -> float:
        """The chance that a busy specialist is free within `horizon` seconds: one who is
        talking (`talked` seconds so far) must finish and wrap up; one wrapping up has
        `wrap_left` seconds to go."""
        if talked is None:
            return 1.0 if wrap_left <= horizon else 0.0
        left = horizon - self.wrap.mean(30.0)
        if left < 0:
            return 0.0
        alive = self.talk.survival(talked)
        if alive <= 0.0:
            return 1.0
        return max(0.0, (alive - self.talk.survival(talked + left)) / alive)


# -- the decision ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Busy:
    """A signed-in specialist of the pool who is on a call or wrapping up."""

    talked: float | None  # seconds talked so far; None when wrapping up
    wrap_left: float = 0.0


@dataclass(frozen=True, slots=True)
class PoolState:
    """The pool as the dialer sees it at one moment."""

    today: date
    free: int  # signed in, idle, not about to pause
    ringing: Sequence[float]  # seconds each call in flight has rung
    busy: Sequence[Busy] = ()
    waiting: int = 0  # answered calls waiting (under 2 s) for a specialist

    @property
    def uncovered(self) -> int:
        """Calls that would be abandoned if every one were answered now."""
        return max(0, len(self.ringing) + self.waiting - self.free)


@dataclass(frozen=True, slots=True)
class Decision:
    calls: int  # start this many now
    mode: PacingMode
    reason: str
    expected_abandon: float = 0.0  # the model's E[(X - A)+] / E[X] after these calls
    budget: int = 0  # uncovered calls the hard guard allows


def progressive_calls(free: int, ringing: int) -> int:
    """One call per free specialist not already covering a ringing call."""
    return max(0, free - ringing)


def _tail(mean: float, var: float, skew: float, k: int) -> float:
    """P(Y >= k) for Y a sum of independent Bernoulli trials (a Poisson-binomial) with this
    mean, variance and third central moment: the refined normal approximation (Volkova 1996;
    Hong, "On computing the distribution function for the Poisson binomial distribution",
    2013), a normal with a continuity and a skewness correction: with few likely answers
    the plain normal underestimates the tail many times over."""
    if var <= 1e-12:
        return 1.0 if mean >= k - 1e-9 else 0.0
    sd = math.sqrt(var)
    x = (k - 0.5 - mean) / sd
    gamma = skew / (sd * var)
    below = 0.5 * math.erfc(-x / math.sqrt(2.0)) + gamma * (1.0 - x * x) * math.exp(
        -0.5 * x * x
    ) / (6.0 * math.sqrt(2.0 * math.pi))
    return min(1.0, max(0.0, 1.0 - below))


# Moments ahead at which answers meet specialists: every 2 s over the answered calls' ring
# times (a coarser grid counts a specialist free at 16 s for an answer at 9 s).
HORIZONS = tuple(float(h) for h in range(1, 30, 2))


@dataclass(slots=True)
class _Horizon:
    """At one moment ahead: Y = answers by then (of the calls in flight and the answered
    calls waiting) + talkers still busy by then (+ the grace); K = specialists who can be
    free by then (free now, wrap-ups ending by then, all talkers). A call answered then finds
    no specialist when Y >= K."""

    mean: float
    var: float
    skew: float  # the third central moment
    agents: int
    new: float  # a call started now: the chance it is answered by then

    def full(self) -> float:
        return _tail(self.mean, self.var, self.skew, self.agents)

    def add(self) -> None:
        q = self.new
        self.mean += q
        self.var += q * (1.0 - q)
        self.skew += q * (1.0 - q) * (1.0 - 2.0 * q)


def _most_calls(horizons: Sequence[_Horizon], room: int, threshold: float) -> tuple[int, float]:
    """The most new calls (at most `room`) each of which, when answered, finds no specialist
    with a chance of at most `threshold` (the marginal risk); and the last one's risk."""
    weights = [h.new - (horizons[i - 1].new if i else 0.0) for i, h in enumerate(horizons)]
    answered = sum(weights)
    if answered <= 0.0:
        return room, 0.0
    # Moments at which a new call is (almost) never answered weigh nothing: skip them.
    weighed = [(w, h) for w, h in zip(weights, horizons, strict=True) if w > 1e-4]
    calls, risk = 0, 0.0
    while calls < room:
        r = sum(w * h.full() for w, h in weighed) / answered
        if r > threshold:
            break
        calls, risk = calls + 1, r
        for h in horizons:
            h.add()
    return calls, risk


class Pacer:
    """The pacer of one pooled campaign: `decide(state)` how many calls to start; the dialer
    (or the simulator) reports what happened through `attempt_ended`, `answered`, and the
    estimates. A new window: `new_window()` (its estimates start afresh, so progressive)."""

    def __init__(self, limits: PacingLimits, ledger: AbandonLedger | None = None) -> None:
        self.limits = limits
        self.ledger = ledger if ledger is not None else AbandonLedger()
        self.estimates = Estimates()
        self.gain = GAIN_START

    def new_window(self) -> None:
        self.estimates = Estimates()

    def answered(self, day: date, *, abandoned: bool) -> None:
        self.ledger.record(day, abandoned=abandoned)
        self._adapt(abandoned)

    def decide(self, state: PoolState) -> Decision:
        lim = self.limits
        ringing = len(state.ringing) + state.waiting
        progressive = progressive_calls(state.free, ringing)
        if not lim.predictive:
            return Decision(progressive, PacingMode.PROGRESSIVE, "progressive by setting")
        if not self.estimates.certain(lim):
            return Decision(progressive, PacingMode.PROGRESSIVE, "estimates uncertain")
        budget = self.budget(state.today)
        # Hard: calls not covered by a free specialist never exceed the abandon budget.
        room = state.free + budget - ringing
        if room <= progressive:
            return Decision(progressive, PacingMode.PROGRESSIVE, "abandon budget", budget=budget)
        horizons, available = self._horizons(state)
        # Supervisor's cap on calls in flight per available specialist.
        room = min(room, math.floor(lim.ratio_cap * max(available, 1.0)) - ringing)
        calls, risk = _most_calls(horizons, room, self.adapted_target(state.today))
        return Decision(max(calls, progressive), PacingMode.PREDICTIVE, "model", risk, budget)

    def _horizons(self, state: PoolState) -> tuple[list[_Horizon], float]:
        """The moments ahead, and the specialists expected free by the last of them."""
        est = self.estimates
        # Calls that have rung about as long answer alike: one look-up per half second.
        rungs = Counter(round(r * 2.0) / 2.0 for r in state.ringing)
        within = [(n, est.answers_within(r, HORIZONS)) for r, n in rungs.items()]
        new_call = est.answers_within(0.0, HORIZONS)
        wraps = sorted(b.wrap_left for b in state.busy if b.talked is None)
        talking = [round(b.talked * 2.0) / 2.0 for b in state.busy if b.talked is not None]
        wrap_mean = est.wrap.mean(30.0)
        out = []
        still_talking = float(len(talking))
        for i, h in enumerate(HORIZONS):
            by = h + CONNECT_GRACE
            mean, var, skew = float(state.waiting), 0.0, 0.0
            for n, qs in within:
                q = qs[i]
                v = n * q * (1.0 - q)
                mean, var, skew = mean + n * q, var + v, skew + v * (1.0 - 2.0 * q)
            if by > wrap_mean:  # else no one talking now can also wrap up by then
                still_talking = 0.0
                for t in talking:
                    q = 1.0 - est.free_within(t, 0.0, by)
                    v = q * (1.0 - q)
                    still_talking, var, skew = still_talking + q, var + v, skew + v * (1 - 2 * q)
            agents = state.free + bisect_right(wraps, by) + len(talking)
            out.append(_Horizon(mean + still_talking, var, skew, agents, new_call[i]))
        return out, out[-1].agents - still_talking

    def adapted_target(self, today: date) -> float:
        """The model's target, corrected by the controller's gain."""
        return self.limits.target_abandon * self.gain

    def _adapt(self, abandoned: bool) -> None:
        """An integral controller on the drop rate, like the adaptive modes of VICIdial: each
        connected answer raises the gain a little, each abandon lowers it by (1 - target) /
        target times as much, so the gain settles where abandons run at the target. The
        model alone misjudges (answers bunch up, specialists pause), and this corrects it."""
        t = self.limits.target_abandon
        if t <= 0:
            return
        step = ADAPT_STEP * ((1.0 - t) / t if abandoned else -1.0)
        self.gain = min(GAIN_MAX, max(GAIN_MIN, self.gain * math.exp(-step)))

    def budget(self, today: date) -> int:
        """Calls that may ring uncovered by a free specialist: if every one were answered and
        abandoned, the rolling 30 days would stay at or under the cap and today at or under
        the day's ceiling (of at least `day_floor` answers)."""
        return abandon_budget(self.ledger, today, self.limits)

    def may_release(self, state: PoolState) -> bool:
        """May a free specialist leave (pause, sign out)? `state` is the pool without them:
        yes when the calls it leaves uncovered stay within the abandon budget."""
        return state.uncovered <= self.budget(state.today)


__all__ = [
    "ABANDON_DAYS",
    "CONNECT_GRACE",
    "LEGAL_MAX_ABANDON",
    "AbandonLedger",
    "Busy",
    "DayCount",
    "Decision",
    "Estimates",
    "Pacer",
    "PacingLimits",
    "PacingMode",
    "PoolState",
    "abandon_budget",
    "progressive_calls",
]
