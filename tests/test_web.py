from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.web import create_app
from crm_sync.auth import issue_token, principal, require_own
from crm_sync.models import Specialist
from dialer.exceptions import SeatTaken

routes = web.RouteTableDef()


@routes.get("/api/test/leads/{owner}")
async def _owned(request: web.Request) -> web.Response:
    """A lead owned by a specialist."""
    require_own(principal(request), int(request.match_info["owner"]))
    return web.json_response({"ok": True})


@routes.get("/api/test/bug")
async def _bug(request: web.Request) -> web.Response:
    """A handler with a bug: a lookup that fails."""
    return web.json_response({"x": {}["missing"]})


@routes.get("/api/test/busy")
async def _busy(request: web.Request) -> web.Response:
    """A domain refusal from a service."""
    raise SeatTaken("seat PJSIP/8001 is signed in by someone else; choose another seat")


@pytest.fixture
async def client(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(sessions, [routes]))) as c:
        yield c


async def _user(
    sessions: async_sessionmaker[AsyncSession], name: str, role: str
) -> tuple[int, str]:
    async with sessions() as s:
        user = Specialist(name=name, seat=f"PJSIP/{name}", role=role)
        s.add(user)
        await s.flush()
        token = await issue_token(s, user.id)
        await s.commit()
        return user.id, token


async def test_request_without_token_is_refused_with_a_reason(client: TestClient) -> None:
    resp = await client.get("/api/me")
    assert resp.status == 401
    assert "Bearer" in (await resp.json())["error"]


async def test_unknown_token_is_refused(client: TestClient) -> None:
    resp = await client.get("/api/me", headers={"Authorization": "Bearer cc_nope"})
    assert resp.status == 401


async def test_token_identifies_its_user(client: TestClient, sessions) -> None:
    uid, token = await _user(sessions, "王芳", "specialist")
    resp = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200
    assert await resp.json() == {"id": uid, "name": "王芳", "role": "specialist"}


async def test_specialist_cannot_reach_another_specialists_lead(
    client: TestClient, sessions
) -> None:
    uid, token = await _user(sessions, "8001", "specialist")
    other, _ = await _user(sessions, "8002", "specialist")
    h = {"Authorization": f"Bearer {token}"}
    assert (await client.get(f"/api/test/leads/{uid}", headers=h)).status == 200
    resp = await client.get(f"/api/test/leads/{other}", headers=h)
    assert resp.status == 404


async def test_supervisor_reaches_every_lead(client: TestClient, sessions) -> None:
    _, token = await _user(sessions, "主管", "supervisor")
    other, _ = await _user(sessions, "8002", "specialist")
    resp = await client.get(
        f"/api/test/leads/{other}", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 200


async def test_openapi_document_lists_the_routes(client: TestClient, sessions) -> None:
    _, token = await _user(sessions, "主管", "supervisor")
    resp = await client.get("/api/openapi.json", headers={"Authorization": f"Bearer {token}"})
    doc = await resp.json()
    assert doc["openapi"].startswith("3.")
    assert "/api/test/leads/{owner}" in doc["paths"]
    assert doc["paths"]["/api/me"]["get"]["summary"] == "Who the token belongs to."


async def test_a_token_in_the_query_string_is_refused_outside_audio(
    client: TestClient, sessions
) -> None:
    _, token = await _user(sessions, "主管", "supervisor")
    resp = await client.get(f"/api/me?token={token}")
    assert resp.status == 401


def test_access_log_never_writes_the_query_string(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from aiohttp.test_utils import make_mocked_request

    from callcenter.web import AccessLogger

    logger = logging.getLogger("test.access")
    request = make_mocked_request("GET", "/api/recordings/1/audio?token=cc_secret")
    response = web.Response(status=200, body=b"x")
    with caplog.at_level(logging.INFO, logger="test.access"):
        AccessLogger(logger, "").log(request, response, 0.002)
    assert "/api/recordings/1/audio" in caplog.text
    assert "cc_secret" not in caplog.text


async def test_the_address_sends_a_person_to_the_seat_page(client: TestClient) -> None:
    resp = await client.get("/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/seat"
    assert (await client.head("/", allow_redirects=False)).status == 302


async def test_the_about_page_says_what_this_is_and_links_the_seat_and_api_pages_without_a_token(
    client: TestClient,
) -> None:
    resp = await client.get("/about")
    assert resp.status == 200
    assert resp.content_type == "text/html" and resp.charset == "utf-8"
    page = await resp.text()
    assert page.index("续保外呼中心") < page.index("Renewal desk call center")
    assert 'href="/seat"' in page and 'href="/seat?lang=en"' in page
    assert 'href="/api/docs"' in page and 'href="/api/openapi.json"' in page
    assert "callcenter tokens create" in page
    assert (await client.head("/about")).status == 200
    # Only the page is public: the API behind it still wants a token.
    assert (await client.get("/api/me")).status == 401
    assert (await client.post("/about")).status in (401, 405)


async def test_a_bug_in_a_handler_is_a_500_not_a_bad_request(client: TestClient, sessions) -> None:
    _, token = await _user(sessions, "zhang", "specialist")
    r = await client.get("/api/test/bug", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 500
    assert "internal error" in (await r.json())["error"]


async def test_a_domain_error_is_answered_with_its_status_and_reason(
    client: TestClient, sessions
) -> None:
    _, token = await _user(sessions, "li", "specialist")
    r = await client.get("/api/test/busy", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 409
    assert "choose another seat" in (await r.json())["error"]
