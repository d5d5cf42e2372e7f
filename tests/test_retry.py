from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schedules.holidays import load_calendar
from schedules.retry import (
    CALLBACK_POLICY,
    NOT_IN_SERVICE,
    RENEWAL_POLICY,
    Action,
    Attempt,
    Outcome,
    RetryConfig,
    RetryPolicy,
    Rule,
    appointment_time,
    inaccurate_cause,
    next_attempt,
    unanswered_reason,
)
from schedules.windows import CallingHours

SH = ZoneInfo("Asia/Shanghai")


def sh(*a: int) -> datetime:
    return datetime(*a, tzinfo=SH)  # type: ignore[misc]


@pytest.fixture(scope="module")
def hours() -> CallingHours:
    return CallingHours(calendar=load_calendar())


def test_unanswered_callback_number_is_retried_next_calling_day(hours: CallingHours) -> None:
    d = next_attempt(
        "no_answer", at=sh(2026, 3, 13, 10, 0), history=[], policy=CALLBACK_POLICY, hours=hours
    )
    assert d.next_at == sh(2026, 3, 16, 9, 30)  # Friday -> Monday
    assert d.contact_result == "no_answer" and not d.mark_inaccurate
    assert "next calling day" in d.reason and "first of 3" in d.reason


def test_switched_off_callback_number_skips_the_holiday_to_the_next_calling_day(
    hours: CallingHours,
) -> None:
    d = next_attempt(
        Outcome.SWITCHED_OFF,
        at=sh(2026, 9, 30, 16, 0),
        history=[],
        policy=CALLBACK_POLICY,
        hours=hours,
    )
    assert d.next_at == sh(2026, 10, 8, 9, 30)


def test_third_unanswered_call_marks_the_number_inaccurate_and_closes_the_lead(
    hours: CallingHours,
) -> None:
    history = [
        Attempt(sh(2026, 3, 9, 10, 0), Outcome.NO_ANSWER),
        Attempt(sh(2026, 3, 10, 9, 40), Outcome.BUSY),
    ]
    d = next_attempt(
        "switched_off",
        at=sh(2026, 3, 11, 9, 35),
        history=history,
        policy=CALLBACK_POLICY,
        hours=hours,
    )
    assert d.done and d.mark_inaccurate and d.close_lead
    assert d.contact_result == "unreachable"
    assert d.reason == "third unanswered call: marked inaccurate"


def test_our_own_failures_do_not_count_towards_the_three_calls(hours: CallingHours) -> None:
    history = [
        Attempt(sh(2026, 3, 9, 10, 0), Outcome.NO_ANSWER),
        Attempt(sh(2026, 3, 10, 9, 40), Outcome.FAILED),
        Attempt(sh(2026, 3, 10, 9, 50), Outcome.UNKNOWN),
    ]
    d = next_attempt(
        "no_answer",
        at=sh(2026, 3, 11, 9, 35),
        history=history,
        policy=CALLBACK_POLICY,
        hours=hours,
    )
    assert not d.done and d.unanswered == 2


def test_unallocated_number_is_inaccurate_at_once(hours: CallingHours) -> None:
    d = next_attempt(
        "unallocated", at=sh(2026, 3, 9, 10, 0), history=[], policy=CALLBACK_POLICY, hours=hours
    )
    assert d.done and d.mark_inaccurate and d.close_lead
    assert "marked inaccurate" in d.reason


def test_wrong_renewal_number_is_inaccurate_but_the_lead_stays_open(hours: CallingHours) -> None:
    d = next_attempt(
        "wrong_number", at=sh(2026, 3, 9, 10, 0), history=[], policy=RENEWAL_POLICY, hours=hours
    )
    assert d.done and d.mark_inaccurate and not d.close_lead


def test_busy_renewal_number_is_retried_in_the_same_window_after_30_minutes(
    hours: CallingHours,
) -> None:
    d = next_attempt(
        "busy", at=sh(2026, 3, 9, 9, 45), history=[], policy=RENEWAL_POLICY, hours=hours
    )
    assert d.next_at == sh(2026, 3, 9, 10, 15)


def test_busy_near_the_window_end_moves_to_the_next_window(hours: CallingHours) -> None:
    d = next_attempt(
        "busy", at=sh(2026, 3, 9, 10, 45), history=[], policy=RENEWAL_POLICY, hours=hours
    )
    assert d.next_at == sh(2026, 3, 9, 15, 30)
    assert "window closed" in d.reason


def test_unanswered_renewal_number_is_retried_in_the_next_window(hours: CallingHours) -> None:
    d = next_attempt(
        "no_answer", at=sh(2026, 3, 9, 9, 31), history=[], policy=RENEWAL_POLICY, hours=hours
    )
    assert d.next_at == sh(2026, 3, 9, 15, 30)


def test_daily_cap_per_number_pushes_to_the_next_calling_day(hours: CallingHours) -> None:
    history = [
        Attempt(sh(2026, 3, 9, 9, 35), Outcome.BUSY, phone="p1"),
        Attempt(sh(2026, 3, 9, 10, 5), Outcome.BUSY, phone="p1"),
        Attempt(sh(2026, 3, 9, 10, 7), Outcome.BUSY, phone="p2"),  # another number
    ]
    d = next_attempt(
        "busy",
        at=sh(2026, 3, 9, 10, 35),
        history=history,
        policy=RENEWAL_POLICY,
        hours=hours,
        phone="p1",
    )
    assert d.next_at == sh(2026, 3, 10, 9, 30)
    assert "daily cap of 3" in d.reason


