"""Helpers for the import tests: small export files written in tmp_path (no tests here)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_sync.demo import HEADER as DEMO_HEADER

# The core system's columns, without the optional e-mail, premium and renewed ones.
HEADER = [h for h in DEMO_HEADER if h not in ("机构邮箱", "保费", "已续保")]


def row(
    number: str,
    *,
    holder: str = "王伟",
    holder_phone: str = "13812345678",
    insured: str = "",
    insured_phone: str = "",
    start: str = "2025-03-01",
    expiry: str = "2026-02-28",
    branch: str = "1301 石家庄分公司",
    fleet: str = "",
    previous: str = "",
    plate: str = "冀A·12345",
) -> list[str]:
    return [
        number,
        plate,
        "大众FV7146BBDBG轿车",
        "家庭自用汽车",
        previous,
        holder,
        holder_phone,
        insured or holder,
        insured_phone if insured else (insured_phone or holder_phone),
        "河北省石家庄市长安区建设路1号",
        start,
        expiry,
        "刘经理",
        "直销业务",
        branch,
        fleet,
    ]


def write_csv(
    path: Path,
    rows: Sequence[Sequence[Any]],
    *,
    header: Sequence[str] = HEADER,
    encoding: str = "utf-8",
) -> Path:
    with path.open("w", encoding=encoding, newline="") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        out.writerows(rows)
    return path


def write_xlsx(
    path: Path, rows: Sequence[Sequence[Any]], *, header: Sequence[str] = HEADER
) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(list(header))
    for r in rows:
        ws.append(list(r))
    wb.save(path)
    return path


async def count(engine: AsyncEngine, model: Any, *where: Any) -> int:
    async with engine.connect() as conn:
        stmt = select(func.count()).select_from(model)
        if where:
            stmt = stmt.where(*where)
        return int((await conn.execute(stmt)).scalar_one())


async def table_counts(engine: AsyncEngine) -> dict[str, int]:
    from crm_sync.models import Branch, Customer, ImportRun, Lead, Phone, Policy

    return {
        m.__tablename__: await count(engine, m)
        for m in (Branch, Customer, Phone, Policy, Lead, ImportRun)
    }
