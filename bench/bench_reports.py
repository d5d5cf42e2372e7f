"""The reports on a generated year: 300,000 leads and 2,000,000 call attempts on PostgreSQL.

Generates the year in a database of its own (`cc_bench_reports`, dropped at the end unless
--keep) with `generate_series` (seconds, not minutes), rolls every day up as the daily job
would (`ReportsService.refresh(force=True)`: the backfill), then times each report over the
whole year and over one day: cold (a fresh engine and connection, the first call, which
also checks which days are stale and rolls today up) and warm (the median of the next five).

The year: 2026-01-01 .. 2026-12-31, 40 specialists, 10 branches, leads handed out every
day (about 820 a day, spread over every specialist, branch and kind of lead, so the rollup
has as many groups as a real desk's: several hundred a day), each lead called 6 or 7 times
over the following days (the last days' calls wrap to the first days of the year) (outcomes in the desk's proportions: about a third answered), a contact result on 70 %
of leads, a sale on 20 % (premium 1,000-10,000 CNY), 3 % of numbers found inaccurate and a
third of those corrected.

Usage: .venv/bin/python bench/bench_reports.py [--keep] [--reuse]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg  # type: ignore[import-untyped]

from callcenter.database import create_engine, session_factory, upgrade
from callcenter.reports import tables
from callcenter.reports.services import Period, ReportsService
from common.principal import Principal
from schedules.clock import VirtualClock
from schedules.config import DeskCalendar
from schedules.distribution import result_deadline

PG_ADMIN_URL = os.environ.get(
    "CALLCENTER_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
NAME = "cc_bench_reports"
LEADS = 300_000
ATTEMPTS = 2_000_000
YEAR = Period(date(2026, 1, 1), date(2026, 12, 31))
NOW = datetime(2026, 12, 31, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai on the last day

GENERATE = [
    "INSERT INTO branches (id, code, name) SELECT b, 'B' || b, '分公司' || b "
    "FROM generate_series(1, 10) b",
    "INSERT INTO specialists (id, name, seat, branch_id, active, on_leave, role, created_at) "
    "SELECT s, '专员' || s, 'PJSIP/' || (8000 + s), 1 + s % 10, true, false, 'specialist', now() "
    "FROM generate_series(1, 40) s",
    "INSERT INTO specialists (id, name, seat, active, on_leave, role, created_at) "
    "VALUES (41, '主管', 'PJSIP/8999', true, false, 'supervisor', now())",
    "INSERT INTO campaigns (id, name, kind, mode, running, concurrency, trunk, trunk_max_calls, "
    "trunk_max_cps, created_at) VALUES (1, '续保', 'renewal', 'seat_first', false, 10, 'c', 30, "
    "5, now()), (2, '脱保', 'lapsed', 'customer_first', false, 10, 'c', 30, 5, now()), "
    "(3, '体验会员', 'trial', 'seat_first', false, 10, 'c', 30, 5, now()), "
    "(4, '承保回访', 'callback', 'automatic', false, 10, 'c', 30, 5, now())",
    f"INSERT INTO customers (id, name, time_zone, match_key) SELECT i, '客户' || i, "
    f"'Asia/Shanghai', 'k' || i FROM generate_series(1, {LEADS}) i",
    f"INSERT INTO phones (id, customer_id, role, kind, raw, e164, valid, accuracy, "
    f"accuracy_set_at, do_not_call) SELECT i, i, 'policyholder', 'mobile', '139' || lpad(i::text, "
    f"8, '0'), '+86139' || lpad(i::text, 8, '0'), true, CASE WHEN i % 33 = 0 THEN 'inaccurate' "
    f"ELSE 'unknown' END, CASE WHEN i % 33 = 0 THEN timestamptz '2026-01-01 03:00+00' "
    f"+ ((i % 365) || ' days')::interval END, false FROM generate_series(1, {LEADS}) i",
    f"INSERT INTO phones (id, customer_id, role, kind, raw, e164, valid, accuracy, do_not_call) "
    f"SELECT {LEADS} + i, i, 'corrected', 'mobile', '138' || lpad(i::text, 8, '0'), '+86138' || "
    f"lpad(i::text, 8, '0'), true, 'unknown', false FROM generate_series(1, {LEADS}) i "
    f"WHERE i % 99 = 0",
    f"INSERT INTO policies (id, policy_number, policyholder_id, expiry_date, branch_id, "
    f"is_fleet, renewed, updated_at) SELECT i, 'P' || lpad(i::text, 9, '0'), i, "
    f"date '2026-01-26' + (i % 365), 1 + (i / 40) % 10, false, false, now() "
    f"FROM generate_series(1, {LEADS}) i",
    # a lead per policy, handed out on day (i % 365) of the year to specialist 1 + i % 40
    f"INSERT INTO leads (id, policy_id, kind, status, phone_id, due_on, owner_id, "
    f"distributed_on, contact_result, contact_result_at, attempt_count, central, created_at, "
    f"updated_at) SELECT i, i, (ARRAY['renewal','renewal','renewal','lapsed','trial'])"
    f"[1 + (i / 400) % 5], 'assigned', i, date '2026-01-01' + (i % 365), 1 + i % 40, "
    f"date '2026-01-01' + (i % 365), CASE WHEN i % 10 < 2 THEN 'renewed' WHEN i % 10 < 4 THEN "
    f"'declined' WHEN i % 10 < 7 THEN 'interested' END, CASE WHEN i % 10 < 7 THEN "
    f"timestamptz '2026-01-01 06:00+00' + (i % 365 || ' days')::interval END, 7, false, now(), "
    f"now() FROM generate_series(1, {LEADS}) i",
    # attempt i calls lead 1 + i % LEADS, (i / LEADS) days after its distribution, at a
    # minute of the windows (09:30-17:00 local = 01:30-09:00 UTC)
    f"INSERT INTO call_attempts (attempt_id, lead_id, phone_id, number, specialist_id, mode, "
    f"campaign_id, campaign_kind, ami_server, state, outcome, talk_seconds, created_at, "
    f"ended_at, unknown) SELECT 'att-' || i, l, l, '+86139' || lpad(l::text, 8, '0'), "
    f"1 + l % 40, 'seat_first', 1, 'renewal', 'pbx1', 'ended', o, CASE WHEN o = 'answered' "
    f"THEN 30 + i % 300 END, t, t + interval '40 seconds', false FROM (SELECT i, "
    f"1 + i % {LEADS} AS l, (ARRAY['answered','answered','no_answer','busy','no_answer',"
    f"'answered','switched_off','abandoned','wrong_number','not_sent'])[1 + (i * 7) % 10] AS o, "
    f"timestamptz '2026-01-01 01:30+00' + (((1 + i % {LEADS}) % 365 + i / {LEADS}) % 365 "
    f"|| ' days')::interval + (i % 450 || ' minutes')::interval AS t FROM generate_series(0, "
    f"{ATTEMPTS - 1}) i) a",
    f"INSERT INTO sales_records (lead_id, specialist_id, premium, points, sold_at, sold_on, "
    f"status, red_star, attempts, recorded_by, recorded_at, updated_at) SELECT i, 1 + i % 40, "
    f"1000 + (i * 37) % 9000, 20, timestamptz '2026-01-01 07:00+00' + (i % 365 || ' days')"
    f"::interval, date '2026-01-01' + (i % 365), 'confirmed', i % 3 = 0, 7, 1 + i % 40, "
    f"now(), timestamptz '2026-01-01 07:00+00' FROM generate_series(1, {LEADS}) i "
    f"WHERE i % 10 < 2",
    "INSERT INTO distribution_runs (day, started_at, seed, instance, due_count, dealt_count, "
    "counts, skipped, allocation) SELECT d::date, d + interval '1 hour', 1, 'bench', 0, 0, "
    "'{}', '[]', '{}' FROM generate_series(timestamptz '2026-01-01 00:00+00', "
    "timestamptz '2026-12-31 00:00+00', interval '1 day') d",
    "ANALYZE",
]


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _admin_db(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def generate(url: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
    await _admin(f'CREATE DATABASE "{NAME}"')
    await upgrade(url)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        # The rows are consistent by construction: foreign-key triggers per row would make
        # the two million attempts take minutes (a superuser's session setting, this
        # connection only).
        await conn.execute("SET session_replication_role = replica")
        for sql in GENERATE:
            started = time.perf_counter()
            await conn.execute(sql)
            print(f"  {time.perf_counter() - started:6.1f} s  {sql[:70]}…", flush=True)
        for table in ("branches", "specialists", "customers", "phones", "policies", "leads"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        n = await conn.fetchval("SELECT count(*) FROM call_attempts")
        print(f"  {n:,} attempts, {LEADS:,} leads", flush=True)
    finally:
        await conn.close()


def _service(url: str) -> tuple[ReportsService, Any]:
    engine = create_engine(url)
    desk = DeskCalendar()
    service = ReportsService(
        session_factory(engine),
        VirtualClock(NOW),
        desk.tz,
        lambda d: result_deadline(d, desk.calendar, desk.result_deadline, desk.tz),
    )
    return service, engine


BOSS = Principal(41, "主管", "supervisor")
ONE = Principal(7, "专员7", "specialist")
DAY = Period(date(2026, 6, 15), date(2026, 6, 15))


def reports() -> list[tuple[str, Callable[[ReportsService], Awaitable[Any]]]]:
    out: list[tuple[str, Callable[[ReportsService], Awaitable[Any]]]] = []
    for group in ("day", "week", "month", "specialist", "branch", "kind"):
        out.append(
            (f"performance by {group}, year", lambda s, g=group: s.performance(BOSS, YEAR, g))
        )
    out += [
        ("performance, one specialist, year", lambda s: s.performance(ONE, YEAR, "month")),
        ("performance by specialist, one day", lambda s: s.performance(BOSS, DAY, "specialist")),
        ("dialer report, year", lambda s: s.dialer(BOSS, YEAR)),
        ("dialer report, one day", lambda s: s.dialer(BOSS, DAY)),
        ("performance XLSX by day, year", _xlsx),
        ("the /reports page's data, year", lambda s: s.page(BOSS, YEAR, "specialist")),
    ]
    return out


async def _xlsx(service: ReportsService) -> bytes:
    data = await service.performance(BOSS, YEAR, "day")
    return tables.xlsx(
        [(tables.PERFORMANCE, data["rows"]), (tables.RESULTS, data["contact_results"])]
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="use the database already there")
    args = parser.parse_args()
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{NAME}"
    print(f"load: {os.getloadavg()}")
    if not args.reuse:
        started = time.perf_counter()
        print("generating the year …", flush=True)
        await generate(url)
        print(f"generated in {time.perf_counter() - started:.1f} s")
        service, engine = _service(url)
        started = time.perf_counter()
        await service.refresh(YEAR, force=True, progress=True)
        took = time.perf_counter() - started
        print(
            f"rollup of 365 days (the daily job's backfill): {took:.1f} s, {took / 365 * 1000:.0f} ms a day"
        )
        await engine.dispose()
        # What autovacuum does after the first big insert into the rollup tables.
        await _admin_db(url, "ANALYZE report_daily; ANALYZE report_hourly; ANALYZE report_results")
    print(f"\n{'report':40} {'cold ms':>9} {'warm ms':>9}")
    for name, run in reports():
        service, engine = _service(url)  # a fresh engine: new connections, empty caches
        started = time.perf_counter()
        await run(service)
        cold = (time.perf_counter() - started) * 1000
        warm_runs = []
        for _ in range(5):
            started = time.perf_counter()
            await run(service)
            warm_runs.append((time.perf_counter() - started) * 1000)
        await engine.dispose()
        print(f"{name:40} {cold:9.0f} {statistics.median(warm_runs):9.0f}", flush=True)
    print(f"load: {os.getloadavg()}")
    if not args.keep:
        await _admin(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
