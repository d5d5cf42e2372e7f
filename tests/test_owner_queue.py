"""A specialist's leads are found through the owner queue (migration 0010_owner_queue).

On PostgreSQL `leads` has no index on `owner_id` or `status` (so that the daily deal is a HOT
update); `dialer.queues.owned_by` finds a specialist's leads through `owner_queue`, a superset
that the owner trigger writes and the distribution compacts. On SQLite `owned_by` is the owner
test over `ix_leads_owner_status`. These tests hold both to the same answers: every lead a
specialist owns with a specialist status is reachable, and a stale queue id never reaches
anyone but the lead's owner.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm_sync.models import Lead, LeadStatus, Specialist
from dialer import queues
from schedules.config import DeskCalendar
from schedules.deal_writer import compact_owner_queue
from schedules.distribution_run import distribute_in, run_distribution
from tests import schedules_rows as rows

SH = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 11)
NOW = datetime(2026, 3, 11, 8, 30, tzinfo=SH)
EXPIRY = DAY + timedelta(days=25)
CALL_TIME = datetime(2026, 3, 11, 10, 0, tzinfo=SH)


async def _due(session: AsyncSession, n: int) -> list[int]:
    out = []
    for _ in range(n):
        _, lead = await rows.policy_with_lead(session, EXPIRY, status="due", due_on=DAY)
        assert lead is not None
        out.append(lead.id)
    return out


async def _through_queue(session: AsyncSession, specialist: int) -> set[int]:
    got = await session.scalars(
        select(Lead.id).where(
            queues.owned_by(specialist), Lead.status.in_(queues.SPECIALIST_STATUSES)
        )
    )
    return set(got)


async def _owned(session: AsyncSession, specialist: int) -> set[int]:
    """The truth, read without the queue."""
    got = await session.scalars(
        select(Lead.id).where(
            Lead.owner_id == specialist, Lead.status.in_(queues.SPECIALIST_STATUSES)
        )
    )
    return set(got)


async def _queued_ids(session: AsyncSession, specialist: int) -> set[int]:
    got = await session.scalars(
        text("SELECT unnest(lead_ids) FROM owner_queue WHERE specialist_id = :s"),
        {"s": specialist},
    )
    return set(got)


async def _handed_over(session: AsyncSession) -> tuple[int, int, int]:
    """A lead dealt to a, then handed over to b (the key-2 transfer): (a, b, lead)."""
    a, b = await rows.specialists(session, 2)
    _, lead = await rows.policy_with_lead(
        session, EXPIRY, status="assigned", owner_id=a.id, distributed_on=DAY
    )
    assert lead is not None
    await session.commit()
    await session.execute(update(Lead).where(Lead.id == lead.id).values(owner_id=b.id))
    await session.commit()
    return a.id, b.id, lead.id


async def test_every_lead_a_specialist_owns_with_a_specialist_status_is_reachable_through_the_queue(
    sessions: async_sessionmaker[AsyncSession], session: AsyncSession
) -> None:
    a, b = await rows.specialists(session, 2)
    # created owned, dealt, handed over, and closed then reopened by the same owner
    _, created = await rows.policy_with_lead(
        session, EXPIRY, status="scheduled", owner_id=a.id, distributed_on=DAY
    )
    assert created is not None
    await _due(session, 10)
    await session.commit()
    await run_distribution(sessions, day=DAY, now=NOW, desk=DeskCalendar(), seed=3)
    handed = next(iter(await _owned(session, b.id)))
    await session.execute(update(Lead).where(Lead.id == handed).values(owner_id=a.id))
    reopened = next(iter(await _owned(session, b.id)))
    await session.execute(update(Lead).where(Lead.id == reopened).values(status="closed"))
    await session.execute(update(Lead).where(Lead.id == reopened).values(status="assigned"))
    await session.commit()

    for s in (a.id, b.id):
        owned = await _owned(session, s)
        assert await _through_queue(session, s) == owned
    assert {created.id, handed} <= await _owned(session, a.id)
    assert reopened in await _owned(session, b.id)
    assert len(await _owned(session, a.id)) + len(await _owned(session, b.id)) == 11


async def test_a_stale_queue_id_never_offers_the_lead_to_its_former_owner(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    a, b, lead = await _handed_over(session)
    if engine.dialect.name == "postgresql":  # the stale id is still there until compaction
        assert lead in await _queued_ids(session, a)

    def offered(specialist: int) -> object:
        return queues.specialist_queue(specialist, ["renewal"], CALL_TIME)

    to_a = await queues.fetch_candidates(session, offered(a), limit=10, now=CALL_TIME, lock=False)
    to_b = await queues.fetch_candidates(session, offered(b), limit=10, now=CALL_TIME, lock=False)
    assert [c.lead_id for c in to_a] == []
    assert [(c.lead_id, c.owner_id) for c in to_b] == [(lead, b)]


async def test_compaction_drops_stale_ids_and_keeps_each_specialist_s_open_work(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the owner queue exists on PostgreSQL only")
    a, b = await rows.specialists(session, 2)
    leads = []
    for _ in range(4):
        _, lead = await rows.policy_with_lead(
            session, EXPIRY, status="assigned", owner_id=a.id, distributed_on=DAY
        )
        assert lead is not None
        leads.append(lead.id)
    await session.commit()
    await session.execute(update(Lead).where(Lead.id == leads[0]).values(owner_id=b.id))
    await session.execute(
        update(Lead).where(Lead.id == leads[1]).values(status=LeadStatus.CLOSED.value)
    )
    await session.commit()
    assert await _queued_ids(session, a.id) == set(leads)

    assert await compact_owner_queue(session) == 2
    await session.commit()
    assert await _queued_ids(session, a.id) == {leads[2], leads[3]}
    assert await _queued_ids(session, b.id) == {leads[0]}
    rows_per_specialist = await session.execute(
        text("SELECT specialist_id, count(*) FROM owner_queue GROUP BY specialist_id")
    )
    assert dict(rows_per_specialist.all()) == {a.id: 1, b.id: 1}


async def test_no_index_of_leads_uses_a_column_the_deal_writes(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no HOT updates; it keeps ix_leads_owner_status")
    # Key columns, expressions and predicates: any of them makes every dealt row non-HOT.
    defs = (
        await session.scalars(
            text(
                "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'leads'::regclass"
            )
        )
    ).all()
    assert defs
    for d in defs:
        for column in ("owner_id", "status", "distributed_on", "updated_at"):
            assert column not in d, d


async def test_the_deal_rewrites_leads_in_place(engine: AsyncEngine, session: AsyncSession) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("HOT updates are PostgreSQL's")
    await rows.specialists(session, 3)
    await _due(session, 60)
    await session.commit()
    report = await distribute_in(session, day=DAY, now=NOW, desk=DeskCalendar(), seed=1)
    assert report.dealt == 60
    hot = await session.scalar(
        text("SELECT pg_stat_get_xact_tuples_hot_updated('leads'::regclass)")
    )
    updated = await session.scalar(
        text("SELECT pg_stat_get_xact_tuples_updated('leads'::regclass)")
    )
    await session.commit()
    assert (updated, hot) == (60, 60)


async def test_a_deleted_specialist_s_queue_rows_go_with_them(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the owner queue exists on PostgreSQL only")
    a, b, lead = await _handed_over(session)
    assert await _queued_ids(session, a) == {lead}  # stale: a owns nothing now

    await session.execute(delete(Specialist).where(Specialist.id == a))
    await session.commit()
    assert await _queued_ids(session, a) == set()
    assert await _queued_ids(session, b) == {lead}
