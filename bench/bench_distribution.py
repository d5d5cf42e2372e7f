"""Benchmark: the daily distribution of 1,000,000 due leads among 500 specialists.

Creates a scratch database (a new PostgreSQL database, dropped afterwards; or a temporary
SQLite file), migrates it, fills it with SQL (customers, policies, due renewal leads), then
times `schedules.distribution_run.run_distribution` and samples the process's peak RSS while it runs.
Besides wall-clock time it reports the CPU time of this process and (PostgreSQL on this
machine) of the database's server backends, which a machine shared with other work inflates
far less. Each backend runs in a fresh child process so that memory figures do not mix.

    .venv/bin/python bench/bench_distribution.py                       # both backends
    .venv/bin/python bench/bench_distribution.py --backend postgresql --leads 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
from sqlalchemy import text

from callcenter.database import create_engine, session_factory, upgrade
from schedules import distribution_run
from schedules.config import DeskCalendar
from schedules.distribution_run import run_distribution

PHASES: dict[str, float] = {}


def _timed(name: str, fn: Any) -> Any:
    """Wrap a step of the distribution to report where the time goes (bench only)."""

    async def async_wrapper(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await fn(*a, **kw)
        finally:
            PHASES[name] = PHASES.get(name, 0.0) + time.perf_counter() - t0

    def sync_wrapper(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            PHASES[name] = PHASES.get(name, 0.0) + time.perf_counter() - t0

    return async_wrapper if asyncio.iscoroutinefunction(fn) else sync_wrapper


distribution_run.fetch_due_ids = _timed("fetch_ids", distribution_run.fetch_due_ids)  # type: ignore[attr-defined]
distribution_run.allocate = _timed("allocate", distribution_run.allocate)  # type: ignore[attr-defined]
distribution_run.write_allocation = _timed("bulk_update", distribution_run.write_allocation)  # type: ignore[attr-defined]
distribution_run._record_run = _timed("audit_row", distribution_run._record_run)  # type: ignore[attr-defined]

PG_ADMIN_URL = os.environ.get(
    "CALLCENTER_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
DAY = date(2026, 3, 11)
NOW = datetime(2026, 3, 11, 8, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


class PeakRss:
    """Samples this process's resident set size every few milliseconds."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def _fill_sql(backend: str, n: int, specialists: int) -> list[str]:
    if backend == "postgresql":
        series = f"generate_series(1, {n}) AS s(g)"
        return [
            f"INSERT INTO specialists (name, seat, active, on_leave, role, created_at) "
            f"SELECT 'spec' || g, 'PJSIP/' || g, true, false, 'specialist', now() "
            f"FROM generate_series(1, {specialists}) AS s(g)",
            f"INSERT INTO customers (id, name, time_zone, match_key) "
            f"SELECT g, 'c' || g, 'Asia/Shanghai', 'k' || g FROM {series}",
            f"INSERT INTO policies (id, policy_number, policyholder_id, expiry_date, is_fleet, "
            f"renewed, updated_at) SELECT g, 'P' || g, g, DATE '2026-04-05', false, false, now() "
            f"FROM {series}",
            f"INSERT INTO leads (policy_id, kind, status, due_on, attempt_count, central, "
            f"created_at, updated_at) SELECT g, 'renewal', 'due', DATE '{DAY}', 0, false, now(), "
            f"now() FROM {series}",
        ]
    rec = "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {n}) "
    ts = "'2026-03-10 00:00:00.000000'"
    return [
        "INSERT INTO specialists (name, seat, active, on_leave, role, created_at) "
        + rec.format(n=specialists)
        + f"SELECT 'spec' || g, 'PJSIP/' || g, 1, 0, 'specialist', {ts} FROM s",
        "INSERT INTO customers (id, name, time_zone, match_key) "
        + rec.format(n=n)
        + "SELECT g, 'c' || g, 'Asia/Shanghai', 'k' || g FROM s",
        "INSERT INTO policies (id, policy_number, policyholder_id, expiry_date, is_fleet, renewed, "
        "updated_at) "
        + rec.format(n=n)
        + f"SELECT g, 'P' || g, g, '2026-04-05', 0, 0, {ts} FROM s",
        "INSERT INTO leads (policy_id, kind, status, due_on, attempt_count, central, created_at, "
        "updated_at) " + rec.format(n=n) + f"SELECT g, 'renewal', 'due', '{DAY}', 0, 0, {ts}, {ts} "
        "FROM s",
    ]


