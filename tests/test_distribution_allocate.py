from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from schedules.distribution import allocate, overdue_cutoff, result_deadline
from schedules.holidays import load_calendar

SH = ZoneInfo("Asia/Shanghai")


def test_counts_differ_by_at_most_one_and_every_lead_is_dealt_once() -> None:
    a = allocate(range(1, 104), [7, 8, 9, 10], seed=42)
    assert sorted(a.lead_ids) == list(range(1, 104))
    assert sorted(a.new.values()) == [25, 26, 26, 26]
    assert a.spread == 1
    assert sum(len(v) for v in a.by_specialist().values()) == 103


def test_same_seed_same_allocation_whatever_the_fetch_order() -> None:
    a = allocate([5, 3, 1, 4, 2], [1, 2], seed=7)
    b = allocate([1, 2, 3, 4, 5], [2, 1], seed=7)
    assert a == b
    c = allocate([1, 2, 3, 4, 5], [1, 2], seed=8)
    assert (a.lead_ids, a.owners) != (c.lead_ids, c.owners)


def test_deal_is_random_not_blocks_or_round_robin_by_id() -> None:
    a = allocate(range(1000), [1, 2], seed=1)
    b = allocate(range(1000), [1, 2], seed=2)
    assert a.owners[:20] != [a.owners[0]] * 20  # not blocks of consecutive ids
    assert a.owners[:20] != [1, 2] * 10 and a.owners[:20] != [2, 1] * 10
    assert a.by_specialist()[1] != b.by_specialist()[1]


def test_rerun_deals_new_leads_on_top_evenly() -> None:
    # Earlier today: 1 and 2 got 10 each, 3 (back from leave) got nothing.
    a = allocate(range(100, 125), [1, 2, 3], seed=3, already={1: 10, 2: 10})
    assert a.new[3] >= 10
    assert a.spread <= 1
    assert sum(a.new.values()) == 25


def test_too_few_new_leads_go_to_the_lowest_counts() -> None:
    a = allocate([1, 2, 3], [1, 2, 3], seed=3, already={1: 10, 2: 4})
    assert a.new == {1: 0, 2: 0, 3: 3}
    assert a.totals == {1: 10, 2: 4, 3: 3}


def test_no_specialists_deals_nothing() -> None:
    a = allocate([1, 2, 3], [], seed=1)
    assert a.owners == [] and a.new == {}


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 300),
    specs=st.lists(st.integers(1, 40), min_size=1, max_size=15, unique=True),
    prior=st.lists(st.integers(0, 20), max_size=15),
    seed=st.integers(0, 2**62),
)
def test_allocation_is_as_even_as_possible(
    n: int, specs: list[int], prior: list[int], seed: int
) -> None:
    already = dict(zip(specs, prior, strict=False))
    a = allocate(range(n), specs, seed, already)
    assert sorted(a.lead_ids) == list(range(n))
    assert all(v >= 0 for v in a.new.values())
    totals = list(a.totals.values())
    # Either even to within one, or nobody above the minimum received anything new.
    low = min(totals)
    assert max(totals) - low <= 1 or all(a.new[s] == 0 for s in specs if a.totals[s] > low + 1)
    if max(already.values(), default=0) - min(already.get(s, 0) for s in specs) <= 1:
        assert max(totals) - low <= 1


def test_result_deadline_is_17_00_the_next_working_day() -> None:
    cal = load_calendar()
    tue = result_deadline(date(2026, 3, 9), cal, time(17), "Asia/Shanghai")
    assert tue == datetime(2026, 3, 10, 17, tzinfo=SH)
    fri = result_deadline(date(2026, 3, 13), cal, time(17), "Asia/Shanghai")
    assert fri == datetime(2026, 3, 16, 17, tzinfo=SH)


def test_overdue_cutoff_at_08_30_is_two_working_days_back() -> None:
    cal = load_calendar()
    now = datetime(2026, 3, 11, 0, 30, tzinfo=UTC)  # Wed 08:30 Shanghai
    assert overdue_cutoff(now, cal, time(17), "Asia/Shanghai") == date(2026, 3, 9)
    after_five = datetime(2026, 3, 11, 9, 0, tzinfo=UTC)  # Wed 17:00 Shanghai
    assert overdue_cutoff(after_five, cal, time(17), "Asia/Shanghai") == date(2026, 3, 10)
    monday = datetime(2026, 3, 16, 0, 30, tzinfo=UTC)  # Friday's deadline is Monday 17:00
    assert overdue_cutoff(monday, cal, time(17), "Asia/Shanghai") == date(2026, 3, 12)
