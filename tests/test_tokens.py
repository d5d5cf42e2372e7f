"""API tokens: listed without their secrets, revoked, given an expiry, from the command line
and the supervisors' API; a refused token says why and what to do. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.web import create_app
from crm_sync import http as crm_http
from crm_sync.auth import ApiToken, TokenRefused, authenticate, issue_token, parse_expiry
from crm_sync.models import Specialist
from schedules.clock import VirtualClock
from tests.test_import_cli import cli, cli_env  # noqa: F401  (the shared CLI fixture)

T0 = datetime(2026, 3, 11, 1, 0, tzinfo=UTC)


@dataclass
class Api:
    client: TestClient
    clock: VirtualClock
    ids: dict[str, int]
    tokens: dict[str, str]

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
async def api(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Api]:
    clock = VirtualClock(T0)
    ids: dict[str, int] = {}
    tokens: dict[str, str] = {}
    async with sessions() as s:
        for name, role in (("a", "specialist"), ("boss", "supervisor"), ("ops", "maintainer")):
            user = Specialist(name=name, seat=f"PJSIP/{name}", role=role)
            s.add(user)
            await s.flush()
            ids[name] = user.id
            tokens[name] = await issue_token(s, user.id, "test", now=T0)
        await s.commit()
    app = create_app(sessions, [crm_http.routes], clock)
    app[crm_http.CRM_SESSIONS] = sessions
    async with TestClient(TestServer(app)) as client:
        yield Api(client, clock, ids, tokens)


async def test_a_supervisor_lists_tokens_and_never_sees_a_secret(api: Api) -> None:
    resp = await api.client.get("/api/tokens", headers=api.as_("boss"))
    assert resp.status == 200
    body = await resp.text()
    for secret in api.tokens.values():
        assert secret not in body
    items = (await resp.json())["items"]
    assert sorted(t["specialist"] for t in items) == ["a", "boss", "ops"]
    mine = next(t for t in items if t["specialist"] == "a")
    assert api.tokens["a"].startswith(mine["prefix"]) and len(mine["prefix"]) == 11
    assert mine["state"] == "active" and "token" not in mine

    one = await api.client.get(
        "/api/tokens", params={"specialist_id": str(api.ids["a"])}, headers=api.as_("boss")
    )
    assert [t["specialist"] for t in (await one.json())["items"]] == ["a"]


async def test_a_token_with_an_expiry_works_until_then_and_then_says_what_to_do(
    api: Api,
) -> None:
    resp = await api.client.post(
        "/api/tokens",
        json={"specialist_id": api.ids["a"], "label": "seat page", "expires_in_days": 1},
        headers=api.as_("boss"),
    )
    assert resp.status == 201, await resp.text()
    made = await resp.json()
    assert made["token"].startswith(made["prefix"]) and made["state"] == "active"
    assert made["expires_at"] == (T0 + timedelta(days=1)).isoformat()
    theirs = {"Authorization": f"Bearer {made['token']}"}
    assert (await api.client.get("/api/me", headers=theirs)).status == 200

    await api.clock.advance(timedelta(days=1).total_seconds())
    refused = await api.client.get("/api/me", headers=theirs)
    assert refused.status == 401
    reason = (await refused.json())["error"]
    assert "expired on 2026-03-12 01:00 UTC" in reason and "ask a supervisor" in reason
    listed = await api.client.get("/api/tokens", params={"all": "true"}, headers=api.as_("boss"))
    states = {t["id"]: t["state"] for t in (await listed.json())["items"]}
    assert states[made["id"]] == "expired"
    active = await api.client.get("/api/tokens", headers=api.as_("boss"))
    assert made["id"] not in {t["id"] for t in (await active.json())["items"]}


async def test_a_revoked_token_is_refused_at_once_with_a_reason(api: Api) -> None:
    listed = await (await api.client.get("/api/tokens", headers=api.as_("boss"))).json()
    token_id = next(t["id"] for t in listed["items"] if t["specialist"] == "a")
    assert (await api.client.get("/api/me", headers=api.as_("a"))).status == 200

    resp = await api.client.post(f"/api/tokens/{token_id}/revoke", headers=api.as_("boss"))
    assert resp.status == 200
    assert (await resp.json())["state"] == "revoked"

    refused = await api.client.get("/api/me", headers=api.as_("a"))
    assert refused.status == 401
    reason = (await refused.json())["error"]
    assert "revoked on 2026-03-11 01:00 UTC" in reason and "tokens create" in reason
    again = await api.client.post(f"/api/tokens/{token_id}/revoke", headers=api.as_("boss"))
    assert (await again.json())["revoked_at"] == (await resp.json())["revoked_at"]
    missing = await api.client.post("/api/tokens/999999/revoke", headers=api.as_("boss"))
    assert missing.status == 404


async def test_specialists_may_not_list_create_or_revoke_tokens(api: Api) -> None:
    a = api.as_("a")
    assert (await api.client.get("/api/tokens", headers=a)).status == 403
    made = await api.client.post("/api/tokens", json={"specialist_id": api.ids["a"]}, headers=a)
    assert made.status == 403
    assert (await api.client.post("/api/tokens/1/revoke", headers=a)).status == 403
    assert (await api.client.get("/api/tokens")).status == 401


async def test_a_supervisor_cannot_make_or_revoke_a_maintainers_token(api: Api) -> None:
    boss = api.as_("boss")
    made = await api.client.post(
        "/api/tokens", json={"specialist_id": api.ids["ops"]}, headers=boss
    )
    assert made.status == 403 and "maintainer" in (await made.json())["error"]
    by_ops = await api.client.post(
        "/api/tokens", json={"specialist_id": api.ids["ops"]}, headers=api.as_("ops")
    )
    assert by_ops.status == 201


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"specialist_id": "x"}, "specialist_id"),
        ({"specialist_id": 1, "owner": 2}, "owner: unknown field"),
        ({"specialist_id": 1, "expires_at": "2027-01-01T00:00"}, "expires_at"),
        ({"specialist_id": 1, "expires_in_days": 0}, "expires_in_days"),
        ({"specialist_id": 10**12}, "specialist_id"),
        ({"specialist_id": 1, "label": "x" * 101}, "label"),
        (
            {"specialist_id": 1, "expires_in_days": 2, "expires_at": "2027-01-01T00:00Z"},
            "not both",
        ),
        ([1], "body"),
    ],
)
async def test_a_bad_token_request_gets_a_reason_and_creates_nothing(
    api: Api, sessions: async_sessionmaker[AsyncSession], body: object, reason: str
) -> None:
    resp = await api.client.post("/api/tokens", json=body, headers=api.as_("boss"))
    assert resp.status == 400
    assert reason in (await resp.json())["error"]
    async with sessions() as s:
        assert len((await s.scalars(select(ApiToken.id))).all()) == 3


async def test_an_expiry_in_the_past_is_refused(api: Api) -> None:
    resp = await api.client.post(
        "/api/tokens",
        json={"specialist_id": api.ids["a"], "expires_at": "2026-03-10T09:00:00+08:00"},
        headers=api.as_("boss"),
    )
    assert resp.status == 400 and "future" in (await resp.json())["error"]


# ------------------------------------------------------------------------- the command line


@pytest.mark.usefixtures("cli_env")
async def test_tokens_are_created_with_an_expiry_listed_without_secrets_and_revoked(
    engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO specialists (name, seat, role, active, on_leave, created_at) "
                "VALUES ('王芳', 'PJSIP/8001', 'specialist', true, false, CURRENT_TIMESTAMP)"
            )
        )
    assert await cli("tokens", "create", "王芳", "--label", "seat", "--expires", "30d") == 0
    out = capsys.readouterr()
    secret = out.out.strip()
    assert secret.startswith("cc_") and len(secret) > 40
    assert "shown this once" in out.err and "tokens revoke" in out.err

    assert await cli("tokens", "list") == 0
    listing = capsys.readouterr().out
    assert secret not in listing and secret[:11] in listing
    assert "王芳" in listing and "active, expires" in listing and "[seat]" in listing

    async with engine.connect() as conn:
        stored = (await conn.execute(text("SELECT * FROM api_tokens"))).mappings().one()
    assert all(secret not in str(v) for v in stored.values())
    async with AsyncSession(engine) as s:
        row = (await s.scalars(select(ApiToken))).one()
    assert timedelta(days=29) < row.expires_at - datetime.now(UTC) <= timedelta(days=30)

    assert await cli("tokens", "revoke", str(stored["id"])) == 0
    assert "revoked" in capsys.readouterr().out
    async with AsyncSession(engine) as s:
        with pytest.raises(TokenRefused, match="revoked"):
            await authenticate(s, secret, datetime.now(UTC))
    assert await cli("tokens", "list") == 0
    assert "no tokens" in capsys.readouterr().out
    assert await cli("tokens", "list", "--all") == 0
    assert "revoked" in capsys.readouterr().out


@pytest.mark.usefixtures("cli_env")
async def test_bad_token_commands_exit_2_with_a_reason(
    engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("tokens", "revoke", "424242") == 2
    assert "no token #424242" in capsys.readouterr().err
    assert await cli("tokens", "create", "nobody") == 2
    assert "specialists list" in capsys.readouterr().err
    assert await cli("tokens", "create", "nobody", "--expires", "soon") == 2
    assert "30d" in capsys.readouterr().err


def test_an_expiry_is_a_duration_a_whole_day_or_a_zoned_time() -> None:
    now = datetime(2026, 3, 11, 1, 0, tzinfo=UTC)
    assert parse_expiry("12h", now, "Asia/Shanghai") == now + timedelta(hours=12)
    assert parse_expiry("2w", now, "Asia/Shanghai") == now + timedelta(weeks=2)
    # Through 31 January in Beijing: until 1 February 00:00 +08:00.
    assert parse_expiry("2027-01-31", now, "Asia/Shanghai") == datetime(
        2027, 1, 31, 16, 0, tzinfo=UTC
    )
    assert parse_expiry("2027-01-31T18:00+08:00", now, "Asia/Shanghai") == datetime(
        2027, 1, 31, 10, 0, tzinfo=UTC
    )
    for bad in ("0d", "2027-01-31T18:00", "tomorrow", ""):
        with pytest.raises(ValueError):
            parse_expiry(bad, now, "Asia/Shanghai")
