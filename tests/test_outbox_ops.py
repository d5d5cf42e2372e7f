"""Operating the outbox: the CLI, the supervisor API, the alarm and purge, and the relay
running inside the service's lifecycle, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.bootstrap import Container, build_app
from callcenter.service import wire
from callcenter.settings import Settings
from crm_sync.auth import issue_token
from crm_sync.config import CrmSettings
from crm_sync.models import OutboxMessage, Specialist
from crm_sync.wiring import CrmLink, OutboxMonitor, build_crm_link
from schedules.clock import VirtualClock
from tests.outbox_support import SECRET, Receiver, write_messages
from tests.test_import_cli import cli, cli_env  # noqa: F401 (a fixture)

NOW = datetime.now(UTC).replace(microsecond=0)  # the CLI reads the system clock


async def seed_states(sessions: async_sessionmaker[AsyncSession], now: datetime) -> list[int]:
    """Six messages: two delivered long ago, one parked with a history, three pending."""
    ids = await write_messages(sessions, now - timedelta(days=10), ["lead:1", "lead:2"], 3)
    async with sessions.begin() as s:
        await s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids[:2]))
            .values(state="delivered", delivered_at=now - timedelta(days=9), sink="webhook")
        )
        await s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == ids[2])
            .values(
                state="parked",
                attempts=1,
                parked_reason="HTTP 422: unknown policy",
                history=[{"at": now.isoformat(), "result": "park", "status": 422}],
            )
        )
    return ids


@pytest.mark.usefixtures("cli_env")
async def test_the_cli_shows_counts_and_history_then_retries_parks_and_purges(
    sessions: async_sessionmaker[AsyncSession], capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await seed_states(sessions, NOW)
    assert await cli("outbox", "status", "--json") == 0
    st = json.loads(capsys.readouterr().out)
    assert st["counts"]["lead.status"] == {"delivered": 2, "parked": 1, "pending": 3}
    assert st["oldest_undelivered_age_seconds"] >= 10 * 86400
    assert await cli("outbox", "list", "--state", "parked", "--json") == 0
    [parked] = json.loads(capsys.readouterr().out)
    assert parked["id"] == ids[2] and parked["history"][0]["status"] == 422
    assert await cli("outbox", "retry", str(ids[2])) == 0
    assert await cli("outbox", "park", str(ids[3]), "--reason", "lead deleted in the CRM") == 0
    assert await cli("outbox", "purge", "--older-than-days", "7") == 0
    out = capsys.readouterr().out
    assert "1 message(s) will be tried again" in out and "2 delivered message(s) purged" in out
    async with sessions() as s:
        rows = {m.id: m for m in (await s.scalars(select(OutboxMessage))).all()}
    assert set(rows) == set(ids[2:])
    assert rows[ids[2]].state == "pending" and rows[ids[2]].parked_reason is None
    assert rows[ids[3]].state == "parked" and "lead deleted" in (rows[ids[3]].parked_reason or "")
    assert await cli("outbox", "show", "999999") == 2
    assert "callcenter outbox list" in capsys.readouterr().err


async def test_the_monitor_purges_past_retention_and_raises_the_alarm(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    clock = VirtualClock(NOW)
    await seed_states(sessions, NOW)
    monitor = OutboxMonitor(sessions, clock, CrmSettings(retention_days=7, alarm_age=3600))
    with caplog.at_level(logging.ERROR, logger="crm_sync.wiring"):
        text = await monitor.check()
    assert text is not None and "oldest undelivered message is 864000 s old" in text
    assert any(r.levelno == logging.ERROR and "is the CRM" in r.message for r in caplog.records)
    async with sessions() as s:
        states = sorted(m.state for m in (await s.scalars(select(OutboxMessage))).all())
    assert states == ["parked", "pending", "pending", "pending"]


async def test_a_quiet_outbox_raises_no_alarm(sessions: async_sessionmaker[AsyncSession]) -> None:
    clock = VirtualClock(NOW)
    await write_messages(sessions, NOW - timedelta(seconds=30), ["lead:1"], 1)
    assert await OutboxMonitor(sessions, clock, CrmSettings(alarm_age=60)).check() is None


@pytest.fixture
async def outbox_api(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[tuple[TestClient[Any, Any], dict[str, dict[str, str]], list[int]]]:
    """The link's routes with a supervisor's and a specialist's headers, over seed_states."""
    clock = VirtualClock(NOW)
    ids = await seed_states(sessions, NOW)
    async with sessions.begin() as s:
        boss = Specialist(name="主管", seat="PJSIP/8999", role="supervisor")
        spec = Specialist(name="专员", seat="PJSIP/8100")
        s.add_all([boss, spec])
        await s.flush()
        tokens = {"boss": await issue_token(s, boss.id), "spec": await issue_token(s, spec.id)}
    settings = Settings(data_dir=tmp_path, crm=CrmSettings(alarm_age=60))
    container = Container(settings=settings, clock=clock, engine=engine, sessions=sessions)
    link = build_crm_link(settings.crm, engine, sessions, clock)
    container.route_tables.append(link_routes(link, container))
    app = build_app(container, owns_engine=False)
    headers = {who: {"Authorization": f"Bearer {t}"} for who, t in tokens.items()}
    async with TestClient(TestServer(app)) as client:
        yield client, headers, ids


