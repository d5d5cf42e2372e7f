"""Liveness and readiness, for the process supervisor and the load balancer.

Ready = the database answers, its schema is the one this code needs (the check of
`callcenter.database`), and every configured AMI link is up or deliberately off
(`ami[].enabled = false`). What `GET /api/health` adds (a manager.conf user missing a read
class) is a warning for a person, not a reason to take the process out of service.
The answers name the checks and their states only: no address, no error text."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.database import current_heads, expected_heads

log = logging.getLogger(__name__)

LinksView = Callable[[], list[dict[str, Any]]]  # DialerEngine.health: server, connected, …
DB_TIMEOUT = 3.0  # seconds: a readiness probe must answer before the prober gives up


@dataclass
class Readiness:
    ready: bool
    checks: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"status": "ready" if self.ready else "not ready", "checks": self.checks}


@dataclass
class ReadinessCheck:
    engine: AsyncEngine
    links: LinksView | None = None  # None: this process runs no dialer
    off_servers: Iterable[str] = ()
    timeout: float = DB_TIMEOUT
    _want: frozenset[str] = field(default_factory=expected_heads)

    async def database(self) -> tuple[str, str]:
        """(database, schema): ("ok", "current"), ("ok", "out of date"), or
        ("unreachable", "unknown")."""
        try:
            async with asyncio.timeout(self.timeout):
                have = await current_heads(self.engine)
        except Exception as exc:
            log.warning("readiness: the database did not answer: %s", type(exc).__name__)
            return "unreachable", "unknown"
        return "ok", "current" if have == self._want else "out of date"

    def ami(self) -> dict[str, str]:
        states = {name: "off" for name in self.off_servers}
        for link in self.links() if self.links is not None else []:
            states[link["server"]] = "up" if link["connected"] else "down"
        return states

    async def check(self) -> Readiness:
        database, schema = await self.database()
        ami = self.ami()
        ready = (
            database == "ok"
            and schema == "current"
            and all(state in ("up", "off") for state in ami.values())
        )
        return Readiness(ready, {"database": database, "schema": schema, "ami": ami})
