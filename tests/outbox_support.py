"""A real CRM webhook receiver on loopback for the outbox tests: checks every signature,
answers what the test scripts (500, 429 with Retry-After, a hang, a lost answer), can go
away and come back, drops duplicates by `Idempotency-Key` and records what it accepted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync import signing
from crm_sync.models import OutboxMessage

SECRET = "test-webhook-secret"

# (document) -> None to accept, or a response to give instead (and not accept)
Script = Callable[[dict[str, Any]], "Answer | None"]


@dataclass
class Answer:
    status: int = 200
    text: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (the client's timeout must fire)
    accept_first: bool = False  # take the document, then answer this (the answer is "lost")


class Receiver:
    def __init__(self, secrets: list[str], now: Callable[[], datetime]) -> None:
        self.secrets = secrets
        self.now = now
        self.accepted: dict[str, dict[str, Any]] = {}  # Idempotency-Key -> document
        self.order: list[tuple[str, int]] = []  # (key, id) in acceptance order
        self.requests: list[int] = []  # outbox id of every request that arrived signed
        self.duplicates: list[int] = []
        self.forged = 0
        # Idempotency-Key -> (Content-Disposition, Content-Type, body) of each file taken
        self.files: dict[str, tuple[str, str, bytes]] = {}
        self.file_duplicates: list[str] = []
        self.script: Script = lambda _doc: None
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()  # lets hanging requests finish at teardown
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            signing.verify(
                request.headers.get(signing.HEADER),
                body,
                self.secrets,
                self.now().timestamp(),
                300,
            )
        except signing.SignatureError as exc:
            self.forged += 1
            return web.Response(status=401, text=str(exc))
        if request.content_type != "application/json":
            return self._file(request, body)
        doc = json.loads(body)
        idem = request.headers["Idempotency-Key"]
        assert idem == str(doc["id"])
        self.requests.append(doc["id"])
        answer = self.script(doc)
        if answer is not None and answer.hang:
            await self.release.wait()
            return web.Response(status=504)
        if answer is not None and not answer.accept_first:
            return web.Response(status=answer.status, text=answer.text, headers=answer.headers)
        if idem in self.accepted:
            self.duplicates.append(doc["id"])
        else:
            self.accepted[idem] = doc
            self.order.append((doc["key"], doc["id"]))
        self.arrived.set()
        if answer is not None:
            return web.Response(status=answer.status, text=answer.text, headers=answer.headers)
        return web.Response(status=200, text="ok")

    def _file(self, request: web.Request, body: bytes) -> web.Response:
        """A file upload (the spreadsheet sink): recorded under its idempotency key."""
        idem = request.headers["Idempotency-Key"]
        answer = self.script({"topic": request.headers["Callcenter-Topic"], "key": idem})
        if answer is not None:
            return web.Response(status=answer.status, text=answer.text, headers=answer.headers)
        if idem in self.files:
            self.file_duplicates.append(idem)
        else:
            disposition = request.headers["Content-Disposition"]
            self.files[idem] = (disposition, request.content_type, body)
        return web.Response(status=200, text="ok")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        if self.port == 0:
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        """Go away: the port refuses connections until `start()` again."""
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.release = asyncio.Event()

    def ids_for(self, key: str) -> list[int]:
        return [i for k, i in self.order if k == key]


async def write_messages(
    sessions: async_sessionmaker[AsyncSession],
    now: datetime,
    keys: list[str],
    per_key: int,
    topic: str = "lead.status",
) -> list[int]:
    """Messages interleaved across keys, as a day of calls writes them."""
    async with sessions.begin() as s:
        rows = [
            OutboxMessage(
                topic=topic,
                key=key,
                payload={
                    "lead_id": int(key.split(":")[1]),
                    "from": "assigned",
                    "to": "scheduled",
                    "reason": f"step {n}",
                },
                created_at=now,
            )
            for n in range(per_key)
            for key in keys
        ]
        s.add_all(rows)
        await s.flush()
        return [r.id for r in rows]
