"""The sales, points and reports API on the wired service: who may do what, the documented
shapes, and the spreadsheet."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from openpyxl import load_workbook
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm_sync.models import Lead
from tests.test_api_support import WiredApi, wired_api


@pytest.fixture
async def api(
    db_url: str, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[WiredApi]:
    async with wired_api(db_url, engine, sessions, tmp_path) as wired:
        yield wired


async def test_a_sale_entered_confirmed_and_reported_through_the_api(
    api: WiredApi, sessions: async_sessionmaker[AsyncSession]
) -> None:
    own = api.leads[0]
    async with sessions() as s:
        await s.execute(update(Lead).where(Lead.id == own).values(contact_result="renewed"))
        await s.commit()
    async with aiohttp.ClientSession(api.url) as http:
        made = await http.post(
            "/api/sales",
            json={"lead_id": own, "premium": 4200.5, "new_policy_number": "PD2027"},
            headers=api.auth("supervisor"),
        )
        assert made.status == 201, await made.text()
        sale = await made.json()
        assert (sale["premium"], sale["status"]) == ("4200.50", "recorded")
        other = await http.post(
            "/api/sales",
            json={"lead_id": api.leads[1], "premium": 10},
            headers=api.auth("specialist"),
        )
        assert other.status == 404  # another specialist's lead
        refused = await http.post(
            f"/api/sales/{sale['sale_id']}/confirm", json={}, headers=api.auth("specialist")
        )
        assert refused.status == 403
        done = await http.post(
            f"/api/sales/{sale['sale_id']}/confirm",
            json={"red_star": True, "membership_card": "VIP-9"},
            headers=api.auth("supervisor"),
        )
        assert done.status == 200 and (await done.json())["status"] == "confirmed"
        day = sale["sold_on"]
        perf = await http.get(
            f"/api/reports/performance?start={day}&group=specialist", headers=api.auth("specialist")
        )
        rows = (await perf.json())["rows"]
        assert [(r["renewals"], r["premium"]) for r in rows] == [(1, "4200.50")]
        assert (await http.get("/api/reports/dialer", headers=api.auth("specialist"))).status == 403
        sheet = await http.get(
            f"/api/reports/performance.xlsx?start={day}&group=day", headers=api.auth("supervisor")
        )
        assert sheet.status == 200
        book = load_workbook(io.BytesIO(await sheet.read()))
        assert [c.value for c in book.worksheets[0][1]][:2] == ["分组", "发放线索"]
        assert book.worksheets[1].title == "联系结果"
        bad = await http.get(
            "/api/reports/performance?start=2026-02-01&end=2026-01-01",
            headers=api.auth("supervisor"),
        )
        assert bad.status == 400 and "swap" in (await bad.json())["error"]
