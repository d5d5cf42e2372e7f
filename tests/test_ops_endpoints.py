"""/metrics, /healthz and /readyz on the wired service over the PBX simulator
(callcenter.ops): the counters move with the calls, readiness follows the database and
the AMI links."""

from __future__ import annotations

import io
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.bootstrap import Container, build_app
from callcenter.database import create_engine, session_factory
from callcenter.ops.logs import collect_secrets, configure_logging
from callcenter.ops.services import ReadinessCheck
from callcenter.ops.wiring import install_ops
from callcenter.service import Service, wire
from callcenter.settings import AmiServer, ObservabilitySettings, Settings
from crm_sync.auth import issue_token
from dialer.engine import DialerConfig
from dialer.simulator import PbxSimulator
from schedules.clock import VirtualClock
from tests.test_deploy import dashboard_metrics
from tests.test_dialer_support import MONDAY_0930, number_for, seed, start_simulator
from tests.virtual_time import Driver

SCRAPE = "scrape-token-for-tests"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Desk:
    client: TestClient
    service: Service
    clock: VirtualClock
    sim: PbxSimulator
    specialist: int
    agent: dict[str, str]
    log: io.StringIO

    async def metrics(self) -> Samples:
        resp = await self.client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE}"})
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(await resp.text())
            for s in family.samples
        }


