"""积分: a sale's points, from the rules held as data (`points_rules`). Pure: no I/O, no clock.

A rule belongs to one kind of lead and holds from its `effective_from` day until the next
rule of the same kind. A sale is scored with the rule of its kind in effect on its own day,
so writing a rule for next month leaves last month's points as they were, and scoring the
same sales again gives the same points (recomputation is reproducible).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Band:
    premium_from: Decimal  # the band holds for a premium at or above this
    points: int


@dataclass(frozen=True, slots=True)
class Rule:
    lead_kind: str
    effective_from: date
    bands: tuple[Band, ...]
    red_star_bonus: int = 0


@dataclass(frozen=True, slots=True)
class Score:
    points: int
    rule_from: date | None  # the rule used; None: no rule in effect, no points


class RuleInvalid(ValueError):
    """A rule a supervisor wrote that cannot score a sale (with what to change)."""


def check_bands(bands: Sequence[Band]) -> tuple[Band, ...]:
    """Bands sorted by premium; refused when empty, negative or given twice."""
    if not bands:
        raise RuleInvalid("a rule needs at least one premium band, e.g. from 0: 10 points")
    ordered = tuple(sorted(bands, key=lambda b: b.premium_from))
    for band in ordered:
        if band.premium_from < 0 or band.points < 0:
            raise RuleInvalid("premium bands and points must not be negative")
    starts = [b.premium_from for b in ordered]
    if len(set(starts)) != len(starts):
        raise RuleInvalid("two premium bands start at the same premium; keep one")
    return ordered


def parse_bands(parts: Iterable[str]) -> list[tuple[Decimal, int]]:
    """Bands as a person writes them: "2000:20" (from this premium on, these points)."""
    out = []
    for part in parts:
        premium, _, points = part.strip().partition(":")
        try:
            out.append((Decimal(premium), int(points)))
        except (ArithmeticError, ValueError):
            raise RuleInvalid(
                f"band {part.strip()!r}: write PREMIUM:POINTS, e.g. 2000:20"
            ) from None
    return out


def rule_on(rules: Iterable[Rule], lead_kind: str, day: date) -> Rule | None:
    """The rule of this kind in effect on `day`: the latest that started on or before it."""
    best: Rule | None = None
    for rule in rules:
        if rule.lead_kind != lead_kind or rule.effective_from > day:
            continue
        if best is None or rule.effective_from > best.effective_from:
            best = rule
    return best


def score(
    rules: Iterable[Rule], lead_kind: str, day: date, premium: Decimal, red_star: bool
) -> Score:
    """The points of one sale: its band's points plus the red-star bonus (红星)."""
    rule = rule_on(rules, lead_kind, day)
    if rule is None:
        return Score(0, None)
    points = 0
    for band in rule.bands:  # sorted by premium_from (check_bands)
        if premium >= band.premium_from:
            points = band.points
    if red_star:
        points += rule.red_star_bonus
    return Score(points, rule.effective_from)


__all__ = [
    "Band",
    "Rule",
    "RuleInvalid",
    "Score",
    "check_bands",
    "parse_bands",
    "rule_on",
    "score",
]
