"""One outcome vocabulary and one list of campaign kinds, stored as the same strings."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm_sync.models import CampaignKind, LeadKind
from dialer import calls, outcomes
from dialer import models as dialer_models
from schedules.retry import CALLBACK_POLICY, Attempt, Outcome, next_attempt
from schedules.services import CAMPAIGN_KINDS
from schedules.windows import CallingHours

SH = ZoneInfo("Asia/Shanghai")


def test_the_tracker_the_engine_and_the_retry_rules_share_one_outcome_enum() -> None:
    assert calls.Outcome is Outcome
    assert {outcomes.NOT_SENT, outcomes.SKIPPED, outcomes.ENDED_BY_PBX} <= set(Outcome)


def test_stored_outcome_strings_stay_the_same() -> None:
    assert {o.value for o in Outcome} == {
        "answered",
        "answered_hung_up_early",
        "busy",
        "no_answer",
        "congestion",
        "unreachable",
        "switched_off",
        "wrong_number",
        "failed",
        "hung_up_by_action",
        "unknown",
        "not_sent",
        "abandoned",
        "skipped",
        "ended_by_pbx",
    }
    assert Outcome.NOT_SENT == "not_sent" and f"{Outcome.ENDED_BY_PBX}" == "ended_by_pbx"


def test_campaign_kinds_are_the_lead_kinds_and_the_reminder_declared_once() -> None:
    assert dialer_models.CampaignKind is CampaignKind
    assert [k.value for k in CampaignKind] == [*(k.value for k in LeadKind), "reminder"]
    assert CAMPAIGN_KINDS == tuple(k.value for k in CampaignKind)


@pytest.mark.parametrize("outcome", [Outcome.NOT_SENT, Outcome.ENDED_BY_PBX, Outcome.SKIPPED])
def test_attempts_that_were_not_calls_do_not_count_toward_the_three_calls(
    outcome: Outcome,
) -> None:
    """Two unanswered calls with attempts that were not calls between them: the next
    unanswered call is the third, not the fifth."""
    hours = CallingHours()
    day1 = datetime(2026, 12, 1, 10, tzinfo=SH)
    history = [
        Attempt(day1, Outcome.NO_ANSWER),
        Attempt(day1 + timedelta(minutes=5), outcome),
        Attempt(day1 + timedelta(days=1), Outcome.NO_ANSWER),
        Attempt(day1 + timedelta(days=1, minutes=5), outcome),
    ]
    d = next_attempt(
        outcome, at=day1 + timedelta(days=2), history=history, policy=CALLBACK_POLICY, hours=hours
    )
    assert d.unanswered == 2 and not d.mark_inaccurate
    third = next_attempt(
        Outcome.NO_ANSWER,
        at=day1 + timedelta(days=2),
        history=history,
        policy=CALLBACK_POLICY,
        hours=hours,
    )
    assert third.unanswered == 3 and third.mark_inaccurate
