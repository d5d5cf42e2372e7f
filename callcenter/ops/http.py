"""`/healthz`, `/readyz` and `/metrics`: for the process supervisor, the load balancer and
Prometheus, not for people, so they stay out of the OpenAPI document (`page=True`).

`/healthz` and `/readyz` are public and say nothing but check names and states.
`/metrics` is public to the token middleware but asks for its own scrape token
(`ops.metrics_token`, sent as `Authorization: Bearer …`); without one configured it is off.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from callcenter.ops.collectors import StateCollector
from callcenter.ops.metrics import Metrics
from callcenter.ops.services import ReadinessCheck
from common.web import ApiError, json_response
from crm_sync.api import endpoint


@dataclass
class Ops:
    metrics: Metrics
    readiness: ReadinessCheck
    state: StateCollector | None = None
    scrape_token: str | None = None


OPS = web.AppKey("ops", Ops)
routes = web.RouteTableDef()


@routes.get("/healthz")
@endpoint(public=True, page=True)
async def healthz(request: web.Request) -> web.StreamResponse:
    """The process is alive and its event loop answers."""
    return json_response({"status": "alive"})


@routes.get("/readyz")
@endpoint(public=True, page=True)
async def readyz(request: web.Request) -> web.StreamResponse:
    """200 when the database answers with the current schema and every AMI link is up or
    deliberately off; else 503 with the checks that failed."""
    result = await request.app[OPS].readiness.check()
    return json_response(result.as_dict(), status=200 if result.ready else 503)


@routes.get("/metrics")
@endpoint(public=True, page=True)
async def metrics(request: web.Request) -> web.StreamResponse:
    """The Prometheus exposition of this process's registry."""
    ops = request.app[OPS]
    if not ops.scrape_token:
        raise ApiError(404, "metrics are off: set the scrape token ops.metrics_token")
    header = request.headers.get("Authorization", "")
    sent = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not hmac.compare_digest(sent.encode(), ops.scrape_token.encode()):
        raise ApiError(401, "send the scrape token: 'Authorization: Bearer <ops.metrics_token>'")
    if ops.state is not None:
        await ops.state.refresh()
    return web.Response(
        body=generate_latest(ops.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
