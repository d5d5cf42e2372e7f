"""Node 7: a sale recorded by the specialist, confirmed or corrected by the maintainer (audited,
customer and policy updated, sent to the CRM), points recomputed reproducibly."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.errors import BadInput, Conflict, NotFound
from common.principal import Principal
from crm_sync.models import Customer, Lead, OutboxMessage, PointsRule, Policy, SalesAudit
from crm_sync.sales import SaleChanges, add_rule, confirm_sale, recompute_points, record_sale
from tests.reports_support import DAY, PREMIUM, SmallDay, at, make_small_day


async def _recorded(sessions: async_sessionmaker[AsyncSession], day: SmallDay) -> int:
    async with sessions() as s:
        view = await record_sale(
            s,
            day.leads[0],
            Principal(day.a, "王芳", "specialist"),
            PREMIUM,
            "PDAA2026001",
            at(10, 3),
            "Asia/Shanghai",
        )
        await s.commit()
    return int(view["sale_id"])


async def test_a_specialist_records_a_sale_scored_audited_and_sent_to_the_crm(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    day = await make_small_day(sessions)
    sale_id = await _recorded(sessions, day)
    async with sessions() as s:
        audit = (await s.scalars(select(SalesAudit))).one()
        message = (
            await s.scalars(select(OutboxMessage).where(OutboxMessage.topic == "sale.record"))
        ).one()
    assert (audit.sale_id, audit.action, audit.by_id, audit.at) == (
        sale_id,
        "recorded",
        day.a,
        at(10, 3),
    )
    assert audit.changes["premium"] == [None, "3000.00"]
    data = message.payload
    assert (data["event"], data["premium"], data["points"], data["status"]) == (
        "recorded",
        "3000.00",
        20,
        "recorded",
    )
    assert (data["new_policy_number"], data["sold_on"], data["attempts"]) == (
        "PDAA2026001",
        DAY.isoformat(),
        1,
    )
    assert message.key == f"lead:{day.leads[0]}"


async def test_a_sale_needs_the_result_renewed_and_the_specialists_own_lead(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    day = await make_small_day(sessions)
    async with sessions() as s:
        with pytest.raises(BadInput, match="renewed"):
            await record_sale(
                s,
                day.leads[1],
                Principal(day.a, "王芳", "specialist"),
                PREMIUM,
                None,
                at(16, 0),
                "Asia/Shanghai",
            )
        with pytest.raises(NotFound):
            await record_sale(
                s,
                day.leads[0],
                Principal(day.b, "李娜", "specialist"),
                PREMIUM,
                None,
                at(16, 0),
                "Asia/Shanghai",
            )


async def test_the_maintainer_confirms_and_corrects_updating_customer_and_policy(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    day = await make_small_day(sessions)
    sale_id = await _recorded(sessions, day)
    maintainer = Principal(day.boss, "于丽", "maintainer")
    async with sessions() as s:
        view = await confirm_sale(
            s,
            sale_id,
            maintainer,
            SaleChanges(
                premium=Decimal("5200.00"),
                red_star=True,
                membership_card="VIP-0001",
                vehicle_licence_expiry=date(2027, 3, 1),
                driving_licence_expiry=date(2030, 6, 1),
                policy_expiry=date(2027, 2, 3),
                insured_name="张伟明",
            ),
            at(17, 0, date(2026, 1, 7)),
        )
        await s.commit()
    assert (view["status"], view["premium"], view["points"]) == ("confirmed", "5200.00", 45)
    assert (view["confirmed_by"], view["sold_on"]) == (day.boss, DAY.isoformat())
    async with sessions() as s:
        lead = await s.get(Lead, day.leads[0])
        assert lead is not None
        policy = await s.get(Policy, lead.policy_id)
        assert policy is not None and policy.insured_id is not None
        insured = await s.get(Customer, policy.insured_id)
        assert insured is not None
        assert (policy.expiry_date, policy.vehicle_licence_expiry, policy.renewed) == (
            date(2027, 2, 3),
            date(2027, 3, 1),
            True,
        )
        assert (insured.name, insured.membership_card, insured.driving_licence_expiry) == (
            "张伟明",
            "VIP-0001",
            date(2030, 6, 1),
        )
        audit = (await s.scalars(select(SalesAudit).order_by(SalesAudit.id))).all()
    assert [(a.action, a.by_id) for a in audit] == [("recorded", day.a), ("confirmed", day.boss)]
    assert audit[1].changes["premium"] == ["3000.00", "5200.00"]
    async with sessions() as s:
        again = await confirm_sale(
            s, sale_id, maintainer, SaleChanges(premium=Decimal("5100")), at(9, 0, date(2026, 1, 8))
        )
        await s.commit()
        last = (await s.scalars(select(SalesAudit).order_by(SalesAudit.id.desc()))).first()
        with pytest.raises(Conflict, match="confirmed"):
            await record_sale(
                s,
                day.leads[0],
                Principal(day.a, "王芳", "specialist"),
                PREMIUM,
                None,
                at(9, 0, date(2026, 1, 8)),
                "Asia/Shanghai",
            )
    assert again["premium"] == "5100.00" and last is not None and last.action == "corrected"


async def test_only_a_supervisor_or_the_maintainer_confirms(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    day = await make_small_day(sessions)
    sale_id = await _recorded(sessions, day)
    async with sessions() as s:
        with pytest.raises(NotFound):
            await confirm_sale(
                s, sale_id, Principal(day.a, "王芳", "specialist"), SaleChanges(), at(17, 0)
            )


async def test_points_of_a_month_recomputed_match_and_a_new_rule_leaves_them_alone(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    day = await make_small_day(sessions)
    await _recorded(sessions, day)
    boss = Principal(day.boss, "于丽", "maintainer")
    async with sessions() as s:
        with pytest.raises(BadInput, match="tomorrow"):
            await add_rule(s, boss, "renewal", DAY, [(Decimal(0), 99)], 0, at(12, 0), DAY)
        await add_rule(s, boss, "renewal", date(2026, 2, 1), [(Decimal(0), 99)], 0, at(12, 0), DAY)
        await s.commit()
    january = (date(2026, 1, 1), date(2026, 1, 31))
    async with sessions() as s:
        first = await recompute_points(s, *january, boss, at(12, 1))
        await s.commit()
    async with sessions() as s:
        second = await recompute_points(s, *january, boss, at(12, 2))
        await s.commit()
        rules = (await s.scalars(select(PointsRule))).all()
    assert first.as_dict() == second.as_dict()
    assert (first.sales, first.changed, first.points) == (1, 0, 20)
    assert first.by_specialist == {day.a: 20}
    assert len(rules) == 2


async def test_every_sale_message_matches_its_published_schema(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    import jsonschema

    from crm_sync.sinks import Outgoing, document
    from tests.test_outbox_documents import schema_for

    day = await make_small_day(sessions)
    sale_id = await _recorded(sessions, day)
    async with sessions() as s:
        await confirm_sale(
            s,
            sale_id,
            Principal(day.boss, "于丽", "maintainer"),
            SaleChanges(red_star=True, membership_card="VIP-1"),
            at(17, 0),
        )
        await s.commit()
        messages = (
            await s.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.topic == "sale.record")
                .order_by(OutboxMessage.id)
            )
        ).all()
    validator = jsonschema.Draft202012Validator(schema_for("sale.record"))
    for m in messages:
        doc = document(Outgoing(m.id, m.topic, m.key, m.payload, m.created_at))
        validator.validate(doc)
    assert [m.payload["event"] for m in messages] == ["recorded", "confirmed"]
    assert messages[1].payload["points"] == 25
