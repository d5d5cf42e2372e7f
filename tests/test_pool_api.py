"""The supervisor's pooled predictive pacing through the wired service: switch a campaign to
pooled predictive, cap its pacing ratio and target abandon rate, set its pool, and read its
live and 30-day abandon rates; specialists are refused; the law's maximum holds."""

from __future__ import annotations

from datetime import timedelta

from dialer.pool import record_answer
from tests.test_api import Desk, desk  # noqa: F401  (the wired desk fixture)


async def test_a_supervisor_switches_a_campaign_to_pooled_predictive_and_reads_its_abandon_rates(
    desk: Desk,  # noqa: F811
) -> None:
    c, boss = desk.client, desk.as_("boss")
    changes = {
        "pooled": True,
        "pacing": "predictive",
        "pacing_ratio_cap": 2.5,
        "target_abandon": 0.015,
        "abandon_cap": 0.025,
    }
    resp = await c.patch("/api/campaigns/lapsed", json=changes, headers=boss)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert {k: body[k] for k in changes} == changes
    pool = [
        {"specialist_id": desk.specialists[0], "share": "always"},
        {"specialist_id": desk.specialists[1]},
    ]
    resp = await c.put("/api/campaigns/lapsed/pool", json={"members": pool}, headers=boss)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["members"] == [
        {"specialist_id": desk.specialists[0], "share": "always"},
        {"specialist_id": desk.specialists[1], "share": "after_own_queue"},
    ]
    camp = desk.service.engine.registry
    info = next(x for x in camp.all() if x.name == "lapsed")
    today = desk.service.engine.windows.plan.default.local_date(desk.service.engine.clock.now())
    async with desk.service.container.sessions() as s:
        for i in range(40):
            await record_answer(s, info.id, today, abandoned=i == 0)
        for _ in range(60):
            await record_answer(s, info.id, today - timedelta(days=2), abandoned=False)
        await s.commit()
    resp = await c.get("/api/campaigns/lapsed/abandon", headers=boss)
    assert resp.status == 200, await resp.text()
    rates = await resp.json()
    assert (rates["answered_today"], rates["abandoned_today"]) == (40, 1)
    assert rates["abandon_rate_today"] == 0.025
    assert (rates["answered_30d"], rates["abandon_rate_30d"]) == (100, 0.01)
    assert (rates["abandon_cap"], rates["legal_max_abandon"]) == (0.025, 0.03)


async def test_the_abandon_cap_cannot_pass_the_legal_maximum(desk: Desk) -> None:  # noqa: F811
    c, boss = desk.client, desk.as_("boss")
    resp = await c.patch("/api/campaigns/lapsed", json={"abandon_cap": 0.04}, headers=boss)
    assert resp.status == 400
    assert "legal maximum" in (await resp.json())["error"]
    resp = await c.patch("/api/campaigns/lapsed", json={"target_abandon": 0.05}, headers=boss)
    assert resp.status == 400 and "cap" in (await resp.json())["error"]
    resp = await c.patch("/api/campaigns/reminder", json={"pooled": True}, headers=boss)
    assert resp.status == 400 and "cannot be pooled" in (await resp.json())["error"]
    unknown = [{"specialist_id": 999_999}]
    resp = await c.put("/api/campaigns/lapsed/pool", json={"members": unknown}, headers=boss)
    assert resp.status == 400 and "no specialist" in (await resp.json())["error"]


async def test_specialists_cannot_see_or_change_pacing(desk: Desk) -> None:  # noqa: F811
    a = desk.as_("a")
    assert (await desk.client.get("/api/campaigns/lapsed/abandon", headers=a)).status == 403
    assert (await desk.client.get("/api/campaigns/lapsed/pool", headers=a)).status == 403
    resp = await desk.client.patch("/api/campaigns/lapsed", json={"pooled": True}, headers=a)
    assert resp.status == 403
