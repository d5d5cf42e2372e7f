from __future__ import annotations

from dialer import originate
from dialer.originate import DialPlan


def test_seat_first_rings_the_seat_and_carries_the_attempt_id_three_times() -> None:
    h = originate.seat_first(
        DialPlan(), attempt_id="att-1", seat="PJSIP/8001", number="13800000010", lead_id=7
    )
    assert h["Channel"] == "PJSIP/8001"
    assert (h["Context"], h["Exten"]) == ("dialer", "13800000010")
    assert h["ChannelId"] == "att-1"
    assert originate.variables_of(h)["ATTEMPT_ID"] == "att-1"
    assert h["Async"] == "true" and h["CallerID"]


def test_customer_first_dials_the_trunk_and_names_the_seat_endpoint() -> None:
    h = originate.customer_first(
        DialPlan(), attempt_id="att-2", seat="PJSIP/8002", number="13800000010", lead_id=7
    )
    assert h["Channel"] == "PJSIP/13800000010@carrier"
    assert h["Exten"] == "connect-seat"
    v = originate.variables_of(h)
    assert (v["SEAT"], v["SEAT_TIMEOUT"], v["ATTEMPT_ID"]) == ("8002", "2", "att-2")
    assert "POOL" not in v


def test_a_pooled_campaigns_customer_first_call_asks_for_the_pool_message() -> None:
    h = originate.customer_first(
        DialPlan(),
        attempt_id="att-3",
        seat="PJSIP/8002",
        number="13800000010",
        lead_id=7,
        pooled=True,
    )
    assert originate.variables_of(h)["POOL"] == "1"


def test_local_family_dials_customers_through_the_lab_context() -> None:
    h = originate.callback(
        DialPlan(family="local"), attempt_id="a", number="13800000018", lead_id=1
    )
    assert h["Channel"] == "Local/13800000018@customers"
    assert h["Exten"] == "callback"


def test_reminder_plays_the_message_as_an_application() -> None:
    h = originate.reminder(
        DialPlan(), attempt_id="a", number="13800000010", lead_id=1, message="renewal-reminder"
    )
    assert (h["Application"], h["Data"]) == ("Playback", "renewal-reminder")
    assert "Exten" not in h


def test_dialable_drops_the_country_code_and_punctuation() -> None:
    assert originate.dialable("+86 138-0000-0010") == "13800000010"
    assert originate.dialable("010 1234 5678") == "01012345678"
    assert originate.seat_endpoint("Local/8001@seats") == "8001"
