"""A lead's owner is a specialist, on both databases.

SQLite keeps the foreign key; on PostgreSQL statement triggers check it (migration
0009_distribution_write), so these tests hold the two to the same rule.
"""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm_sync.models import Lead, Specialist
from tests import schedules_rows as rows

DAY = date(2026, 3, 11)
EXPIRY = date(2026, 4, 5)
NOBODY = 987_654


async def _lead(session: AsyncSession, **kw: object) -> Lead:
    kw.setdefault("status", "due")
    _, lead = await rows.policy_with_lead(session, EXPIRY, due_on=DAY, **kw)  # type: ignore[arg-type]
    assert lead is not None
    return lead


async def test_a_lead_cannot_be_dealt_to_someone_who_is_not_a_specialist(
    session: AsyncSession,
) -> None:
    lead = await _lead(session)
    await session.commit()
    with pytest.raises(IntegrityError):
        await session.execute(
            update(Lead).where(Lead.id == lead.id).values(owner_id=NOBODY, distributed_on=DAY)
        )


async def test_one_unknown_owner_fails_a_whole_bulk_update(session: AsyncSession) -> None:
    (spec,) = await rows.specialists(session, 1)
    leads = [await _lead(session) for _ in range(5)]
    await session.commit()
    owner = {leads[i].id: spec.id for i in range(4)} | {leads[4].id: NOBODY}
    with pytest.raises(IntegrityError):
        await session.execute(
            text(
                "UPDATE leads SET owner_id = CASE id "
                + " ".join(f"WHEN {lead} THEN {o}" for lead, o in owner.items())
                + " END, distributed_on = :day WHERE id IN ("
                + ", ".join(str(lead) for lead in owner)
                + ")"
            ),
            {"day": DAY},
        )
    await session.rollback()
    assert (await session.scalars(select(Lead.owner_id).distinct())).all() == [None]


async def test_a_lead_cannot_be_created_with_an_unknown_owner(session: AsyncSession) -> None:
    with pytest.raises(IntegrityError):
        await _lead(session, owner_id=NOBODY, distributed_on=DAY)


async def test_a_specialist_who_owns_leads_cannot_be_deleted_but_one_without_can(
    session: AsyncSession,
) -> None:
    owner, idle = await rows.specialists(session, 2)
    await _lead(session, status="assigned", owner_id=owner.id, distributed_on=DAY)
    await session.commit()

    await session.execute(delete(Specialist).where(Specialist.id == idle.id))
    await session.commit()
    # ON DELETE SET NULL would leave a dealt lead without owner but with a distribution date,
    # which the owner/date check refuses.
    with pytest.raises(IntegrityError):
        await session.execute(delete(Specialist).where(Specialist.id == owner.id))
        await session.commit()


async def test_an_owner_s_id_cannot_change(session: AsyncSession) -> None:
    (owner,) = await rows.specialists(session, 1)
    await _lead(session, status="assigned", owner_id=owner.id, distributed_on=DAY)
    await session.commit()
    with pytest.raises(IntegrityError):
        await session.execute(update(Specialist).where(Specialist.id == owner.id).values(id=NOBODY))
        await session.commit()


async def _waiting_on_a_lock(engine: AsyncEngine, pid: int) -> None:
    async with engine.connect() as conn:
        while not await conn.scalar(
            text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid"),
            {"pid": pid},
        ):
            await conn.rollback()  # a fresh snapshot of pg_stat_activity each look


async def test_a_specialist_deleted_while_leads_are_dealt_to_them_waits_and_then_fails(
    engine: AsyncEngine, session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    (owner,) = await rows.specialists(session, 1)
    lead = await _lead(session)
    await session.commit()

    async with sessions() as dealer, sessions() as remover:
        await dealer.execute(
            update(Lead).where(Lead.id == lead.id).values(owner_id=owner.id, distributed_on=DAY)
        )
        pid = await remover.scalar(text("SELECT pg_backend_pid()"))
        removal = asyncio.create_task(
            remover.execute(delete(Specialist).where(Specialist.id == owner.id))
        )
        waiting = asyncio.create_task(_waiting_on_a_lock(engine, pid))
        await asyncio.wait([removal, waiting], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        assert waiting.done() and not removal.done(), "the delete did not wait for the deal"
        await dealer.commit()
        with pytest.raises(IntegrityError):
            await removal
    assert (
        await session.scalar(
            select(Lead.owner_id)
            .where(Lead.id == lead.id)
            .execution_options(populate_existing=True)
        )
        == owner.id
    )


async def _owner_locked(sessions: async_sessionmaker[AsyncSession], owner: int) -> bool:
    """Whether another transaction holds a key-share lock on the specialist's row."""
    async with sessions() as other:
        try:
            await other.execute(
                text("SELECT 1 FROM specialists WHERE id = :id FOR UPDATE NOWAIT"), {"id": owner}
            )
        except DBAPIError as exc:
            assert "could not obtain lock" in str(exc)
            return True
        return False


async def test_like_the_foreign_key_only_a_new_owner_is_locked(
    engine: AsyncEngine, session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    (owner,) = await rows.specialists(session, 1)
    dealt = await _lead(session, status="assigned", owner_id=owner.id, distributed_on=DAY)
    due = await _lead(session)
    await session.commit()

    async with sessions() as dialer:
        await dialer.execute(update(Lead).where(Lead.id == dealt.id).values(attempt_count=1))
        assert not await _owner_locked(sessions, owner.id)
    async with sessions() as dealer:
        await dealer.execute(
            update(Lead).where(Lead.id == due.id).values(owner_id=owner.id, distributed_on=DAY)
        )
        assert await _owner_locked(sessions, owner.id)