def test_unknown_fate_is_never_retried_before_the_next_window(hours: CallingHours) -> None:
    for policy in (RENEWAL_POLICY, CALLBACK_POLICY):
        d = next_attempt(
            "unknown", at=sh(2026, 3, 9, 9, 31), history=[], policy=policy, hours=hours
        )
        assert d.next_at == sh(2026, 3, 9, 15, 30)
        assert d.contact_result is None


def test_answered_call_ends_automatic_retries(hours: CallingHours) -> None:
    d = next_attempt(
        "answered", at=sh(2026, 3, 9, 9, 31), history=[], policy=RENEWAL_POLICY, hours=hours
    )
    assert d.done and not d.mark_inaccurate


def test_answer_resets_the_unanswered_count(hours: CallingHours) -> None:
    history = [
        Attempt(sh(2026, 3, 9, 10, 0), Outcome.NO_ANSWER),
        Attempt(sh(2026, 3, 10, 10, 0), Outcome.NO_ANSWER),
        Attempt(sh(2026, 3, 11, 10, 0), Outcome.ANSWERED),
    ]
    d = next_attempt(
        "no_answer",
        at=sh(2026, 3, 12, 10, 0),
        history=history,
        policy=CALLBACK_POLICY,
        hours=hours,
    )
    assert not d.done and d.unanswered == 1


def test_customer_asking_for_noon_is_called_at_15_30(hours: CallingHours) -> None:
    when, why = appointment_time(sh(2026, 3, 9, 12, 0), hours)
    assert when == sh(2026, 3, 9, 15, 30)
    assert "outside calling hours" in why


def test_customer_time_inside_a_window_is_kept(hours: CallingHours) -> None:
    when, _ = appointment_time(sh(2026, 3, 9, 10, 17), hours)
    assert when == sh(2026, 3, 9, 10, 17)


def test_appointment_on_a_holiday_moves_to_the_next_calling_day(hours: CallingHours) -> None:
    when, _ = appointment_time(sh(2026, 4, 6, 10, 0), hours)  # holiday Monday
    assert when == sh(2026, 4, 7, 9, 30)


def test_policy_is_chosen_per_kind_and_configurable() -> None:
    cfg = RetryConfig()
    assert cfg.for_lead("callback") is CALLBACK_POLICY
    assert cfg.for_lead("renewal") is RENEWAL_POLICY
    assert cfg.for_lead("renewal", appointment=True) is CALLBACK_POLICY
    strict = RetryPolicy("strict", {Outcome.BUSY: Rule(Action.NEXT_DAY)}, max_unanswered=1)
    cfg2 = RetryConfig(by_kind={"trial": strict})
    assert cfg2.for_lead("trial") is strict and cfg2.for_lead("lapsed") is RENEWAL_POLICY


def test_unknown_outcome_string_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="no_answer"):
        Outcome.parse("eaten-by-grue")
    assert Outcome.parse("No Answer") is Outcome.NO_ANSWER


def test_every_retry_time_is_inside_a_window(hours: CallingHours) -> None:
    start = sh(2026, 9, 28, 0, 0)
    for policy in (RENEWAL_POLICY, CALLBACK_POLICY):
        for outcome in Outcome:
            for minutes in range(0, 7 * 24 * 60, 47):
                at = start + timedelta(minutes=minutes)
                d = next_attempt(outcome, at=at, history=[], policy=policy, hours=hours)
                if d.next_at is not None:
                    assert hours.is_open(d.next_at), (outcome, at, d)
                    assert d.next_at > at or (hours.is_open(at) and d.next_at >= at)


def test_a_corrected_number_does_not_inherit_the_old_numbers_failures(
    hours: CallingHours,
) -> None:
    old = "+8613800000012"
    history = [
        Attempt(sh(2026, 3, 9, 10, 0), Outcome.NO_ANSWER, phone=old),
        Attempt(sh(2026, 3, 10, 9, 40), Outcome.NO_ANSWER, phone=old),
    ]
    d = next_attempt(
        "no_answer",
        at=sh(2026, 3, 11, 9, 35),
        history=history,
        policy=CALLBACK_POLICY,
        hours=hours,
        phone="+8613900000010",
    )
    assert not d.mark_inaccurate and d.next_at == sh(2026, 3, 12, 9, 30)
    assert "first of 3" in d.reason


def test_the_cause_of_an_inaccurate_mark_is_read_back_from_its_reason() -> None:
    assert inaccurate_cause(NOT_IN_SERVICE) == ("not_in_service", None)
    assert inaccurate_cause(unanswered_reason(3)) == ("unanswered", 3)
    assert inaccurate_cause(unanswered_reason(12)) == ("unanswered", 12)
    assert inaccurate_cause("set by hand") == ("other", None)
    assert inaccurate_cause(None) == ("other", None)