async def test_supervisors_see_the_outbox_and_specialists_are_refused(
    outbox_api: tuple[TestClient[Any, Any], dict[str, dict[str, str]], list[int]],
) -> None:
    client, headers, ids = outbox_api
    spec_h, boss_h = headers["spec"], headers["boss"]
    assert (await client.get("/api/outbox", headers=spec_h)).status == 403
    assert (await client.get(f"/api/outbox/{ids[2]}", headers=spec_h)).status == 403
    resp = await client.get("/api/outbox?state=parked", headers=boss_h)
    assert resp.status == 200
    body = await resp.json()
    assert body["pending"] == 3 and body["parked"] == 1 and "is the CRM" in body["alarm"]
    assert [m["id"] for m in body["messages"]] == [ids[2]]
    one = await (await client.get(f"/api/outbox/{ids[2]}", headers=boss_h)).json()
    assert one["history"][0]["status"] == 422
    assert (await client.get("/api/outbox?state=lost", headers=boss_h)).status == 400


@pytest.mark.parametrize(
    ("query", "field", "rule"),
    [
        # A misspelt filter must not answer the counts alone, as if no message matched.
        ("stat=parked", "stat", "extra_forbidden"),
        ("state=parked&limit=0", "limit", "greater_than_equal"),
        ("state=parked&limit=501", "limit", "less_than_equal"),
        ("state=parked&limit=ten", "limit", "int_parsing"),
        ("state=lost", "state", "enum"),
    ],
)
async def test_a_bad_outbox_query_is_refused_naming_the_field(
    outbox_api: tuple[TestClient[Any, Any], dict[str, dict[str, str]], list[int]],
    query: str,
    field: str,
    rule: str,
) -> None:
    client, headers, _ids = outbox_api
    resp = await client.get(f"/api/outbox?{query}", headers=headers["boss"])
    assert resp.status == 400
    body = await resp.json()
    assert f"invalid query: {field}: " in body["error"]
    assert [(e["field"], e["rule"]) for e in body["errors"]] == [(field, rule)]


async def test_an_outbox_id_in_other_than_ascii_digits_names_no_message(
    outbox_api: tuple[TestClient[Any, Any], dict[str, dict[str, str]], list[int]],
) -> None:
    client, headers, ids = outbox_api
    arabic_indic = str(ids[2]).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    for written in (arabic_indic, f"+{ids[2]}", "99999999999"):
        resp = await client.get(f"/api/outbox/{written}", headers=headers["boss"])
        assert resp.status == 404, written
        body = await resp.json()
        assert body["errors"][0]["field"] == "id" and "Traceback" not in body["error"]
    missing = await client.get("/api/outbox/999999", headers=headers["boss"])
    assert missing.status == 404 and "callcenter outbox list" in (await missing.json())["error"]


def link_routes(link: CrmLink, container: Container) -> object:
    """Only the routes and values (no background tasks) for the API test."""
    link.install(container)
    container.cleanup_contexts.remove(link.cleanup_ctx)
    return container.route_tables.pop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver([SECRET], lambda: NOW)
    await r.start()
    yield r
    await r.stop()


async def test_the_service_lifecycle_runs_the_relay_to_the_configured_webhook(
    db_url: str,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    clock = VirtualClock(NOW)
    crm = CrmSettings(webhook_url=receiver.url, webhook_secrets=[SecretStr(SECRET)])
    settings = Settings(data_dir=tmp_path, database_url=db_url, crm=crm)
    container = Container(settings=settings, clock=clock, engine=engine, sessions=sessions)
    wire(container, daily_jobs=False)
    # Only the CRM link's lifecycle: the dialer's would dial out to an AMI that is not here.
    links = [
        c for c in container.cleanup_contexts if isinstance(getattr(c, "__self__", None), CrmLink)
    ]
    assert len(links) == 1
    container.cleanup_contexts = links
    app = build_app(container, owns_engine=False)
    async with TestClient(TestServer(app)):
        [mid] = await write_messages(sessions, NOW, ["lead:1"], 1)
        for _ in range(200):  # PostgreSQL: NOTIFY wakes it; SQLite: its next poll
            if str(mid) in receiver.accepted:
                break
            receiver.arrived.clear()
            await clock.advance(settings.crm.relay_poll)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(receiver.arrived.wait(), 0.1)
    assert str(mid) in receiver.accepted
    async with sessions() as s:
        row = await s.get(OutboxMessage, mid)
        assert row is not None and row.state == "delivered" and row.sink == "webhook"


async def test_the_relay_migration_goes_down_and_up_again(tmp_path: Path) -> None:
    """SQLite rebuilds the table in batch mode both ways; named constraints must match."""
    from alembic import command

    from callcenter.database import alembic_config, upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'mig.db'}"
    await upgrade(url)
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0013_outbox_relay-1")
    await upgrade(url)


async def test_a_lasting_alarm_is_logged_when_raised_every_quarter_hour_and_when_it_ends(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    clock = VirtualClock(NOW)
    await write_messages(sessions, NOW - timedelta(seconds=120), ["lead:1"], 1)
    monitor = OutboxMonitor(sessions, clock, CrmSettings(alarm_age=60, alarm_interval=60))
    with caplog.at_level(logging.INFO, logger="crm_sync.wiring"):
        for _ in range(20):  # twenty minutes of checks, one a minute
            assert await monitor.check() is not None
            await clock.advance(60)
        async with sessions.begin() as s:
            await s.execute(delete(OutboxMessage))
        assert await monitor.check() is None
        assert await monitor.check() is None
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2, "raised, then once more after 15 minutes"
    ended = [r for r in caplog.records if "alarm has ended" in r.getMessage()]
    assert len(ended) == 1
    assert len(monitor.alarms) == 10, "the latest texts are kept for the operations page"
