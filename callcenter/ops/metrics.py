"""Prometheus metrics: one registry per process, made by `bootstrap()` (never the library's
global default registry, so two services in one test process do not share counters).

This module holds what events move (the dialer's counters, the seat-ready → Originate
histogram, the HTTP middleware); `collectors.py` reads the rest at scrape time
(docs/operations.md "Reading the metrics").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Counter, Histogram

# Seat ready → Originate: the desk's target is well under a second; the tail shows stalls.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Metrics:
    """The counters and histograms that events move; `StateCollector` does the rest."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.calls_started = Counter(
            "callcenter_calls_started",
            "Originates accepted by Asterisk, by campaign and dial mode",
            ["campaign", "mode"],
            registry=r,
        )
        self.calls_ended = Counter(
            "callcenter_calls_ended",
            "Attempt results committed, by campaign and outcome (not_sent included)",
            ["campaign", "outcome"],
            registry=r,
        )
        self.ready_to_originate = Histogram(
            "callcenter_seat_ready_to_originate_seconds",
            "From a seat becoming ready to its Originate handed to the AMI link",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            "callcenter_http_requests",
            "HTTP requests by method, route (its canonical path) and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "callcenter_http_request_duration_seconds",
            "HTTP request handling time by route",
            ["route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )


def route_of(request: web.Request) -> str:
    """The route's canonical path (`/api/leads/{lead_id}`), never the raw URL: one series
    per route, whatever ids or junk the callers send."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    if resource is None:
        return "unmatched"
    return resource.canonical


def http_middleware(metrics: Metrics, clock: Callable[[], float]) -> Middleware:
    @web.middleware
    async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = clock()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:  # redirects, and what the error middleware let by
            status = exc.status
            raise
        finally:
            route = route_of(request)
            # any token is a method to HTTP: an unknown one must not make a new series
            method = request.method if request.method in METHODS else "other"
            metrics.http_requests.labels(method, route, str(status)).inc()
            metrics.http_seconds.labels(route).observe(max(0.0, clock() - started))

    return count_requests
