"""The pure parts of the CRM link: documents and their published schemas, signatures (both
ways), backoff with jitter, Retry-After, and what each HTTP answer means."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync import signing
from crm_sync.models import Lead, OutboxMessage
from crm_sync.outbox import status_message
from crm_sync.relay_verdicts import backoff, retry_delay
from crm_sync.sinks import (
    SCHEMAS_DIR,
    TOPIC_VERSIONS,
    Outgoing,
    VerdictKind,
    WebhookSink,
    classify_response,
    document,
    document_bytes,
    parse_retry_after,
)
from dialer import queues
from dialer.models import CallAttempt
from dialer.results import Finished, record_result
from schedules.clock import SystemClock
from schedules.retry import RetryConfig
from schedules.windows import CallingHours
from tests.test_dialer_support import seed

NOW = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # 10:00 Shanghai, a Monday
DOCS = Path(__file__).parents[1] / "docs" / "crm.md"


def schema_for(topic: str) -> dict[str, object]:
    path = SCHEMAS_DIR / f"{topic}.v{TOPIC_VERSIONS[topic]}.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def test_every_topic_has_a_published_schema_listed_in_the_docs() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for topic, version in TOPIC_VERSIONS.items():
        schema = schema_for(topic)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert f"crm_sync/schemas/{topic}.v{version}.json" in text
    files = {p.name for p in SCHEMAS_DIR.glob("*.json")}
    assert files == {f"{t}.v{v}.json" for t, v in TOPIC_VERSIONS.items()}


async def test_what_the_dialer_writes_matches_the_published_schemas(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Real finished calls through `record_result` and a status change through
    `status_message`: every message they write validates against its topic's schema."""
    async with sessions() as s:
        _, leads = await seed(s, specialists=1, leads=[("renewal", "0", 0)])
        lead = await s.get(Lead, leads[0])
        assert lead is not None
        for n in range(3):
            attempt = CallAttempt(
                attempt_id=queues.new_attempt_id(),
                lead_id=lead.id,
                phone_id=lead.phone_id,
                number="+8613900000000",
                mode="automatic",
                campaign_kind="renewal",
                ami_server="pbx1",
                created_at=NOW + timedelta(hours=n),
            )
            s.add(attempt)
            await s.flush()
            await record_result(
                s,
                attempt,
                Finished(attempt.attempt_id, "no_answer", ring_seconds=30.0),
                now=NOW + timedelta(hours=n, minutes=1),
                hours_for=lambda _kind: CallingHours(),
                retry=RetryConfig(),
            )
        old = lead.status
        lead.status = "closed"
        status_message(s, lead, old, "renewed elsewhere", NOW)
        await s.commit()
        messages = (await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    topics = {m.topic for m in messages}
    assert {"attempt.result", "lead.contact_result", "lead.status"} <= topics
    for m in messages:
        doc = json.loads(document_bytes(Outgoing(m.id, m.topic, m.key, m.payload, m.created_at)))
        jsonschema.validate(doc, schema_for(m.topic), format_checker=jsonschema.FormatChecker())


def test_a_document_that_breaks_its_schema_is_caught() -> None:
    doc = document(Outgoing(1, "phone.accuracy", "lead:1", {"phone_id": 3}, NOW))
    with pytest.raises(jsonschema.ValidationError, match="accuracy"):
        jsonschema.validate(doc, schema_for("phone.accuracy"))


def test_a_signature_carries_one_v1_per_secret_and_verifies_with_either() -> None:
    body = b'{"id":1}'
    header = signing.sign(body, ["new", "old"], 1_767_000_000)
    assert header.startswith("t=1767000000,v1=") and header.count("v1=") == 2
    for secret in ("new", "old"):
        assert signing.verify(header, body, [secret], 1_767_000_010, 300) == 1_767_000_000


@pytest.mark.parametrize(
    ("header", "body", "now", "message"),
    [
        (None, b"{}", 1000, "missing"),
        ("v1=abc", b"{}", 1000, "needs t="),
        ("t=1000,v1=" + "0" * 64, b"{}", 1000, "does not match"),
        (signing.sign(b"{}", ["s"], 1000), b'{"x":1}', 1000, "does not match"),  # changed body
        (signing.sign(b"{}", ["s"], 1000), b"{}", 1000 + 301, "window"),  # replayed later
        (signing.sign(b"{}", ["other"], 1000), b"{}", 1000, "does not match"),  # forged
    ],
)
def test_a_forged_changed_or_replayed_request_is_refused(
    header: str | None, body: bytes, now: int, message: str
) -> None:
    with pytest.raises(signing.SignatureError, match=message):
        signing.verify(header, body, ["s"], now, 300)


def test_backoff_doubles_to_its_ceiling_with_half_of_it_jittered() -> None:
    assert [backoff(n, 1, 60, 0.0) for n in (1, 2, 3, 4)] == [0.5, 1, 2, 4]
    assert [backoff(n, 1, 60, 0.999999) for n in (1, 2)] == pytest.approx([1, 2])
    assert backoff(20, 1, 60, 0.0) == 30 and backoff(20, 1, 60, 0.999999) == pytest.approx(60)


def test_retry_after_wins_when_longer_and_is_capped_at_a_day() -> None:
    assert retry_delay(1, 1, 60, 0.0, 120) == 120
    assert retry_delay(5, 1, 60, 0.0, 1) == 8
    assert retry_delay(1, 1, 60, 0.0, 10**9) == 86_400


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    assert parse_retry_after("30", NOW) == 30
    assert parse_retry_after(format_datetime(NOW + timedelta(minutes=2), usegmt=True), NOW) == 120
    assert parse_retry_after(format_datetime(NOW - timedelta(minutes=2), usegmt=True), NOW) == 0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, VerdictKind.DELIVERED),
        (204, VerdictKind.DELIVERED),
        (408, VerdictKind.RETRY),
        (429, VerdictKind.RETRY),
        (500, VerdictKind.RETRY),
        (503, VerdictKind.RETRY),
        (400, VerdictKind.PARK),
        (401, VerdictKind.PARK),
        (404, VerdictKind.PARK),
        (422, VerdictKind.PARK),
        (301, VerdictKind.PARK),
    ],
)
def test_each_answer_means_delivered_retry_or_park(status: int, kind: VerdictKind) -> None:
    verdict = classify_response(status, "x" * 2000, 7.0)
    assert verdict.kind == kind
    assert len(verdict.detail) <= 520


