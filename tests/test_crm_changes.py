"""The CRM's changes coming in: applied once by change id, the later by the CRM's clock wins,
audited; signed and authenticated over HTTP; from a JSON-lines file; and a "renewed
elsewhere" stops a call that was about to be dialled. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.bootstrap import Container, build_app
from callcenter.settings import Settings
from crm_sync import signing
from crm_sync.auth import issue_token
from crm_sync.change_parsing import ChangeError, parse_change, parse_changes
from crm_sync.changes import apply_changes
from crm_sync.config import CrmSettings
from crm_sync.models import CrmChange, Lead, OutboxMessage, Phone, Specialist
from crm_sync.sinks import Outgoing, document
from crm_sync.wiring import build_crm_link
from dialer.services import DialerService
from schedules.clock import VirtualClock
from tests.test_dialer_services import FakeLink, _attempts, _count, _engine, until
from tests.test_dialer_support import seed
from tests.test_import_cli import cli, cli_env  # noqa: F401 (a fixture)
from tests.test_outbox_documents import schema_for

NOW = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # 10:00 Shanghai, Monday
INBOUND = "crm-inbound-secret"


def change(cid: str, kind: str, data: dict[str, Any], at: datetime = NOW) -> dict[str, Any]:
    return {"change_id": cid, "kind": kind, "changed_at": at.isoformat(), "data": data}


async def lead_row(sessions: async_sessionmaker[AsyncSession], lead_id: int) -> Lead:
    async with sessions() as s:
        lead = await s.get(Lead, lead_id)
        assert lead is not None
        return lead


async def test_renewed_elsewhere_stops_a_call_that_was_about_to_be_dialled(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        specs, leads = await seed(
            s, specialists=2, leads=[("renewal", "0", 0), ("renewal", "0", 1)]
        )
    clock = VirtualClock(NOW)
    link = FakeLink()
    engine = _engine(sessions, clock, link)
    service = DialerService(engine)
    await engine.start()
    try:
        # One new call every 10 s on the trunk: the second is claimed, then waits its turn.
        await service.update_campaign("renewal", trunk_max_cps=0.1)
        await service.start_campaign("renewal")
        await service.sign_in(specs[0], ready=True)
        await service.sign_in(specs[1], ready=True)

        async def both_claimed() -> bool:
            return len(await _attempts(sessions)) == 2

        await until(both_claimed)
        await until(lambda: _count(link, 1))
        sent = {str(h.get("ActionID") or h.get("ChannelId")) for _, h in link.sent}
        waiting = [a for a in await _attempts(sessions) if a.attempt_id not in sent]
        assert len(waiting) == 1
        policy = f"P{leads.index(waiting[0].lead_id):06d}"
        [result] = await apply_changes(
            sessions,
            [parse_change(change("c-1", "policy.renewed_elsewhere", {"policy_number": policy}))],
            clock.now(),
            "http",
        )
        assert result.outcome == "applied" and result.lead_ids == (waiting[0].lead_id,)
        await clock.advance(11)

        async def settled() -> bool:
            return all(
                a.ended_at is not None
                for a in await _attempts(sessions)
                if a.attempt_id not in sent
            )

        await until(settled)
    finally:
        await clock.advance(20)  # a send still waiting for the trunk lets the engine stop
        await engine.stop()
    assert len(link.sent) == 1  # the closed lead's call never reached Asterisk
    [unsent] = [a for a in await _attempts(sessions) if a.outcome == "not_sent"]
    assert "lead closed" in (unsent.reason or "")
    lead = await lead_row(sessions, unsent.lead_id)
    assert (lead.status, lead.contact_result) == ("closed", "renewed_elsewhere")


async def test_a_change_sent_twice_is_applied_once_and_audited(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        _, leads = await seed(s, specialists=1, leads=[("renewal", "0", 0)])
    c = parse_change(change("c-9", "policy.renewed_elsewhere", {"policy_number": "P000000"}))
    first, again = await apply_changes(sessions, [c, c], NOW, "http")
    assert (first.outcome, again.outcome) == ("applied", "duplicate")
    async with sessions() as s:
        audit = (await s.scalars(select(CrmChange))).all()
        messages = (await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    topics = [m.topic for m in messages]
    for m in messages:  # what the CRM's change sends back out matches the published schemas
        doc = document(Outgoing(m.id, m.topic, m.key, m.payload, m.created_at))
        jsonschema.validate(json.loads(json.dumps(doc)), schema_for(m.topic))
    assert [(a.change_id, a.outcome, a.subject) for a in audit] == [
        ("c-9", "applied", "policy:P000000")
    ]
    assert topics == ["lead.contact_result", "lead.status"]  # once, not twice
    lead = await lead_row(sessions, leads[0])
    assert lead.status == "closed" and "c-9" in (lead.closed_reason or "")


async def test_the_same_change_sent_twice_at_once_is_applied_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        await seed(s, specialists=1, leads=[("renewal", "0", 0)])
    c = parse_change(change("c-10", "policy.renewed_elsewhere", {"policy_number": "P000000"}))
    both = await asyncio.gather(
        apply_changes(sessions, [c], NOW, "http"), apply_changes(sessions, [c], NOW, "http")
    )
    assert sorted(r.outcome for [r] in both) == ["applied", "duplicate"]
    async with sessions() as s:
        assert len((await s.scalars(select(CrmChange))).all()) == 1
        assert len((await s.scalars(select(OutboxMessage))).all()) == 2  # one close, not two


async def test_a_corrected_number_arriving_late_loses_to_the_later_correction(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        _, leads = await seed(s, specialists=1, leads=[("renewal", "0", 0)])
    newer = change(
        "c-2", "phone.corrected", {"policy_number": "P000000", "phone": "13912345678"}, NOW
    )
    older = change(
        "c-1",
        "phone.corrected",
        {"policy_number": "P000000", "phone": "13987654321"},
        NOW - timedelta(hours=1),
    )
    results = await apply_changes(sessions, parse_changes([newer, older]), NOW, "file")
    assert [r.outcome for r in results] == ["applied", "stale"]
    assert "c-2" in results[1].detail
    async with sessions() as s:
        lead = await s.get(Lead, leads[0])
        assert lead is not None
        phone = await s.get(Phone, lead.phone_id)
    assert phone is not None and phone.e164 == "+8613912345678"


async def test_a_corrected_number_resets_accuracy_and_reopens_an_unreachable_lead(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        _, leads = await seed(s, specialists=1, leads=[("renewal", "0", 0)])
        lead = await s.get(Lead, leads[0])
        assert lead is not None
        old_phone = await s.get(Phone, lead.phone_id)
        assert old_phone is not None
        old_phone.accuracy = "inaccurate"
        lead.status, lead.contact_result, lead.closed_reason = "closed", "unreachable", "3 calls"
        await s.commit()
    c = change("c-3", "phone.corrected", {"policy_number": "P000000", "phone": "13912345678"})
    [result] = await apply_changes(sessions, [parse_change(c)], NOW, "http")
    assert result.outcome == "applied"
    async with sessions() as s:
        lead = await s.get(Lead, leads[0])
        assert lead is not None
        phone = await s.get(Phone, lead.phone_id)
        assert phone is not None
    assert (lead.status, lead.contact_result, lead.next_attempt_at) == ("assigned", None, NOW)
    assert (phone.e164, phone.accuracy, phone.role) == ("+8613912345678", "unknown", "corrected")


async def test_do_not_call_and_leave_change_what_the_dialer_does_next(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        specs, leads = await seed(
            s, specialists=2, leads=[("renewal", "0", 0), ("renewal", "1", 0), ("renewal", "2", 1)]
        )
    [dnc, leave] = await apply_changes(
        sessions,
        parse_changes(
            {
                "changes": [
                    change("c-4", "customer.do_not_call", {"phone": "+8613900000022"}),
                    change(
                        "c-5", "specialist.leave", {"specialist_id": specs[0], "on_leave": True}
                    ),
                ]
            }
        ),
        NOW,
        "http",
    )
    assert dnc.outcome == "applied" and leave.lead_ids == tuple(leads[:2])
    async with sessions() as s:
        rows = {r.id: r for r in (await s.scalars(select(Lead))).all()}
        barred = await s.scalar(select(Phone).where(Phone.e164 == "+8613900000022"))
        spec = await s.get(Specialist, specs[0])
    assert barred is not None and barred.do_not_call
    assert spec is not None and spec.on_leave
    for lead_id in leads[:2]:  # back to the next distribution
        assert (rows[lead_id].status, rows[lead_id].owner_id) == ("due", None)
    assert rows[leads[2]].owner_id == specs[1]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"kind": "policy.renewed_elsewhere"}, "change_id"),
        (change("x", "policy.sold", {}), "is not one of"),
        ({**change("x", "phone.corrected", {}), "changed_at": "2026-01-05T10:00"}, "offset"),
        (
            change("x", "phone.corrected", {"policy_number": "P1", "phone": "12"}),
            "cannot be dialled",
        ),
        (change("x", "specialist.leave", {"on_leave": True}), "specialist_id"),
    ],
)
def test_a_change_that_cannot_be_read_says_which_field(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ChangeError, match=message):
        parse_changes([change("ok", "customer.do_not_call", {"phone": "13912345678"}), bad])


@pytest.fixture
async def api(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> Any:
    clock = VirtualClock(NOW)
    async with sessions.begin() as s:
        boss = Specialist(name="CRM", seat="PJSIP/8999", role="maintainer")
        spec = Specialist(name="专员", seat="PJSIP/8100")
        s.add_all([boss, spec])
        await s.flush()
        tokens = {"crm": await issue_token(s, boss.id), "spec": await issue_token(s, spec.id)}
    crm = CrmSettings(inbound_secrets=[SecretStr(INBOUND)])
    settings = Settings(data_dir=tmp_path, crm=crm)
    container = Container(settings=settings, clock=clock, engine=engine, sessions=sessions)
    link = build_crm_link(crm, engine, sessions, clock)
    link.install(container)
    container.cleanup_contexts.remove(link.cleanup_ctx)  # routes only: no relay here
    async with TestClient(TestServer(build_app(container, owns_engine=False))) as client:
        yield client, tokens, clock


def signed(body: bytes, t: datetime, token: str, secret: str = INBOUND) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        signing.HEADER: signing.sign(body, [secret], int(t.timestamp())),
        "Content-Type": "application/json",
    }


async def test_the_inbound_endpoint_takes_a_signed_change_and_refuses_forged_and_replayed_ones(
    api: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client, tokens, _clock = api
    async with sessions() as s:
        await seed(s, specialists=0, leads=[("renewal", "0", None)])
    body = json.dumps(
        change("c-7", "policy.renewed_elsewhere", {"policy_number": "P000000"})
    ).encode()
    forged = await client.post(
        "/api/crm/changes", data=body, headers=signed(body, NOW, tokens["crm"], "guess")
    )
    assert forged.status == 401 and "does not match" in (await forged.json())["error"]
    replay = await client.post(
        "/api/crm/changes",
        data=body,
        headers=signed(body, NOW - timedelta(minutes=6), tokens["crm"]),
    )
    assert replay.status == 401 and "window" in (await replay.json())["error"]
    spec = await client.post(
        "/api/crm/changes", data=body, headers=signed(body, NOW, tokens["spec"])
    )
    assert spec.status == 403
    unsigned = await client.post(
        "/api/crm/changes", data=body, headers={"Authorization": f"Bearer {tokens['crm']}"}
    )
    assert unsigned.status == 401
    async with sessions() as s:
        assert (await s.scalars(select(CrmChange))).all() == []
    ok = await client.post("/api/crm/changes", data=body, headers=signed(body, NOW, tokens["crm"]))
    assert ok.status == 200, await ok.text()
    assert (await ok.json())["results"][0]["outcome"] == "applied"
    bad = json.dumps({"changes": [{"change_id": "c-8"}]}).encode()
    refused = await client.post(
        "/api/crm/changes", data=bad, headers=signed(bad, NOW, tokens["crm"])
    )
    assert refused.status == 400
    missing = {e["field"] for e in (await refused.json())["errors"] if e["rule"] == "missing"}
    assert missing == {"0.kind", "0.changed_at", "0.data"}
    async with sessions() as s:
        assert [c.change_id for c in (await s.scalars(select(CrmChange))).all()] == ["c-7"]


async def test_a_signed_change_with_an_unknown_key_is_refused_naming_it(
    api: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client, tokens, _clock = api
    async with sessions() as s:
        _, leads = await seed(s, specialists=0, leads=[("renewal", "0", None)])
    ok = change("c-20", "policy.renewed_elsewhere", {"policy_number": "P000000"})
    for sent, field in [
        ([ok, {**ok, "change_id": "c-21", "priority": "high"}], "1.priority"),
        (
            {"changes": [{**ok, "data": {"policy_number": "P000000", "colour": "red"}}]},
            "0.data.colour",
        ),
    ]:
        raw = json.dumps(sent).encode()
        resp = await client.post(
            "/api/crm/changes", data=raw, headers=signed(raw, NOW, tokens["crm"])
        )
        assert resp.status == 400
        body = await resp.json()
        assert body["errors"] == [
            {
                "where": "body",
                "field": field,
                "rule": "extra_forbidden",
                "message": body["errors"][0]["message"],
            }
        ]
        assert f"invalid body: {field}: unknown field; the fields are: " in body["error"]
    async with sessions() as s:
        assert (await s.scalars(select(CrmChange))).all() == []
    assert (await lead_row(sessions, leads[0])).status == "due"


async def test_a_signed_change_the_service_cannot_apply_is_refused_with_nothing_applied(
    api: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client, tokens, _clock = api
    raw = json.dumps(
        [
            change("c-30", "customer.do_not_call", {"phone": "13912345678"}),
            change("c-31", "customer.do_not_call", {"phone": "12"}),
        ]
    ).encode()
    resp = await client.post("/api/crm/changes", data=raw, headers=signed(raw, NOW, tokens["crm"]))
    assert resp.status == 400
    body = await resp.json()
    [problem] = body["errors"]
    assert (problem["field"], problem["rule"]) == ("1", "change")
    assert "cannot be dialled" in body["error"] and "nothing was applied" in body["error"]
    async with sessions() as s:
        assert (await s.scalars(select(CrmChange))).all() == []


@pytest.mark.usefixtures("cli_env")
async def test_the_cli_applies_a_json_lines_file_and_refuses_a_bad_line_whole(
    sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with sessions() as s:
        _, leads = await seed(s, specialists=0, leads=[("renewal", "0", None)] * 2)
    good = [
        change("f-1", "policy.renewed_elsewhere", {"policy_number": "P000000"}),
        change("f-2", "customer.do_not_call", {"phone": "13900000010"}),
    ]
    bad_file = tmp_path / "bad.jsonl"
    bad_file.write_text(json.dumps(good[0]) + "\n{not json\n", encoding="utf-8")
    assert await cli("crm-changes", str(bad_file)) == 2
    assert "bad.jsonl:2: not JSON" in capsys.readouterr().err
    assert (await lead_row(sessions, leads[0])).status == "due"
    async with sessions() as s:
        assert (await s.scalars(select(CrmChange))).all() == []
    path = tmp_path / "changes.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in good) + "\n", encoding="utf-8")
    assert await cli("crm-changes", str(path), "--json") == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["change_id"], r["outcome"]) for r in out] == [("f-1", "applied"), ("f-2", "applied")]
    assert (await lead_row(sessions, leads[0])).status == "closed"
