"""Signing in to the web pages (no browser): passwords, lockout, sessions, CSRF, and the
supervisors' login management, through the fully wired service on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from callcenter.pages.accounts import LOCKOUT, MAX_FAILURES, SESSION_LIFETIME
from tests.seat_page_support import (  # noqa: F401
    PASSWORDS,
    Site,
    drive_until,
    sign_in,
    site_fixture,
)


async def test_a_signed_in_browser_is_the_same_principal_as_a_token(site: Site) -> None:
    c = site.client
    await sign_in(c, "wangfang")
    me = await (await c.get("/api/me")).json()
    assert me == {"id": site.specialists[0], "name": "王芳", "role": "specialist"}


async def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(site: Site) -> None:
    c = site.client
    page = await (await c.get("/login")).text()
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    for name in ("wangfang", "nobody"):
        resp = await c.post(
            "/login", data={"username": name, "password": "wrong-one", "csrf_token": token}
        )
        assert resp.status == 401
        assert "用户名或密码错误" in await resp.text()
    assert (await c.get("/api/me")).status == 401


async def test_repeated_wrong_passwords_lock_the_login_until_the_lockout_ends(site: Site) -> None:
    c = site.client
    page = await (await c.get("/login")).text()
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]

    async def attempt(password: str) -> int:
        resp = await c.post(
            "/login",
            data={"username": "lina", "password": password, "csrf_token": token},
            allow_redirects=False,
        )
        return resp.status

    for _ in range(MAX_FAILURES):
        assert await attempt("not-her-password") == 401
    # Locked: even the right password is refused, with the time it opens again.
    resp = await c.post(
        "/login", data={"username": "lina", "password": PASSWORDS["lina"], "csrf_token": token}
    )
    assert resp.status == 401 and "账号已锁定" in await resp.text()
    await site.clock.advance(LOCKOUT.total_seconds() + 1)
    assert await attempt(PASSWORDS["lina"]) == 303


async def test_a_supervisor_reset_lifts_a_lockout_and_ends_old_sessions(site: Site) -> None:
    c = site.client
    for _ in range(MAX_FAILURES):
        await c.post("/login", data={"username": "lina", "password": "x" * 9})
    resp = await c.post(
        "/api/users/lina/password", json={"password": "a-new-password"}, headers=site.bearer()
    )
    assert resp.status == 200, await resp.text()
    await sign_in(c, "lina", "a-new-password")
    assert (await c.get("/api/me")).status == 200


async def test_a_post_without_the_csrf_token_is_refused(site: Site) -> None:
    c = site.client
    csrf = await sign_in(c, "wangfang")
    refused = await c.post("/api/seat/sign-in", json={})
    assert refused.status == 403
    assert "CSRF" in (await refused.json())["error"]
    wrong = await c.post("/api/seat/sign-in", json={}, headers={"X-CSRF-Token": "guess"})
    assert wrong.status == 403
    ok = await c.post("/api/seat/sign-in", json={}, headers={"X-CSRF-Token": csrf})
    assert ok.status == 200, await ok.text()
    # A form post carries the token as a field: signing out without it is refused too.
    assert (await c.post("/logout", data={}, allow_redirects=False)).status == 403
    out = await c.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert out.status == 303
    assert (await c.get("/api/me")).status == 401


async def test_pages_send_a_browser_without_a_session_to_the_sign_in(site: Site) -> None:
    resp = await site.client.get("/seat", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login?next=/seat"
    assert (await site.client.get("/api/seat/day")).status == 401


async def test_the_session_cookie_is_httponly_and_samesite(site: Site) -> None:
    page = await (await site.client.get("/login")).text()
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    resp = await site.client.post(
        "/login",
        data={"username": "wangfang", "password": PASSWORDS["wangfang"], "csrf_token": token},
        allow_redirects=False,
    )
    cookie = next(h for h in resp.headers.getall("Set-Cookie") if h.startswith("cc_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie


async def test_a_session_ends_after_a_working_day(site: Site) -> None:
    await sign_in(site.client, "wangfang")
    signed_in_at = site.clock.now()
    # The expiry reads only the clock's now: jump (`set`) rather than `advance`, which would
    # run twelve hours of the wired service's timers (minutes of the test's time).
    site.clock.set(signed_in_at + SESSION_LIFETIME - timedelta(seconds=1))
    assert (await site.client.get("/api/me")).status == 200
    site.clock.set(signed_in_at + SESSION_LIFETIME + timedelta(seconds=1))
    assert (await site.client.get("/api/me")).status == 401


async def test_a_supervisor_adds_and_disables_logins_and_a_specialist_cannot(site: Site) -> None:
    c = site.client
    csrf = await sign_in(c, "wangfang")
    refused = await c.get("/api/users")
    assert refused.status == 403
    refused = await c.post("/api/users/lina/disable", headers={"X-CSRF-Token": csrf})
    assert refused.status == 403
    users = await (await c.get("/api/users", headers=site.bearer())).json()
    assert {u["username"] for u in users} >= {"wangfang", "lina", "boss"}
    taken = await c.post(
        "/api/users",
        json={"specialist": site.specialists[1], "username": "wangfang", "password": "x" * 10},
        headers=site.bearer(),
    )
    assert taken.status == 400 and "taken" in (await taken.json())["error"]
    short = await c.post(
        "/api/users/lina/password", json={"password": "short"}, headers=site.bearer()
    )
    assert short.status == 400 and "8 characters" in (await short.json())["error"]
    off = await c.post("/api/users/wangfang/disable", headers=site.bearer())
    assert off.status == 200 and (await off.json())["disabled"] is True
    # Her open session ended with it, and she cannot sign in again.
    assert (await c.get("/api/me")).status == 401
    page = await (await c.get("/login")).text()
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    resp = await c.post(
        "/login",
        data={"username": "wangfang", "password": PASSWORDS["wangfang"], "csrf_token": token},
    )
    assert resp.status == 401 and "已停用" in await resp.text()


async def test_a_specialist_hangs_up_the_call_on_her_own_seat_only(site: Site) -> None:
    c = site.client
    csrf = await sign_in(c, "wangfang")
    h = {"X-CSRF-Token": csrf}
    assert (await c.post("/api/seat/sign-in", json={}, headers=h)).status == 200
    nothing = await c.post("/api/seat/hangup", headers=h)
    assert nothing.status == 400
    assert (await nothing.json())["code"] == "no_call"
    assert (await c.post("/api/seat/ready", headers=h)).status == 200

    async def talking() -> bool:
        return (await (await c.get("/api/seat")).json())["state"] == "on_call"

    await drive_until(site.clock, talking)
    pop = await (await c.get("/api/seat/pop")).json()
    assert pop["customer"]["name"] == "张伟明" and len(pop["phones"]) == 2
    done = await c.post("/api/seat/hangup", headers=h)
    assert done.status == 200 and (await done.json())["hung_up"] is True

    async def wrapping() -> bool:
        return (await (await c.get("/api/seat")).json())["state"] == "wrap_up"

    await drive_until(site.clock, wrapping)
