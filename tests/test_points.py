"""The points rules (积分): bands per kind of lead, the red-star bonus, effective dates."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from crm_sync.points import Band, Rule, RuleInvalid, check_bands, rule_on, score

JAN = Rule(
    "renewal",
    date(2026, 1, 1),
    check_bands([Band(Decimal(0), 10), Band(Decimal(2000), 20), Band(Decimal(5000), 40)]),
    red_star_bonus=5,
)
FEB = Rule("renewal", date(2026, 2, 1), check_bands([Band(Decimal(0), 15)]), red_star_bonus=0)
LAPSED = Rule("lapsed", date(2026, 1, 1), check_bands([Band(Decimal(0), 30)]), red_star_bonus=10)
RULES = [FEB, JAN, LAPSED]


@pytest.mark.parametrize(
    ("premium", "points"),
    [("0", 10), ("1999.99", 10), ("2000", 20), ("4999.99", 20), ("5000.00", 40), ("80000", 40)],
)
def test_a_sale_gets_the_points_of_the_highest_band_its_premium_reaches(
    premium: str, points: int
) -> None:
    assert score(RULES, "renewal", date(2026, 1, 20), Decimal(premium), False).points == points


def test_a_red_star_adds_the_bonus_of_the_rule_in_effect() -> None:
    assert score(RULES, "renewal", date(2026, 1, 20), Decimal(3000), True).points == 25
    assert score(RULES, "renewal", date(2026, 2, 20), Decimal(3000), True).points == 15


def test_each_kind_of_lead_has_its_own_rule() -> None:
    assert score(RULES, "lapsed", date(2026, 1, 20), Decimal(3000), True).points == 40
    assert score(RULES, "trial", date(2026, 1, 20), Decimal(3000), True).points == 0


def test_a_new_rule_changes_nothing_before_its_effective_day() -> None:
    january = score(RULES, "renewal", date(2026, 1, 31), Decimal(6000), False)
    february = score(RULES, "renewal", date(2026, 2, 1), Decimal(6000), False)
    assert (january.points, january.rule_from) == (40, date(2026, 1, 1))
    assert (february.points, february.rule_from) == (15, date(2026, 2, 1))
    # the January sale scored again after February's rule was added: the same points
    assert score([*RULES, FEB], "renewal", date(2026, 1, 31), Decimal(6000), False) == january


def test_no_rule_in_effect_gives_no_points_and_says_so() -> None:
    result = score(RULES, "renewal", date(2025, 12, 31), Decimal(6000), True)
    assert (result.points, result.rule_from) == (0, None)
    assert rule_on(RULES, "renewal", date(2025, 12, 31)) is None


def test_bands_are_refused_when_empty_negative_or_repeated() -> None:
    with pytest.raises(RuleInvalid, match="at least one"):
        check_bands([])
    with pytest.raises(RuleInvalid, match="negative"):
        check_bands([Band(Decimal(-1), 5)])
    with pytest.raises(RuleInvalid, match="same premium"):
        check_bands([Band(Decimal(0), 5), Band(Decimal(0), 6)])


def test_bands_given_out_of_order_are_sorted() -> None:
    rule = Rule(
        "renewal", date(2026, 1, 1), check_bands([Band(Decimal(5000), 40), Band(Decimal(0), 10)])
    )
    assert score([rule], "renewal", date(2026, 1, 2), Decimal(100), False).points == 10


def test_bands_are_read_as_a_person_writes_them() -> None:
    from crm_sync.points import parse_bands

    assert parse_bands(["0:10", " 2000:20 "]) == [(Decimal(0), 10), (Decimal(2000), 20)]
    with pytest.raises(RuleInvalid, match="PREMIUM:POINTS"):
        parse_bands(["2000-20"])