async def test_the_ten_line_receiver_in_the_docs_accepts_our_requests_and_refuses_forgeries(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = DOCS.read_text(encoding="utf-8")
    code = text.split("### A receiver that checks the signature", 1)[1]
    code = code.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 16
    apps: list[web.Application] = []
    exec(code.replace("web.run_app(app, port=9000)", "APPS.append(app)"), {"APPS": apps})
    async with TestServer(apps[0]) as server:
        url = str(server.make_url("/hook"))
        good = WebhookSink(url, [SecretStr("old"), SecretStr("the shared secret")], SystemClock())
        forged = WebhookSink(url, [SecretStr("guessed")], SystemClock())
        msg = Outgoing(7, "lead.status", "lead:1", {"lead_id": 1, "from": "a", "to": "b"}, NOW)
        try:
            assert (await good.deliver(msg)).kind == VerdictKind.DELIVERED
            assert (await good.deliver(msg)).kind == VerdictKind.DELIVERED  # duplicate
            # The spreadsheet sink's files go through the same ten lines.
            sheet = tmp_path / "联系结果_2026-01-05.csv"
            sheet.write_bytes("保单号\r\n".encode("gb18030"))
            assert (await good.upload(sheet, "export:x")).kind == VerdictKind.DELIVERED
            refused = await forged.deliver(msg)
        finally:
            await good.close()
            await forged.close()
    assert refused.kind == VerdictKind.PARK and refused.status == 401
    assert capsys.readouterr().out.splitlines() == ["lead.status", "export.file"]  # once each
