"""Installs metrics, health and readiness on the container (called by `callcenter.service`)."""

from __future__ import annotations

from collections.abc import Iterable

from callcenter.bootstrap import Container
from callcenter.ops import http
from callcenter.ops.collectors import StateCollector, watch_dialer
from callcenter.ops.services import ReadinessCheck
from dialer.engine import DialerEngine


def install_ops(
    container: Container, engine: DialerEngine | None, off_servers: Iterable[str] = ()
) -> http.Ops:
    off = list(off_servers)
    state = None
    if engine is not None:
        watch_dialer(container.metrics, engine)
        state = StateCollector(
            engine,
            container.sessions,
            container.clock,
            off,
            histogram=container.metrics.ready_to_originate,
        )
        container.metrics.registry.register(state)
    token = container.settings.ops.metrics_token
    ops = http.Ops(
        metrics=container.metrics,
        readiness=ReadinessCheck(
            container.engine, engine.health if engine is not None else None, off
        ),
        state=state,
        scrape_token=token.get_secret_value() if token is not None else None,
    )
    container.route_tables.append(http.routes)
    container.app_values[http.OPS] = ops
    return ops
