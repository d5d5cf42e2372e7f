"""How a simulated customer behaves: by the last digit of the number (the lab dialplan and
the sipp peers of the real traces), or drawn from a scenario file.

Scenario file (JSON or TOML), all keys optional::

    seed = 7
    [outcomes]            # weights, normalised
    answer = 0.55
    busy = 0.10
    noanswer = 0.15
    congestion = 0.05
    poweredoff = 0.05
    unallocated = 0.05
    hangupearly = 0.03
    press1 = 0.02
    [ring_seconds]        # one of: fixed / uniform / exponential / lognormal
    uniform = [2, 12]
    [talk_seconds]
    lognormal = [4.0, 0.6]   # mu, sigma of ln(seconds): median e^4 = 55 s

Unless `digits_override = false`, numbers whose last digit is listed in `digits` keep a
fixed behaviour, e.g. `digits = ["1"]` keeps every ...1 number busy.
"""

from __future__ import annotations

import json
import math
import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

KINDS = (
    "answer",
    "busy",
    "noanswer",
    "congestion",
    "poweredoff",
    "unallocated",
    "hangupearly",
    "longcall",
    "press1",
    "press2",
)


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What the customer's phone does. Times in seconds of the simulator clock."""

    kind: str
    ring: float = 0.0  # from the start of ringing to answer (answered kinds)
    talk: float = 0.0  # from answer to the customer's hang-up
    dtmf: str | None = None
    dtmf_at: float = 0.0  # after answer

    @property
    def answers(self) -> bool:
        return self.kind in ("answer", "hangupearly", "longcall", "press1", "press2")


# The lab dialplan (conf/extensions.conf): Playback(tt-weasels) ~2.96 s + Wait(2), etc.
LOCAL_DIGITS: dict[str, Behaviour] = {
    "0": Behaviour("answer", ring=2.0, talk=4.96),
    "1": Behaviour("busy"),
    "2": Behaviour("noanswer", ring=60.0),
    "3": Behaviour("congestion"),
    "4": Behaviour("hangupearly", ring=1.0, talk=1.02),
    "5": Behaviour("poweredoff", ring=1.0),
    "6": Behaviour("unallocated"),
    "7": Behaviour("longcall", ring=1.0, talk=56.5),
    "8": Behaviour("press1", ring=2.0, talk=14.0, dtmf="1", dtmf_at=4.0),
    "9": Behaviour("press2", ring=2.0, talk=14.0, dtmf="2", dtmf_at=4.0),
}

# The sipp customer UA (pjsip/conf/sipp/customer_uas.xml); 7 and 9 by analogy.
PJSIP_DIGITS: dict[str, Behaviour] = {
    **LOCAL_DIGITS,
    "0": Behaviour("answer", ring=2.0, talk=3.0),
    "4": Behaviour("hangupearly", ring=1.0, talk=1.0),
    "5": Behaviour("poweredoff"),
    "8": Behaviour("press1", ring=2.0, talk=4.5, dtmf="1", dtmf_at=2.0),
    "9": Behaviour("press2", ring=2.0, talk=4.5, dtmf="2", dtmf_at=2.0),
}

# SIP final response of the carrier per failure kind, and what Asterisk makes of it.
SIP_FAILURES: dict[str, tuple[int, int, str, str, str]] = {
    # kind: (SIP code, Q.850 cause, Cause-txt, DialStatus, Cdr disposition)
    "busy": (486, 17, "User busy", "BUSY", "BUSY"),
    "congestion": (503, 34, "Circuit/channel congestion", "CONGESTION", "CONGESTION"),
    "poweredoff": (480, 19, "User alerting, no answer", "NOANSWER", "NO ANSWER"),
    "unallocated": (404, 1, "Unallocated (unassigned) number", "NOANSWER", "NO ANSWER"),
}


def _draw(
    spec: Mapping[str, Any] | float | int | None, rng: random.Random, default: float
) -> float:
    if spec is None:
        return default
    if isinstance(spec, int | float):
        return float(spec)
    if "fixed" in spec:
        return float(spec["fixed"])
    if "uniform" in spec:
        lo, hi = spec["uniform"]
        return rng.uniform(float(lo), float(hi))
    if "exponential" in spec:
        return rng.expovariate(1.0 / float(spec["exponential"]))
    if "lognormal" in spec:
        mu, sigma = spec["lognormal"]
        return rng.lognormvariate(float(mu), float(sigma))
    raise ValueError(f"unknown distribution {dict(spec)!r}")


class Scenario:
    """Behaviour by scenario: weighted outcomes and time distributions."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        outcomes = dict(data.get("outcomes") or {"answer": 1.0})
        for kind in outcomes:
            if kind not in KINDS:
                raise ValueError(f"unknown outcome {kind!r}; known: {', '.join(KINDS)}")
        total = sum(float(w) for w in outcomes.values())
        if total <= 0:
            raise ValueError("outcome weights must add up to more than 0")
        self.kinds = list(outcomes)
        self.weights = [float(outcomes[k]) / total for k in self.kinds]
        self.ring = data.get("ring_seconds")
        self.talk = data.get("talk_seconds")
        self.digits = {str(d) for d in data.get("digits", [])}
        self.rng = random.Random(data.get("seed"))
        self._validate()

    def _validate(self) -> None:
        # Fail at load time, not in the middle of a load test.
        for spec in (self.ring, self.talk):
            _draw(spec, random.Random(0), 1.0)

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        p = Path(path)
        text = p.read_text(encoding="utf-8")
        data = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
        return cls(data)

    def draw(self, number: str, family: str) -> Behaviour:
        if number[-1:] in self.digits:
            return behaviour_for_digit(number, family)
        kind = self.rng.choices(self.kinds, self.weights)[0]
        base = behaviour_for_digit(_DIGIT_OF[kind], family)
        ring = max(0.0, _draw(self.ring, self.rng, base.ring))
        talk = max(0.2, _draw(self.talk, self.rng, base.talk))
        if kind == "noanswer":
            return replace(base, ring=math.inf)
        return replace(base, ring=ring, talk=talk, dtmf_at=min(base.dtmf_at, talk / 2))


_DIGIT_OF = {b.kind: d for d, b in LOCAL_DIGITS.items()}


def behaviour_for_digit(number: str, family: str) -> Behaviour:
    table = PJSIP_DIGITS if family == "PJSIP" else LOCAL_DIGITS
    return table.get(number[-1:], table["0"])
