from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter.database import SchemaOutOfDate, create_engine, ensure_schema_current
from crm_sync.models import STANDARD_CONTACT_RESULTS, ContactResult, Customer, Lead, Policy


async def test_migrated_database_is_current(engine: AsyncEngine) -> None:
    await ensure_schema_current(engine)


async def test_empty_database_is_refused_with_the_command_that_fixes_it(tmp_path) -> None:
    eng = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    try:
        with pytest.raises(SchemaOutOfDate, match="callcenter db upgrade"):
            await ensure_schema_current(eng)
    finally:
        await eng.dispose()


async def test_standard_contact_results_are_seeded_with_chinese_labels(
    session: AsyncSession,
) -> None:
    rows = (await session.scalars(select(ContactResult).order_by(ContactResult.sort_order))).all()
    assert [(r.code, r.label_zh) for r in rows] == [
        (c, zh) for c, zh, *_ in STANDARD_CONTACT_RESULTS
    ]


async def _policy(session: AsyncSession, number: str) -> Policy:
    from datetime import date

    holder = Customer(name="张三", match_key=f"张三|{number}")
    policy = Policy(policy_number=number, policyholder=holder, expiry_date=date(2026, 12, 31))
    session.add(policy)
    await session.flush()
    return policy


async def test_policy_number_is_unique_in_the_database(session: AsyncSession) -> None:
    await _policy(session, "P001")
    await session.commit()
    with pytest.raises(IntegrityError):
        await _policy(session, "P001")


async def test_one_lead_per_policy_and_kind(session: AsyncSession) -> None:
    policy = await _policy(session, "P002")
    session.add(Lead(policy_id=policy.id, kind="renewal"))
    await session.commit()
    session.add(Lead(policy_id=policy.id, kind="renewal"))
    with pytest.raises(IntegrityError):
        await session.commit()


async def test_unknown_lead_status_is_rejected_by_a_check(session: AsyncSession) -> None:
    policy = await _policy(session, "P003")
    session.add(Lead(policy_id=policy.id, kind="renewal", status="lost-in-space"))
    with pytest.raises(IntegrityError):
        await session.commit()


async def test_a_locked_sqlite_writer_names_the_task_that_holds_the_lock(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    eng = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'lock.db'}")
    held, release = asyncio.Event(), asyncio.Event()

    async def waits_inside_its_transaction() -> None:
        async with eng.begin() as conn:
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            held.set()
            await release.wait()

    try:
        async with eng.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        holder = asyncio.create_task(waits_inside_its_transaction(), name="slow-writer")
        await held.wait()
        with pytest.raises(OperationalError, match="database is locked"):
            async with eng.begin() as conn:
                await conn.execute(text("PRAGMA busy_timeout=10"))
                await conn.execute(text("INSERT INTO t VALUES (2)"))
        release.set()
        await holder
    finally:
        await eng.dispose()
    [message] = [r.getMessage() for r in caplog.records if "write lock held" in r.getMessage()]
    assert "slow-writer" in message and "INSERT INTO t VALUES (1)" in message
    assert "waits_inside_its_transaction" in message, "where the holder waits"


async def test_a_write_cancelled_mid_statement_ends_as_cancelled_and_frees_sqlite(
    tmp_path,
) -> None:
    """The lock diagnosis listens to every rollback: a cancelled write must still roll back,
    end as cancelled (not as another error a retry loop would swallow) and free the lock."""
    import asyncio

    from sqlalchemy import text

    eng = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'cancel.db'}")
    started = asyncio.Event()

    async def long_write() -> None:
        async with eng.begin() as conn:
            await conn.execute(text("INSERT INTO t VALUES (0)"))
            started.set()
            await conn.execute(
                text(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                    "WHERE i < 3000000) INSERT INTO t SELECT i FROM n"
                )
            )

    try:
        async with eng.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        for _ in range(3):
            task = asyncio.create_task(long_write())
            await started.wait()
            started.clear()
            for _ in range(3):
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        async with eng.begin() as conn:
            await conn.execute(text("PRAGMA busy_timeout=2000"))
            await conn.execute(text("INSERT INTO t VALUES (-1)"))
            assert await conn.scalar(text("SELECT count(*) FROM t WHERE x = -1")) == 1
    finally:
        await eng.dispose()


async def test_a_connection_closed_in_the_middle_of_a_read_leaves_no_write_lock_behind(
    tmp_path: Path,
) -> None:
    """A task cancelled between a statement and the fetch of its rows gets its connection
    invalidated; sqlite3 (Python 3.11) would keep that connection's transaction, and SQLite's
    write lock, until the half-read cursor is garbage collected. The next writer must not wait."""
    import asyncio
    import sqlite3

    from sqlalchemy import text

    path = tmp_path / "zombie.db"
    eng = create_engine(f"sqlite+aiosqlite:///{path}")

    def other_writer() -> None:
        with contextlib.closing(sqlite3.connect(path, timeout=1)) as other:
            other.execute("INSERT INTO t VALUES (-1)")
            other.commit()

    try:
        async with eng.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1), (2), (3)"))
        conn = await eng.connect()
        await conn.begin()
        await conn.execute(text("INSERT INTO t VALUES (4)"))  # the write lock
        half_read = await conn.stream(text("SELECT x FROM t"))
        assert (await half_read.fetchone()) is not None  # a statement still active
        await conn.invalidate()
        await asyncio.to_thread(other_writer)  # "database is locked" after 1 s without the fix
        async with eng.connect() as check:
            assert await check.scalar(text("SELECT count(*) FROM t")) == 4
        del half_read
    finally:
        await eng.dispose()
