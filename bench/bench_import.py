"""Import benchmark: 100,000 demo rows from CSV and from XLSX into SQLite and PostgreSQL.

    .venv/bin/python bench/bench_import.py [--rows 100000] [--backends sqlite,postgresql]
                                           [--formats csv,xlsx] [--pg-admin-url URL]

Each case runs in a fresh subprocess on a fresh database (a scratch PostgreSQL database is
created and dropped), so the peak RSS reported is that import's alone, interpreter included.
Prints rows/s, seconds and peak memory per case.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get(
    "CALLCENTER_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
TODAY = date(2026, 1, 5)


def _cpu() -> float:
    """CPU seconds of this process (all threads): the figure that does not depend on how
    busy the machine is; the database server's own CPU is not in it."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _one(path: Path, url: str) -> None:
    """Child process: migrate, import, print one JSON line."""
    from callcenter.database import create_engine, upgrade
    from crm_sync.services import import_file

    async def run() -> dict[str, object]:
        await upgrade(url)
        engine = create_engine(url)
        try:
            t0, c0 = time.perf_counter(), _cpu()
            summary = await import_file(engine, path, "renewal", now=datetime.now(UTC), today=TODAY)
            seconds, cpu = time.perf_counter() - t0, _cpu() - c0
        finally:
            await engine.dispose()
        return {
            "rows": summary.read,
            "imported": summary.imported,
            "seconds": seconds,
            "rows_per_s": summary.read / seconds,
            "cpu_seconds": cpu,
        }

    result = asyncio.run(run())
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


async def _pg(admin: str, sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(admin.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--formats", default="csv,xlsx")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN)
    parser.add_argument("--one", nargs=2, metavar=("FILE", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one(Path(args.one[0]), args.one[1])
        return 0

    from crm_sync.demo import write_demo_file

    print(
        f"import benchmark: {args.rows:,} rows, kind renewal, batch 1000, python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        files = {}
        for fmt in args.formats.split(","):
            t0 = time.perf_counter()
            files[fmt] = write_demo_file(
                Path(tmp) / f"demo.{fmt}", args.rows, seed=7, today=TODAY, file_format=fmt
            )
            size = files[fmt].stat().st_size / 1e6
            print(f"  generated {fmt}: {size:.1f} MB in {time.perf_counter() - t0:.1f} s")
        print(
            f"{'format':<6} {'backend':<10} {'rows':>8} {'seconds':>8} {'rows/s':>8} "
            f"{'CPU s':>7} {'peak RSS':>9}  load"
        )
        for fmt, path in files.items():
            for backend in args.backends.split(","):
                name = f"bench_import_{uuid.uuid4().hex[:8]}"
                if backend == "sqlite":
                    url = f"sqlite+aiosqlite:///{Path(tmp) / (name + '.db')}"
                else:
                    asyncio.run(_pg(args.pg_admin_url, f'CREATE DATABASE "{name}"'))
                    url = args.pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
                try:
                    out = subprocess.run(
                        [sys.executable, __file__, "--one", str(path), url],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                finally:
                    if backend != "sqlite":
                        asyncio.run(
                            _pg(args.pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                        )
                r = json.loads(out.strip().splitlines()[-1])
                print(
                    f"{fmt:<6} {backend:<10} {r['rows']:>8} {r['seconds']:>8.1f} "
                    f"{r['rows_per_s']:>8.0f} {r['cpu_seconds']:>7.1f} {r['peak_rss_mb']:>6.0f} MB"
                    f"  {os.getloadavg()[0]:.1f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