def total(samples: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


@pytest.fixture
async def desk(
    db_url: str, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[Desk]:
    clock = VirtualClock(MONDAY_0930 + timedelta(minutes=30))
    async with sessions() as s:
        specs, _ = await seed(s, specialists=1, leads=[("renewal", "0", 0)] * 3)
        token = await issue_token(s, specs[0])
        await s.commit()
    sim = await start_simulator(clock)
    settings = Settings(
        data_dir=tmp_path,
        database_url=db_url,
        ami=[
            AmiServer(name="pbx1", host=sim.host, port=sim.port, secret=SecretStr("secret")),
            AmiServer(name="pbx2", port=1, enabled=False),  # deliberately off
        ],
        ops=ObservabilitySettings(metrics_token=SecretStr(SCRAPE)),
    )
    container = Container(settings=settings, clock=clock, engine=engine, sessions=sessions)
    # The production log: JSON lines, everything down to DEBUG, the settings' secrets known.
    log, level = io.StringIO(), logging.getLogger().level
    handler = configure_logging(logging.DEBUG, "json", collect_secrets(settings), stream=log)
    service = wire(container, daily_jobs=False, dialer_config=DialerConfig(wrap_up_seconds=5))
    try:
        async with TestClient(TestServer(build_app(container, owns_engine=False))) as client:
            await service.engine.wait_connected()
            agent = {"Authorization": f"Bearer {token}"}
            yield Desk(client, service, clock, sim, specs[0], agent, log)
        await sim.stop()
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(level)


async def test_the_metrics_count_the_calls_made_over_the_simulator(
    desk: Desk, sessions: async_sessionmaker[AsyncSession]
) -> None:
    before = await desk.metrics()
    assert total(before, "callcenter_calls_ended_total") == 0
    assert total(before, "callcenter_ami_link_up", server="pbx1") == 1
    assert total(before, "callcenter_ami_link_enabled", server="pbx2") == 0

    c = desk.client
    await desk.service.dialer.start_campaign("renewal")
    assert (
        await c.post("/api/seat/sign-in", json={"ready": True}, headers=desk.agent)
    ).status == 200
    stats = desk.service.engine.stats
    await Driver(desk.clock, sessions).until(lambda: stats["results"] >= 3, within=3600)
    after = await desk.metrics()

    assert total(after, "callcenter_calls_started_total", campaign="renewal") == 3
    assert total(after, "callcenter_calls_ended_total", campaign="renewal") == 3
    outcomes = {
        dict(lab)["outcome"]: v
        for (n, lab), v in after.items()
        if n == "callcenter_calls_ended_total"
    }
    assert sum(outcomes.values()) == 3 and set(outcomes) <= {
        "answered",
        "busy",
        "no_answer",
        "congestion",
        "unreachable",
        "failed",
    }
    assert total(after, "callcenter_seat_ready_to_originate_seconds_count") == 3
    assert total(after, "callcenter_seats") == 1  # one specialist signed in, in some state
    assert total(after, "callcenter_ami_events_total", server="pbx1") > total(
        before, "callcenter_ami_events_total", server="pbx1"
    )
    assert total(after, "callcenter_ami_reconnects_total", server="pbx1") == 0
    assert total(after, "callcenter_live_calls", server="pbx1") == 0
    assert total(after, "callcenter_metrics_database_up") == 1
    # the outbox and recordings figures come from the database at scrape time
    for name in ("callcenter_outbox_pending", "callcenter_outbox_oldest_pending_age_seconds"):
        assert (name, ()) in after and after[name, ()] >= 0
    # (this simulator writes no WAVs: whether a recording is reported missing yet depends
    # on how far the ingest's wait got, so only the series is checked here)
    assert ("callcenter_recordings_failures", ()) in after
    assert ("callcenter_distribution_runs_total", ()) in after
    # the HTTP middleware counts by the route's canonical path and the status
    assert (
        total(
            after,
            "callcenter_http_requests_total",
            route="/api/seat/sign-in",
            method="POST",
            status="200",
        )
        == 1
    )
    assert total(after, "callcenter_http_requests_total", route="/metrics", status="200") == 1
    # the Grafana dashboard (docker/grafana) asks only for series this scrape has
    missing = dashboard_metrics() - {name for name, _ in after}
    assert not missing, missing


async def test_the_service_log_is_json_with_attempt_ids_and_no_numbers_or_secrets(
    desk: Desk, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await desk.service.dialer.start_campaign("renewal")
    resp = await desk.client.post("/api/seat/sign-in", json={"ready": True}, headers=desk.agent)
    assert resp.status == 200
    await Driver(desk.clock, sessions).until(
        lambda: desk.service.engine.stats["results"] >= 3, within=3600
    )
    await desk.metrics()
    lines = [json.loads(line) for line in desk.log.getvalue().splitlines()]
    about_calls = [r for r in lines if "att-" in str(r["message"])]
    assert about_calls, "the dialer logs its calls at DEBUG and INFO"
    for r in about_calls:
        assert str(r["attempt_id"]).startswith("att-") and r["attempt_id"] in str(r["message"])
    text = desk.log.getvalue()
    for i in range(3):
        e164 = number_for(i, "0")
        assert e164[1:] not in text and e164[3:] not in text, e164
    token = desk.agent["Authorization"].split()[1]
    assert token not in text and SCRAPE not in text


async def test_http_requests_are_counted_by_route_not_by_raw_url(desk: Desk) -> None:
    for lead in ("1", "2", "999999", "x'y"):
        await desk.client.get(f"/api/leads/{lead}", headers=desk.agent)
    await desk.client.get("/no/such/page/123")
    await desk.client.request("PROPFIND", "/api/leads/3", headers=desk.agent)
    samples = await desk.metrics()
    routes = {
        dict(lab)["route"]
        for (n, lab), _ in samples.items()
        if n == "callcenter_http_requests_total"
    }
    assert not any("999999" in r or "123" in r for r in routes), routes
    assert "/api/leads/{lead_id}" in routes and "unmatched" in routes
    assert total(samples, "callcenter_http_requests_total", route="/api/leads/{lead_id}") == 4
    assert total(samples, "callcenter_http_requests_total", method="other") == 1


async def test_metrics_need_the_scrape_token(desk: Desk) -> None:
    assert (await desk.client.get("/metrics")).status == 401
    wrong = {"Authorization": "Bearer not-it"}
    assert (await desk.client.get("/metrics", headers=wrong)).status == 401
    # an API user's token is not a scrape token
    assert (await desk.client.get("/metrics", headers=desk.agent)).status == 401


async def test_health_is_public_and_ready_follows_the_ami_link(
    desk: Desk, sessions: async_sessionmaker[AsyncSession]
) -> None:
    c = desk.client
    resp = await c.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "alive"}
    resp = await c.get("/readyz")
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {
        "status": "ready",
        "checks": {
            "database": "ok",
            "schema": "current",
            "ami": {"pbx1": "up", "pbx2": "off"},
        },
    }

    await desk.sim.stop()  # Asterisk gone: the link drops and stays down
    engine = desk.service.engine
    await Driver(desk.clock, sessions).until(
        lambda: not any(link["connected"] for link in engine.health())
    )
    resp = await c.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "not ready" and body["checks"]["ami"] == {
        "pbx1": "down",
        "pbx2": "off",
    }
    assert total(await desk.metrics(), "callcenter_ami_link_up", server="pbx1") == 0


async def test_not_ready_when_the_database_is_unreachable(tmp_path: Path) -> None:
    # Nothing listens on port 9: the connection is refused, as when PostgreSQL is down.
    nowhere = create_engine("postgresql+asyncpg://callcenter:x@127.0.0.1:9/callcenter")
    container = Container(
        settings=Settings(data_dir=tmp_path),
        clock=VirtualClock(MONDAY_0930),
        engine=nowhere,
        sessions=session_factory(nowhere),
    )
    install_ops(container, None)
    try:
        async with TestClient(TestServer(build_app(container, owns_engine=False))) as client:
            resp = await client.get("/readyz")
            assert resp.status == 503
            assert await resp.json() == {
                "status": "not ready",
                "checks": {"database": "unreachable", "schema": "unknown", "ami": {}},
            }
            assert (await client.get("/healthz")).status == 200  # alive all the same
    finally:
        await nowhere.dispose()
    links = ReadinessCheck(nowhere, lambda: [{"server": "pbx1", "connected": True}])
    assert (await links.check()).checks["ami"] == {"pbx1": "up"}


async def test_not_ready_on_a_schema_that_is_not_current(tmp_path: Path) -> None:
    empty = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    try:
        result = await ReadinessCheck(empty).check()
    finally:
        await empty.dispose()
    assert not result.ready and result.checks["schema"] == "out of date"
    assert result.checks["database"] == "ok"


async def test_metrics_are_off_without_a_scrape_token(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path, db_url: str
) -> None:
    container = Container(
        settings=Settings(data_dir=tmp_path, database_url=db_url),
        clock=VirtualClock(MONDAY_0930),
        engine=engine,
        sessions=sessions,
    )
    install_ops(container, None)
    async with TestClient(TestServer(build_app(container, owns_engine=False))) as client:
        resp = await client.get("/metrics", headers={"Authorization": "Bearer anything"})
        assert resp.status == 404 and "metrics_token" in (await resp.json())["error"]
        resp = await client.get("/readyz")  # no dialer in this process: the database alone
        assert resp.status == 200 and (await resp.json())["checks"]["ami"] == {}


def test_the_latency_cursor_observes_each_sample_once() -> None:
    from callcenter.ops.collectors import LatencyCursor

    record: deque[tuple[int, float, float, float]] = deque(maxlen=3)
    cursor = LatencyCursor()
    assert cursor.new_samples(record) == []
    record.extend([(1, 0.0, 0.01, 0.02), (2, 0.0, 0.03, 0.04)])
    assert cursor.new_samples(record) == [0.01, 0.03]
    assert cursor.new_samples(record) == []
    record.append((1, 0.0, 0.05, 0.06))
    assert cursor.new_samples(record) == [0.05]
    # more new samples than the record keeps: the ones it still has, none twice
    record.extend([(3, 0.0, 0.07, 0.0), (3, 0.0, 0.08, 0.0), (3, 0.0, 0.09, 0.0)])
    assert cursor.new_samples(record) == [0.07, 0.08, 0.09]
