"""What counts as a call, and when an automatic call reached the customer: the one home of
both rules (dialer.outcomes), and the places that used to disagree about them."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.models import Branch, Phone
from dialer.models import DialMode
from dialer.outcomes import (
    ENDED_BY_PBX,
    NOT_SENT,
    SKIPPED,
    automatic_reached,
    counts_as_call,
)
from dialer.results import inaccurate_numbers_by_branch
from schedules.config import DeskCalendar
from tests import schedules_rows as db_rows

SH = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize("outcome", [NOT_SENT, SKIPPED, ENDED_BY_PBX])
def test_attempts_that_rang_nobody_are_not_calls(outcome: str) -> None:
    assert not counts_as_call(outcome)


@pytest.mark.parametrize("outcome", ["no_answer", "busy", "answered", "unknown", "failed", None])
def test_every_attempt_that_may_have_rung_is_a_call(outcome: str | None) -> None:
    assert counts_as_call(outcome)


@pytest.mark.parametrize(
    ("key", "reached"), [("1", True), ("2", True), (None, False), ("3", False)]
)
def test_an_automatic_call_reached_the_customer_only_with_a_menu_key(
    key: str | None, reached: bool
) -> None:
    assert automatic_reached(DialMode.AUTOMATIC.value, key) is reached


def test_a_call_a_specialist_answered_reached_the_customer_without_a_key() -> None:
    assert automatic_reached(DialMode.SEAT_FIRST.value, None)


async def test_a_call_the_pbx_ended_counts_neither_on_the_lead_nor_in_the_branch_mail(
    session: AsyncSession,
) -> None:
    """Three unanswered callback calls and one the PBX cut while shutting down: three calls,
    on the lead and in the branch e-mail (the e-mail used to count four)."""
    desk = DeskCalendar()
    branch = Branch(code="BJ", name="北京分公司", email="bj@example.com")
    session.add(branch)
    await session.flush()
    _, lead = await db_rows.policy_with_lead(
        session, date(2026, 12, 20), kind="callback", status="due", branch_id=branch.id
    )
    assert lead is not None
    await db_rows.call_ended(
        session, lead, ENDED_BY_PBX, now=datetime(2026, 12, 1, 10, tzinfo=SH), desk=desk
    )
    for day in (1, 2, 3):
        await db_rows.call_ended(
            session, lead, "no_answer", now=datetime(2026, 12, day, 16, tzinfo=SH), desk=desk
        )
    await session.commit()

    assert lead.attempt_count == 3
    rows = (await inaccurate_numbers_by_branch(session, date(2026, 12, 3)))[branch.id]
    assert [(r.reason, r.attempts) for r in rows] == [("三次未接通 not reached in 3 calls", 3)]


async def test_an_automatic_call_answered_with_a_key_the_menu_lacks_counts_as_not_reached(
    session: AsyncSession,
) -> None:
    """The result of the call and the history of later calls agree: two calls answered with
    key 3 (not on the menu) and one unanswered are three calls without reaching the customer;
    the number is inaccurate (the history used to count key 3 as reached and start afresh)."""
    desk = DeskCalendar()
    _, lead = await db_rows.policy_with_lead(
        session, date(2026, 12, 20), kind="callback", status="due"
    )
    assert lead is not None
    for day in (1, 2):
        await db_rows.call_ended(
            session,
            lead,
            "answered",
            now=datetime(2026, 12, day, 10, tzinfo=SH),
            desk=desk,
            key="3",
        )
    last = await db_rows.call_ended(
        session, lead, "no_answer", now=datetime(2026, 12, 3, 10, tzinfo=SH), desk=desk
    )
    assert last.inaccurate and last.closed
    phone = await session.get(Phone, lead.phone_id)
    assert phone is not None and phone.accuracy == "inaccurate"
