"""Where the outbox relay delivers: the HTTP webhook, or nowhere ("none").

A sink turns one outbox message into a `Verdict`: delivered, retry later (with the
receiver's `Retry-After` if it gave one) or park (a dead letter: the receiver refused it for
good and a blind retry would only be refused again). The relay does the bookkeeping.

Documents are versioned JSON, one schema per topic, published in `crm_sync/schemas/` (see
docs/crm.md): `{"schema", "id", "topic", "version", "key", "created_at", "data"}`, where
`id` is the outbox id, also sent as `Idempotency-Key` so that the receiver drops duplicates.
"""

from __future__ import annotations

import asyncio
import email.utils
import enum
import json
import logging
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
from pydantic import SecretStr

from crm_sync import signing
from schedules.clock import Clock

log = logging.getLogger(__name__)

SCHEMAS_DIR = Path(__file__).with_name("schemas")
# The document version of each topic; a breaking change to a topic's payload bumps it and
# adds `<topic>.v<N>.json` beside the old schema.
TOPIC_VERSIONS: dict[str, int] = {
    "attempt.result": 1,
    "lead.contact_result": 1,
    "lead.status": 1,
    "lead.callback": 1,
    "phone.accuracy": 1,
    "recording.stored": 1,
    "recording.deleted": 1,
    "sale.record": 1,
}
ANSWER_KEEP = 500  # characters of a receiver's answer kept in the history
RETRIED_STATUSES = frozenset({408, 425, 429})
FILE_TOPIC = "export.file"
FILE_TYPES = {
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".csv": "text/csv",
}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One outbox message as the relay hands it to a sink."""

    id: int
    topic: str
    key: str
    payload: dict[str, Any]
    created_at: datetime


class VerdictKind(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    PARK = "park"


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    detail: str = ""
    status: int | None = None
    retry_after: float | None = None  # seconds the receiver asked us to wait
    sink: str | None = None  # who decided, when not the relay's own sink (see TopicRouter)


class Sink(Protocol):
    name: str

    async def deliver(self, message: Outgoing) -> Verdict: ...

    async def close(self) -> None: ...


def schema_name(topic: str) -> str:
    return f"callcenter.{topic}/v{TOPIC_VERSIONS.get(topic, 1)}"


def document(message: Outgoing) -> dict[str, Any]:
    return {
        "schema": schema_name(message.topic),
        "id": message.id,
        "topic": message.topic,
        "version": TOPIC_VERSIONS.get(message.topic, 1),
        "key": message.key,
        "created_at": message.created_at.isoformat(),
        "data": message.payload,
    }


def document_bytes(message: Outgoing) -> bytes:
    return json.dumps(document(message), ensure_ascii=False, separators=(",", ":")).encode()


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds from `now`: delta-seconds or an HTTP date; None if absent or
    unreadable (the relay's own backoff applies then)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def classify_response(status: int, answer: str, retry_after: float | None) -> Verdict:
    """2xx delivered; 408/425/429/5xx retried; any other answer parked with the answer."""
    answer = answer[:ANSWER_KEEP]
    if 200 <= status < 300:
        return Verdict(VerdictKind.DELIVERED, status=status)
    detail = f"HTTP {status}: {answer}" if answer else f"HTTP {status}"
    if status in RETRIED_STATUSES or status >= 500:
        return Verdict(VerdictKind.RETRY, detail, status, retry_after)
    return Verdict(VerdictKind.PARK, detail, status)


class NoneSink:
    """No CRM configured: the built-in tables are the record; the outbox is only emptied."""

    name = "none"

    async def deliver(self, message: Outgoing) -> Verdict:
        return Verdict(VerdictKind.DELIVERED)

    async def close(self) -> None:
        return None


class WebhookSink:
    """POST each document to one URL, signed with every active secret."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        secrets: Sequence[SecretStr],
        clock: Clock,
        *,
        timeout: float = 10.0,
        connections: int = 64,
    ) -> None:
        if not secrets:
            raise ValueError(
                "crm.webhook_url is set but crm.webhook_secrets is empty: set at least one "
                "secret (CALLCENTER_CRM__WEBHOOK_SECRETS='[\"…\"]') so the CRM can check requests"
            )
        self.url = url
        self._secrets = list(secrets)
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # never the secrets
        return f"WebhookSink({self.url!r}, {len(self._secrets)} secret(s))"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                timeout=self._timeout,
            )
        return self._session

    def headers(self, message: Outgoing, body: bytes) -> dict[str, str]:
        now = int(self._clock.now().timestamp())
        return {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": str(message.id),
            "Callcenter-Topic": message.topic,
            signing.HEADER: signing.sign(body, self._secrets, now),
        }

    async def deliver(self, message: Outgoing) -> Verdict:
        body = document_bytes(message)
        return await self._post(body, self.headers(message, body))

    async def upload(self, path: Path, idempotency_key: str) -> Verdict:
        """A whole file (the spreadsheet sink's) as the raw body of a POST to the same URL,
        signed the same way, so the receiver checks it with the same ten lines; its name in
        `Content-Disposition`, `Callcenter-Topic: export.file`."""
        body = await asyncio.to_thread(path.read_bytes)
        headers = {
            "Content-Type": FILE_TYPES.get(path.suffix.lower(), "application/octet-stream"),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(path.name)}",
            "Idempotency-Key": idempotency_key,
            "Callcenter-Topic": FILE_TOPIC,
            signing.HEADER: signing.sign(
                body, self._secrets, int(self._clock.now().timestamp())
            ),
        }
        return await self._post(body, headers)

    async def _post(self, body: bytes, headers: dict[str, str]) -> Verdict:
        try:
            async with self._client().post(self.url, data=body, headers=headers) as resp:
                raw = await resp.read()  # read whole, so the connection is reused
                if 200 <= resp.status < 300:  # the common case: no decoding, no clock
                    return Verdict(VerdictKind.DELIVERED, status=resp.status)
                answer = raw[: ANSWER_KEEP * 4].decode("utf-8", "replace")
                retry_after = parse_retry_after(resp.headers.get("Retry-After"), self._clock.now())
                return classify_response(resp.status, answer, retry_after)
        except TimeoutError:
            return Verdict(VerdictKind.RETRY, f"no answer within {self._timeout.total} s")
        except aiohttp.ClientError as exc:
            return Verdict(VerdictKind.RETRY, f"network: {type(exc).__name__}: {exc}")
        except OSError as exc:
            return Verdict(VerdictKind.RETRY, f"network: {exc}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class TopicRouter:
    """Internal topics to the consumers inside the service (the recordings worker takes
    `attempt.recording`), every other topic to the CRM sink. An internal topic whose consumer
    is not wired in this process is retried, never shown to the CRM nor dropped."""

    def __init__(self, default: Sink, consumers: Mapping[str, Sink], internal: Set[str]) -> None:
        self.default = default
        self.consumers = dict(consumers)
        self.internal = frozenset(internal)
        self.name = default.name

    async def deliver(self, message: Outgoing) -> Verdict:
        consumer = self.consumers.get(message.topic)
        if consumer is None:
            if message.topic in self.internal:
                return Verdict(VerdictKind.RETRY, f"no consumer for {message.topic} here")
            return await self.default.deliver(message)
        verdict = await consumer.deliver(message)
        return replace(verdict, sink=consumer.name)

    async def close(self) -> None:
        for sink in (self.default, *self.consumers.values()):
            await sink.close()


def build_sink(
    url: str | None, secrets: Sequence[SecretStr], clock: Clock, timeout: float, connections: int
) -> Sink:
    if not url:
        return NoneSink()
    return WebhookSink(url, secrets, clock, timeout=timeout, connections=connections)
