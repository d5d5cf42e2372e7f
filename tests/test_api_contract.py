"""What the API promises about its input and its description: every request is checked
against declared models (a 400 that names the field and the rule, never a 500), the OpenAPI
document describes bodies, parameters and responses, and it and the API page need no token."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.openapi import SUPERVISOR_ONLY
from callcenter.web import create_app
from crm_sync.api import Body, endpoint
from tests.test_api_support import WiredApi, wired_api


@pytest.fixture
async def api(
    db_url: str, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[WiredApi]:
    async with wired_api(db_url, engine, sessions, tmp_path) as wired:
        yield wired


async def _call(
    api: WiredApi, method: str, path: str, who: str | None = "supervisor", **kw: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    headers = {**(api.auth(who) if who else {}), **kw.pop("headers", {})}
    async with aiohttp.ClientSession() as http:
        async with http.request(method, api.url + path, headers=headers, **kw) as resp:
            body = await resp.json() if resp.content_type == "application/json" else None
            await resp.read()
            return resp.status, body, resp


async def test_an_unknown_key_in_a_body_is_refused_by_name(api: WiredApi) -> None:
    # Before: the keys went on to update_campaign(name, **body); "name" crashed it (500).
    status, body, _ = await _call(api, "PATCH", "/api/campaigns/renewal", json={"name": "x"})
    assert status == 400
    assert body["errors"] == [
        {
            "where": "body",
            "field": "name",
            "rule": "extra_forbidden",
            "message": body["errors"][0]["message"],
        }
    ]
    assert "concurrency" in body["errors"][0]["message"]  # says which fields there are
    # Before: ignored, and the sign-in went ahead.
    status, body, _ = await _call(
        api, "POST", "/api/seat/sign-in", "specialist", json={"ready": True, "redy": False}
    )
    assert status == 400 and body["errors"][0]["field"] == "redy"


@pytest.mark.parametrize(
    ("method", "path", "payload", "field"),
    [
        # Beyond PostgreSQL's INTEGER: a DataError (500) there before.
        ("GET", "/api/leads?owner=3000000000", None, "owner"),
        ("GET", "/api/recordings?specialist_id=99999999999", None, "specialist_id"),
        # Beyond BIGINT / SQLite's integer: an OverflowError before.
        ("POST", "/api/distribution", {"seed": 2**70}, "seed"),
        ("PATCH", "/api/campaigns/renewal", {"concurrency": 10**30}, "concurrency"),
        ("GET", "/api/leads?limit=0", None, "limit"),
        ("GET", "/api/recordings?min_duration=1e309", None, "min_duration"),
    ],
)
async def test_numbers_out_of_range_get_a_400_that_names_them(
    api: WiredApi, method: str, path: str, payload: object, field: str
) -> None:
    status, body, _ = await _call(api, method, path, json=payload)
    assert status == 400, body
    assert body["errors"][0]["field"] == field
    assert body["error"].startswith(f"invalid {body['errors'][0]['where']}: {field}: ")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"date": "0001-01-01"}, "date"),  # an OverflowError in the date arithmetic before
        ({"date": "9999-12-31"}, "date"),
    ],
)
async def test_extreme_dates_of_a_distribution_are_refused(
    api: WiredApi, payload: dict[str, str], field: str
) -> None:
    status, body, _ = await _call(api, "POST", "/api/distribution", json=payload)
    assert status == 400
    assert body["errors"][0]["field"] == field and "2000-2100" in body["error"]


async def test_an_extreme_callback_time_is_refused(api: WiredApi) -> None:
    status, body, _ = await _call(
        api,
        "POST",
        f"/api/leads/{api.leads[0]}/disposition",
        "specialist",
        json={"result": "callback", "callback_at": "9999-12-31T23:59:59-23:59"},
    )
    assert status == 400 and body["errors"][0]["field"] == "callback_at"


async def test_pathological_json_is_a_400(api: WiredApi) -> None:
    deep = b'{"seat": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for raw in (deep, b'{"ready": true', b'{"ready": 1e400}', b"\xff\xfe"):
        status, body, _ = await _call(
            api,
            "POST",
            "/api/seat/sign-in",
            "specialist",
            data=raw,
            headers={"Content-Type": "application/json"},
        )
        assert status == 400, (raw[:20], body)
        assert body["error"].startswith("invalid body")


@pytest.mark.parametrize("written", ["+{id}", "{arabic}", " {id}", "{id}.0", "0x{hex}"])
async def test_a_lead_id_is_ascii_digits_only(api: WiredApi, written: str) -> None:
    lead = api.leads[0]
    arabic = "".join(chr(0x0660 + int(d)) for d in str(lead))
    path_id = written.format(id=lead, arabic=arabic, hex=format(lead, "x"))
    # Before: int() read "+1" and "١" as lead 1 and answered it.
    for method, path in (
        ("GET", f"/api/leads/{path_id}"),
        ("GET", f"/api/recordings/{path_id}"),
        ("POST", f"/api/leads/{path_id}/disposition"),
    ):
        status, body, _ = await _call(api, method, path, "specialist", json={"result": "renewed"})
        assert status == 404, (path, body)
        assert body["error"].startswith("not found")
    status, _, _ = await _call(api, "GET", f"/api/leads/{lead}", "specialist")
    assert status == 200


async def test_a_method_not_allowed_names_the_allowed_ones(api: WiredApi) -> None:
    status, body, resp = await _call(api, "DELETE", "/api/seat")
    assert status == 405 and body["status"] == 405
    assert set(resp.headers["Allow"].split(", ")) == {"GET", "HEAD"}
    status, _, resp = await _call(api, "GET", "/api/seat/sign-in")
    assert status == 405 and resp.headers["Allow"] == "POST"


async def test_the_document_and_the_api_page_need_no_token(api: WiredApi) -> None:
    status, doc, _ = await _call(api, "GET", "/api/openapi.json", who=None)
    assert status == 200 and doc["openapi"].startswith("3.1")
    status, _, resp = await _call(api, "GET", "/api/docs", who=None)
    assert status == 200 and resp.content_type == "text/html"
    async with aiohttp.ClientSession() as http:
        async with http.get(api.url + "/api/docs") as page:
            html = await page.text()
        # Served from this service: no CDN, so it works on a desk without internet.
        assert "http://" not in html and "https://" not in html
        assert "/api/openapi.json" in html
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
            assert f"/api/docs/{asset}" in html
            async with http.get(f"{api.url}/api/docs/{asset}") as got:
                assert got.status == 200 and len(await got.read()) > 1000
        async with http.get(f"{api.url}/api/docs/..%2Fsettings.py") as other:
            assert other.status == 404
    # Everything else still needs one.
    status, _, _ = await _call(api, "GET", "/api/me", who=None)
    assert status == 401


async def test_the_document_declares_bodies_parameters_and_responses(api: WiredApi) -> None:
    _, doc, _ = await _call(api, "GET", "/api/openapi.json", who=None)
    schemas = doc["components"]["schemas"]

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    patch = doc["paths"]["/api/campaigns/{name}"]["patch"]
    body = resolve(patch["requestBody"]["content"]["application/json"]["schema"])
    assert body["additionalProperties"] is False
    assert {"mode", "concurrency", "caller_id", "message"} <= set(body["properties"])
    ok = resolve(patch["responses"]["200"]["content"]["application/json"]["schema"])
    assert {"name", "kind", "running", "concurrency"} <= set(ok["required"])
    assert patch["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    leads = doc["paths"]["/api/leads"]["get"]
    params = {p["name"]: p for p in leads["parameters"]}
    assert params["limit"]["in"] == "query" and params["limit"]["schema"]["maximum"] == 500
    assert set(params) == {"status", "kind", "owner", "limit", "offset"}
    one = doc["paths"]["/api/leads/{lead_id}"]["get"]["parameters"][0]
    assert one["in"] == "path" and one["schema"]["maximum"] == 2**31 - 1
    # Every operation says what it answers, and every one but the about page and the
    # description needs a token.
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "200" in op["responses"] or "201" in op["responses"], (method, path)
            assert "400" in op["responses"], (method, path)
            if path != "/about" and not path.startswith(("/api/docs", "/api/openapi.json")):
                assert op["security"] == [{"bearer": []}], (method, path)
                assert "401" in op["responses"], (method, path)


async def test_a_supervisors_operation_refuses_a_specialist_whatever_she_sends(
    api: WiredApi,
) -> None:
    """The role is declared on the route (`endpoint(supervisor=True)`) and checked before
    the input: 403 for a good body or a broken one, never a 400 that tells her the rules.
    The document marks these operations; the fuzzer leaves them out of her run."""
    _, doc, _ = await _call(api, "GET", "/api/openapi.json", who=None)
    marked = [
        (method.upper(), path)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if op.get(SUPERVISOR_ONLY)
    ]
    assert ("POST", "/api/campaigns/{name}/start") in marked and len(marked) >= 25
    assert ("GET", "/api/health") not in marked  # every role may read the links' health
    for method, path in marked:
        op = doc["paths"][path][method.lower()]
        assert (
            "403" in op["responses"] and "Supervisors and maintainers only." in op["description"]
        ), (method, path)
        url = re.sub(r"\{[^}]+\}", "1", path)
        for body in ({}, {"no_such_field": [1e400]}):
            status, problem, _ = await _call(api, method, url, "specialist", json=body)
            assert status == 403, (method, path, status, problem)
            assert problem["error"] == "this needs a supervisor's or maintainer's token"
    # The supervisor gets past the check to the input rules.
    status, _, _ = await _call(api, "PATCH", "/api/campaigns/renewal", json={"name": "x"})
    assert status == 400


async def test_the_crm_link_routes_are_described_for_the_fuzzer(api: WiredApi) -> None:
    _, doc, _ = await _call(api, "GET", "/api/openapi.json", who=None)
    schemas = doc["components"]["schemas"]
    status = doc["paths"]["/api/outbox"]["get"]
    params = {p["name"]: p for p in status["parameters"]}
    assert set(params) == {"state", "topic", "key", "limit"}
    assert params["limit"]["schema"]["maximum"] == 500
    assert {"200", "400", "401", "403"} <= set(status["responses"])
    one = doc["paths"]["/api/outbox/{id}"]["get"]
    assert one["parameters"][0]["schema"]["maximum"] == 2**31 - 1
    assert {"200", "401", "403", "404"} <= set(one["responses"])
    changes = doc["paths"]["/api/crm/changes"]["post"]
    body = changes["requestBody"]["content"]["application/json"]["schema"]
    forms = {f.get("$ref", f.get("type")) for f in schemas[body["$ref"].rsplit("/", 1)[1]]["anyOf"]}
    assert forms == {"#/components/schemas/ChangeIn", "array", "#/components/schemas/ChangeBatch"}
    assert schemas["ChangeIn"]["additionalProperties"] is False
    assert {"200", "400", "401", "403"} <= set(changes["responses"])
    # Unsigned, as the fuzzer sends it: refused before the body is read.
    code, problem, _ = await _call(api, "POST", "/api/crm/changes", json={"changes": []})
    assert code == 401 and problem["error"].startswith("signature refused: ")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"message": "../../../etc/passwd"}, "message"),
        ({"message": "/var/lib/asterisk/sounds/x"}, "message"),
        ({"message": "renewal-reminder&custom/other"}, "message"),
        ({"message": "renewal-reminder.wav"}, "message"),
        ({"caller_id": '"续保" <95500>\r\nAction: Originate'}, "caller_id"),
        ({"caller_id": "Renewals <abc>"}, "caller_id"),
    ],
)
async def test_campaign_settings_that_reach_the_dialplan_are_held_to_their_shape(
    api: WiredApi, change: dict[str, str], field: str
) -> None:
    status, body, _ = await _call(api, "PATCH", "/api/campaigns/reminder", json=change)
    assert status == 400, body
    assert body["errors"][0]["field"] == field


async def test_a_sound_name_and_a_caller_id_of_the_right_shape_are_taken(api: WiredApi) -> None:
    change = {"message": "custom/renewal-reminder", "caller_id": '"续保回访" <95500>'}
    status, body, _ = await _call(api, "PATCH", "/api/campaigns/reminder", json=change)
    assert status == 200, body
    assert body["message"] == "custom/renewal-reminder"
    assert body["caller_id"] == '"续保回访" <95500>'


# -- errors never carry a Python exception's text ---------------------------------------------

routes = web.RouteTableDef()


class Echo(Body):
    word: str


@routes.post("/api/test/buggy")
@endpoint(body=Echo)
async def _buggy(request: web.Request, body: Echo) -> dict[str, str]:
    """A handler with a bug."""
    raise ValueError(f"invalid literal for int() with base 10: {body.word!r}")


@pytest.fixture
async def buggy(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(sessions, [routes]))) as client:
        yield client


async def test_a_stray_value_error_is_a_logged_500_without_its_text(
    buggy: TestClient, sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    from tests.test_web import _user

    _, token = await _user(sessions, "主管", "supervisor")
    with caplog.at_level(logging.ERROR, logger="callcenter.web"):
        resp = await buggy.post(
            "/api/test/buggy", json={"word": "secret"}, headers={"Authorization": f"Bearer {token}"}
        )
    assert resp.status == 500
    text = await resp.text()
    assert "secret" not in text and "invalid literal" not in text
    assert (await resp.json())["error"].startswith("internal error")
    assert "invalid literal for int()" in caplog.text  # the traceback is in the log
