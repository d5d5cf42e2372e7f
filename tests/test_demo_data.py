"""`callcenter demo-data`: realistic, deterministic, and importable."""

from __future__ import annotations

import asyncio
import csv
import re
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.cli import main
from crm_sync.demo import HEADER, write_demo_file
from crm_sync.models import Branch, Phone, Policy
from crm_sync.services import import_file

TODAY = date(2026, 1, 5)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_same_seed_same_file_other_seed_other_file(tmp_path: Path) -> None:
    args = ["demo-data", "--policies", "50", "--today", TODAY.isoformat()]
    assert main([*args, "--seed", "4", "--out", str(tmp_path / "a.csv")]) == 0
    assert main([*args, "--seed", "4", "--out", str(tmp_path / "b.csv")]) == 0
    assert main([*args, "--seed", "5", "--out", str(tmp_path / "c.csv")]) == 0
    a, b, c = ((tmp_path / n).read_bytes() for n in ("a.csv", "b.csv", "c.csv"))
    assert a == b != c


def test_rows_look_like_the_core_systems_export(tmp_path: Path) -> None:
    rows = _rows(write_demo_file(tmp_path / "d.csv", 1500, seed=2, today=TODAY))
    assert list(rows[0]) == list(HEADER)
    assert all(re.fullmatch(r"冀[A-Z]·[0-9A-Z]{5}", r["车牌号"]) for r in rows)
    expiries = {date.fromisoformat(r["终保日期"]) for r in rows}
    assert min(expiries) > TODAY and (max(expiries) - TODAY).days <= 60
    assert len({r["机构"] for r in rows}) >= 4
    assert all("@" in r["机构邮箱"] for r in rows)
    fleets = [r for r in rows if r["车队"]]
    assert 50 < len(fleets) < 250
    assert sum(r["已续保"] == "是" for r in rows) > 20
    phones = [r["投保人联系电话"] for r in rows]
    assert any(p.startswith("0311-") for p in phones) and any(p.startswith("1") for p in phones)


async def test_demo_file_imports_with_invalid_numbers_flagged(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = await asyncio.to_thread(write_demo_file, tmp_path / "d.xlsx", 300, seed=3, today=TODAY)
    s = await import_file(
        engine, path, "renewal", now=datetime(2026, 1, 5, tzinfo=UTC), today=TODAY
    )
    assert s.rejected == 0 and s.read == 300
    assert s.skipped["renewed"] > 0 and s.imported == 300 - s.skipped["renewed"]
    async with engine.connect() as conn:
        invalid = (await conn.execute(select(func.count()).where(Phone.valid.is_(False)))).scalar()
        fleets = (
            await conn.execute(select(func.count()).where(Policy.is_fleet.is_(True)))
        ).scalar()
        emails = (await conn.execute(select(Branch.email))).scalars().all()
    assert invalid and fleets
    assert all(e and e.endswith("@example.com") for e in emails)
    again = await import_file(
        engine, path, "renewal", now=datetime(2026, 1, 6, tzinfo=UTC), today=TODAY
    )
    assert (again.imported, again.updated) == (0, 0)
    assert again.skipped == {"renewed": s.skipped["renewed"], "unchanged": s.imported}