async def _scratch_pg() -> str:
    import asyncpg  # type: ignore[import-untyped]

    name = f"cc_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


async def _drop_pg(url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _backend_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) of local PostgreSQL backends, read from /proc: the server's
    work without the waiting that a shared machine adds to wall-clock time."""
    out: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # not on this machine, or gone
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


async def _db_backends(engine: Any) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        )
        return [int(r[0]) for r in rows]


async def bench_one(backend: str, n: int, specialists: int) -> dict[str, object]:
    tmp = tempfile.TemporaryDirectory()
    url = (
        await _scratch_pg()
        if backend == "postgresql"
        else f"sqlite+aiosqlite:///{Path(tmp.name) / 'bench.db'}"
    )
    try:
        await upgrade(url)
        engine = create_engine(url)
        t0 = time.perf_counter()
        async with engine.begin() as conn:
            for stmt in _fill_sql(backend, n, specialists):
                await conn.execute(text(stmt))
        if backend == "postgresql":
            async with engine.connect() as conn:
                ac = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await ac.execute(text("VACUUM ANALYZE leads"))
        else:
            async with engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
        fill = time.perf_counter() - t0

        sessions = session_factory(engine)
        desk = DeskCalendar()
        rss_before = psutil.Process().memory_info().rss
        pg = backend == "postgresql"
        cpu_before = _backend_cpu(await _db_backends(engine)) if pg else {}
        with PeakRss() as peak:
            t0 = time.perf_counter()
            c0 = time.process_time()
            report = await run_distribution(sessions, day=DAY, now=NOW, desk=desk, seed=20260311)
            seconds = time.perf_counter() - t0
            python_cpu = time.process_time() - c0
        cpu_after = _backend_cpu(await _db_backends(engine)) if pg else {}
        server_cpu = sum(v - cpu_before.get(pid, 0.0) for pid, v in cpu_after.items())
        async with engine.connect() as conn:
            counts = (
                await conn.execute(
                    text(
                        "SELECT min(c), max(c), sum(c), count(*) FROM (SELECT owner_id, count(*) "
                        "AS c FROM leads WHERE distributed_on IS NOT NULL GROUP BY owner_id) t"
                    )
                )
            ).one()
        # Context for the figure: the same write done in SQL alone (every lead gets an owner,
        # a date and ASSIGNED; no fetch, no deal, no join, no audit row), rolled back.
        async with engine.connect() as conn:
            await conn.execute(text("UPDATE leads SET owner_id = NULL, distributed_on = NULL"))
            t0 = time.perf_counter()
            await conn.execute(
                text(
                    "UPDATE leads SET owner_id = 1 + id % :k, distributed_on = :day, "
                    "status = 'assigned', updated_at = updated_at"
                ),
                {"k": specialists, "day": DAY},
            )
            floor = time.perf_counter() - t0
            await conn.rollback()
        await engine.dispose()
        return {
            "backend": backend,
            "leads": n,
            "specialists": specialists,
            "fill_seconds": round(fill, 1),
            "distribution_seconds": round(seconds, 2),
            "phases_seconds": {k: round(v, 2) for k, v in PHASES.items()},
            "python_cpu_seconds": round(python_cpu, 2),
            "server_cpu_seconds": round(server_cpu, 2) if cpu_after else None,
            "floor_same_write_in_plain_sql_seconds": round(floor, 2),
            "peak_rss_mb": round(peak.peak / 2**20, 1),
            "rss_before_mb": round(rss_before / 2**20, 1),
            "rss_growth_mb": round((peak.peak - rss_before) / 2**20, 1),
            "dealt": report.dealt,
            "db_min_per_specialist": counts[0],
            "db_max_per_specialist": counts[1],
            "db_max_minus_min": counts[1] - counts[0],
            "db_assigned": int(counts[2]),
            "db_specialists_with_leads": counts[3],
        }
    finally:
        if backend == "postgresql":
            await _drop_pg(url)
        tmp.cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=["postgresql", "sqlite", "both"], default="both")
    ap.add_argument("--leads", type=int, default=1_000_000)
    ap.add_argument("--specialists", type=int, default=500)
    args = ap.parse_args()
    if args.backend == "both":
        for backend in ("postgresql", "sqlite"):
            code = subprocess.call(
                [
                    sys.executable,
                    __file__,
                    "--backend",
                    backend,
                    "--leads",
                    str(args.leads),
                    "--specialists",
                    str(args.specialists),
                ]
            )
            if code:
                return code
        return 0
    result = asyncio.run(bench_one(args.backend, args.leads, args.specialists))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
