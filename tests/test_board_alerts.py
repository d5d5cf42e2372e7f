"""Acting on the board's alerts, and the audit log (issue 15): every alert type carries an
action; ending a pause, releasing node 3's missing leads and retrying the CRM outbox work
over HTTP on the wired service (SQLite and PostgreSQL), are refused to a specialist, and are
audited with the actions on calls; the audit log filters."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from callcenter.board.models import SupervisorAction
from callcenter.board.remedies import alert_actions, with_actions
from callcenter.pages.services import previous_working_day
from crm_sync.models import Lead, LeadStatus, OutboxMessage
from tests.seat_page_support import Site, drive_until, sign_in, site_fixture  # noqa: F401

# The audit log's and the pause's database paths are plain ORM queries: SQLite only keeps
# make test fast; the release and the outbox retry (row locks, NOTIFY) run on both.
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _alert(code: str, **params: Any) -> dict[str, Any]:
    return {"code": code, "level": "warn", "key": code, "params": params}


@pytest.mark.parametrize(
    ("alert", "does"),
    [
        (_alert("seat_paused", specialist_id=7, seat="PJSIP/8001"), ["unpause"]),
        (_alert("abandon_rate", kind="renewal", rate=0.03), ["stop_campaign", "campaigns"]),
        (_alert("deadline", leads=3, minutes_left=20), ["release", "distribution"]),
        (_alert("link_down", server="pbx1"), ["health"]),
        (_alert("process_silent", owner="host:1"), ["health"]),
        (_alert("outbox_old", messages=4, minutes=12), ["retry_outbox", "outbox"]),
    ],
)
def test_every_alert_type_carries_what_a_supervisor_can_do(
    alert: dict[str, Any], does: list[str]
) -> None:
    actions = alert_actions(alert, {"renewal": "续保"})
    assert [a["do"] for a in actions] == does
    for a in actions:
        assert a["method"] in ("GET", "POST") and a["url"].startswith("/")
    if alert["code"] == "seat_paused":
        assert actions[0]["url"] == "/api/board/seats/7/unpause"
    if alert["code"] == "abandon_rate":
        assert actions[0]["url"] == "/api/campaigns/续保/stop" and actions[0]["confirm"]


def test_an_alert_kind_without_a_campaign_still_links_to_the_campaigns_page() -> None:
    (only,) = with_actions([_alert("abandon_rate", kind="lapsed", rate=0.03)], [])
    assert [a["do"] for a in only["actions"]] == ["campaigns"]


async def _board(site: Site) -> dict[str, Any]:
    resp = await site.client.get("/api/board", headers=site.bearer())
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def _log(site: Site, query: str = "") -> list[dict[str, Any]]:
    resp = await site.client.get(f"/api/board/actions{query}", headers=site.bearer())
    assert resp.status == 200, await resp.text()
    rows: list[dict[str, Any]] = await resp.json()
    return rows


@SQLITE_ONLY
async def test_a_pause_alert_ends_the_pause_from_the_board_and_is_audited(site: Site) -> None:
    lina = site.specialists[1]
    await site.service.dialer.sign_in(lina)
    await site.service.dialer.pause(lina, "培训")

    async def alerted() -> bool:
        alerts = (await _board(site))["figures"].get("alerts", [])
        return any(a["code"] == "seat_paused" for a in alerts)

    await drive_until(site.clock, alerted, step=30.0)
    alert = next(a for a in (await _board(site))["figures"]["alerts"] if a["code"] == "seat_paused")
    (action,) = alert["actions"]
    csrf = await sign_in(site.client, "lina")
    refused = await site.client.post(action["url"], headers={"X-CSRF-Token": csrf})
    assert refused.status == 403
    site.client.session.cookie_jar.clear()
    resp = await site.client.post(action["url"], headers=site.bearer())
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "done"
    assert site.service.engine.seat_of(lina).state.value != "paused"
    again = await site.client.post(action["url"], headers=site.bearer())
    assert again.status == 409, "a seat that is not paused any more"
    log = await _log(site)
    # The second try is refused; if the board had not seen the seat become ready yet, it is
    # refused by the seat's process, and logged as failed.
    assert [(r["action"], r["status"], r["specialist_name"]) for r in log][-1] == (
        "unpause",
        "done",
        "李娜",
    )
    assert {r["status"] for r in log[:-1]} <= {"failed"}
    assert log[-1]["supervisor_name"] == "主管" and log[-1]["target_seat"]


async def test_releasing_node_3_leads_puts_them_back_in_the_pool_but_not_a_called_one(
    site: Site,
) -> None:
    wang, lina = site.specialists
    hours = site.service.engine.hours_for("renewal")
    handed_on = previous_working_day(hours, hours.local_date(site.clock.now(), hours.tz))
    async with site.service.container.sessions() as s:
        for lead_id in site.leads:
            lead = await s.get(Lead, lead_id)
            assert lead is not None
            lead.distributed_on, lead.contact_result = handed_on, None
        await s.commit()
    # 王芳 is on a call with her lead: that one stays hers.
    await site.service.dialer.sign_in(wang, ready=True)

    async def on_a_call() -> bool:
        return any(c["specialist_id"] == wang for c in (await _board(site))["call"].values())

    await drive_until(site.clock, on_a_call)
    resp = await site.client.post("/api/board/deadline/release", headers=site.bearer())
    assert resp.status == 200, await resp.text()
    done = await resp.json()
    assert done == {
        "released": 1,
        "handed_out_on": handed_on.isoformat(),
        "by_specialist": {str(lina): 1},
    }
    async with site.service.container.sessions() as s:
        kept, released = [await s.get(Lead, i) for i in site.leads]
    assert kept is not None and kept.owner_id == wang
    assert released is not None
    assert (released.owner_id, released.status) == (None, LeadStatus.DUE.value)
    log = await _log(site, "?action=release")
    assert [(r["action"], r["specialist_id"]) for r in log] == [("release", lina)]
    assert str(site.leads[1]) in log[0]["message"]


async def test_retrying_the_outbox_makes_waiting_messages_due_now_and_is_audited(
    site: Site,
) -> None:
    now = site.clock.now()
    async with site.service.container.sessions() as s:
        s.add_all(
            OutboxMessage(
                topic="lead.contact_result",
                key=f"lead-{i}",
                payload={},
                created_at=now - timedelta(minutes=30),
                attempts=3,
                next_try_at=now + timedelta(minutes=10),
            )
            for i in range(2)
        )
        await s.commit()
    csrf = await sign_in(site.client, "wangfang")
    assert (
        await site.client.post("/api/board/outbox/retry", headers={"X-CSRF-Token": csrf})
    ).status == 403
    site.client.session.cookie_jar.clear()
    resp = await site.client.post("/api/board/outbox/retry", headers=site.bearer())
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["due_now"] == 2
    async with site.service.container.sessions() as s:
        waits = (await s.scalars(select(OutboxMessage.next_try_at))).all()
        audit = (await s.scalars(select(SupervisorAction))).all()
    assert all(w is None or w <= now for w in waits)
    assert [(a.action, a.message) for a in audit] == [
        ("outbox_retry", "2 CRM messages due again now")
    ]


@SQLITE_ONLY
async def test_the_audit_log_filters_by_action_who_whom_status_and_day(site: Site) -> None:
    boss = (await _log(site)) or None
    assert boss is None
    lina = site.specialists[1]
    await site.service.dialer.sign_in(lina)
    await site.service.dialer.pause(lina, "午休")
    await drive_until(site.clock, lambda: _seat_shown(site, lina))
    assert (
        await site.client.post(f"/api/board/seats/{lina}/unpause", headers=site.bearer())
    ).status == 200
    assert (await site.client.post("/api/board/outbox/retry", headers=site.bearer())).status == 200
    assert (
        await site.client.post("/api/board/calls/att-gone/hangup", headers=site.bearer())
    ).status == 404, "an action on no call is refused before it is logged"
    everything = await _log(site)
    assert [r["action"] for r in everything] == ["outbox_retry", "unpause"]
    assert [r["action"] for r in await _log(site, f"?specialist={lina}")] == ["unpause"]
    assert [r["action"] for r in await _log(site, "?action=outbox_retry")] == ["outbox_retry"]
    assert await _log(site, "?status=failed") == []
    sup = everything[0]["supervisor_id"]
    assert len(await _log(site, f"?supervisor={sup}")) == 2
    today = site.clock.now().date().isoformat()
    assert len(await _log(site, f"?since={today}&until={today}")) == 2
    tomorrow = (site.clock.now().date() + timedelta(days=1)).isoformat()
    assert await _log(site, f"?since={tomorrow}") == []
    bad = await site.client.get("/api/board/actions?action=nope", headers=site.bearer())
    assert bad.status == 400
    csrf = await sign_in(site.client, "lina")
    assert (
        await site.client.get("/api/board/actions", headers={"X-CSRF-Token": csrf})
    ).status == 403
    assert (await site.client.get("/board/audit")).status == 403


async def _seat_shown(site: Site, specialist_id: int) -> bool:
    seat = (await _board(site))["seat"].get(str(specialist_id))
    return seat is not None and seat["state"] == "paused"
