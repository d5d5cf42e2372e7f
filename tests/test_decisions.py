"""What a finished attempt does to the lead, the phone and the retry plan, decided by the pure
`dialer.decisions.decide` over plain facts: no database, no clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from dialer.decisions import AttemptFacts, Decision, Finished, Route, decide
from schedules.retry import Attempt, Outcome, RetryConfig
from schedules.windows import CallingHours

NOW = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
HOURS = CallingHours()

CALLBACK = AttemptFacts(
    attempt_id="a1",
    mode="automatic",
    campaign_kind="callback",
    number="+8613800000001",
    specialist_id=None,
    seat=None,
    lead_id=7,
    lead_kind="callback",
    lead_status="due",
    owner_id=None,
    callback_at=None,
    next_attempt_at=None,
    phone_id=3,
    tz="Asia/Shanghai",
)


def _decide(facts: AttemptFacts, fin: Finished) -> Decision:
    return decide(facts, fin, now=NOW, hours=HOURS, retry=RetryConfig())


def test_the_third_unanswered_callback_call_closes_the_lead_and_marks_the_number_inaccurate() -> (
    None
):
    earlier = [
        Attempt(NOW - timedelta(days=2), Outcome.NO_ANSWER, CALLBACK.number),
        Attempt(NOW - timedelta(days=1), Outcome.NO_ANSWER, CALLBACK.number),
    ]
    d = _decide(replace(CALLBACK, history=earlier), Finished("a1", "no_answer"))
    assert d.route is Route.RETRY
    assert d.closed and d.inaccurate and d.status == "closed"
    topics = [t for t, _ in d.messages]
    assert topics == ["phone.accuracy", "attempt.result", "lead.contact_result", "lead.status"]


def test_an_automatic_call_answered_without_a_key_is_not_reached_and_retried() -> None:
    d = _decide(CALLBACK, Finished("a1", "answered", answered=True, talk_seconds=9.0))
    assert d.route is Route.RETRY
    assert not d.closed and d.next_at is not None and d.next_at > NOW
    assert d.status == "due"


def test_key_2_with_nobody_free_books_the_least_loaded_specialist() -> None:
    fin = Finished("a1", "answered", answered=True, key_pressed="2")
    d = _decide(replace(CALLBACK, free_specialist=42), fin)
    assert d.route is Route.BOOK and d.book_specialist
    assert (d.owner_id, d.status, d.contact_result) == (42, "scheduled", "callback")
    assert d.callback_at is not None and d.callback_at == d.next_at


def test_key_2_connected_makes_the_lead_the_specialists_and_the_seat_wraps_up() -> None:
    fin = Finished(
        "a1",
        "answered",
        answered=True,
        bridged=True,
        key_pressed="2",
        specialist_id=5,
        seat="PJSIP/8105",
    )
    d = _decide(CALLBACK, fin)
    assert d.route is Route.CONNECTED and d.talked
    assert (d.owner_id, d.specialist_id, d.seat, d.status) == (5, 5, "PJSIP/8105", "assigned")
    assert d.distributed_on is not None


def test_a_call_of_unknown_fate_waits_for_the_next_window_and_sets_no_result() -> None:
    d = _decide(CALLBACK, Finished("a1", "unknown", unknown=True))
    assert d.contact_result is None and d.next_at == HOURS.next_window_start(NOW, CALLBACK.tz)


def test_key_2_booked_to_the_least_loaded_specialist_is_audited_like_a_deal() -> None:
    """The owner change goes through schedules.ownership (one home): the decision carries its
    one-lead audit row for the write."""
    fin = Finished("a1", "answered", answered=True, key_pressed="2")
    d = _decide(replace(CALLBACK, free_specialist=42), fin)
    (run,) = d.audit
    assert run.allocation == {"42": [CALLBACK.lead_id]}
    assert "least-loaded" in run.counts["42"]["reason"]
    assert d.distributed_on == run.day


def test_an_owned_lead_booked_by_key_2_keeps_its_owner_and_writes_no_audit() -> None:
    fin = Finished("a1", "answered", answered=True, key_pressed="2")
    d = _decide(replace(CALLBACK, owner_id=9, free_specialist=42), fin)
    assert (d.owner_id, d.status, d.audit, d.distributed_on) == (9, "scheduled", [], None)


def test_a_call_the_pbx_ended_is_not_a_call_and_skipped_previews_neither() -> None:
    """dialer.outcomes.counts_as_call: not toward the lead's attempt count."""
    pbx = _decide(CALLBACK, Finished("a1", "ended_by_pbx", reason="Asterisk shutting down"))
    assert pbx.route is Route.ENDED_BY_PBX and not pbx.counts_as_call
    assert not _decide(CALLBACK, Finished("a1", "skipped")).counts_as_call
    assert _decide(CALLBACK, Finished("a1", "busy")).counts_as_call
