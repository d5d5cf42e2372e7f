"""What observability costs the service (docs/operations.md, docs/benchmarks.md):

* a log line through the scrub filter (attempt id, masked number, secrets) and the JSON
  formatter, against the same line through the plain text formatter without the filter;
* the metrics' bus handlers per finished call (OriginateSent + CallEnded);
* rendering /metrics for a desk of N seats and N live calls (the engine's views stubbed,
  the database part left out: it is a handful of aggregate queries).

    .venv/bin/python bench/bench_ops.py [--lines 200000] [--seats 500]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import generate_latest

from callcenter.ops.collectors import StateCollector, watch_dialer
from callcenter.ops.logs import Scrub, TextFormatter, json_formatter
from callcenter.ops.metrics import Metrics
from dialer.decisions import Finished
from dialer.domain import AttemptSettled, OriginateSent
from dialer.messagebus import MessageBus
from dialer.models import SeatState
from dialer.state import LiveCall

ATTEMPT = "att-0b6f2c1e-9a4d-4f7e-8c21-5d3e7a9b1c04"


def log_rate(lines: int, scrub: bool, as_json: bool) -> float:
    handler = logging.StreamHandler(io.StringIO())
    if scrub:
        handler.addFilter(Scrub(["a-long-ami-secret-value", "whsec-0123456789abcdef"]))
    handler.setFormatter(json_formatter() if as_json else TextFormatter("%(message)s"))
    log = logging.getLogger(f"bench.{scrub}.{as_json}")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    start = time.perf_counter()
    for _ in range(lines):
        log.info(
            "attempt %s: %s dialled via PJSIP/%s@carrier", ATTEMPT, "PJSIP/8001", "13812345678"
        )
    return lines / (time.perf_counter() - start)


@dataclass
class _Live:
    attempt_id: str
    campaign_id: int | None
    kind: str
    mode: str


@dataclass
class _Seat:
    state: SeatState


class StubEngine:
    """The engine's views the metrics read, for N seats and N live calls."""

    def __init__(self, n: int) -> None:
        self.bus = MessageBus()
        self.registry = self
        states = list(SeatState)
        self._seats = [_Seat(states[i % len(states)]) for i in range(n)]
        self._calls = [{"ami_server": f"pbx{i % 2 + 1}"} for i in range(n)]
        self._live = _Live(ATTEMPT, 1, "renewal", "seat_first")
        self.latencies = [(1, 0.0, 0.002, 0.004)] * 0

    def get(self, _id: int) -> Any:
        return None

    def live_attempt(self, _attempt_id: str) -> _Live:
        return self._live

    def signed_in_seats(self) -> list[_Seat]:
        return self._seats

    def live_calls(self) -> list[dict[str, str]]:
        return self._calls

    @property
    def _servers(self) -> dict[str, Any]:
        return {"pbx1": _Server(), "pbx2": _Server()}


class _Link:
    connected = True


class _ReadCheck:
    events = 10_000_000


class _Server:
    link = _Link()
    read_check = _ReadCheck()
    links = 2


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lines", type=int, default=200_000)
    p.add_argument("--seats", type=int, default=500)
    p.add_argument("--calls", type=int, default=200_000)
    a = p.parse_args()
    print(f"load average: {os.getloadavg()}")
    for scrub, as_json in ((False, False), (True, False), (True, True)):
        rate = log_rate(a.lines, scrub, as_json)
        what = ("scrubbed " if scrub else "plain ") + ("JSON" if as_json else "text")
        print(f"log lines, {what}: {rate:,.0f}/s ({1e6 / rate:.1f} µs a line)")

    engine: Any = StubEngine(a.seats)
    metrics = Metrics()
    watch_dialer(metrics, engine)
    live = LiveCall(ATTEMPT, 1, "13800000000", "Asia/Shanghai", "renewal", "seat_first", "pbx1", 1)
    settled = [
        AttemptSettled(live, Finished(ATTEMPT, o), object(), datetime.now(UTC))  # type: ignore[arg-type]
        for o in ("answered", "busy", "no_answer", "failed")
    ]
    start = time.perf_counter()
    for i in range(a.calls):
        engine.bus.publish(OriginateSent(ATTEMPT, None))  # type: ignore[arg-type]
        engine.bus.publish(settled[i % 4])
    per_call = (time.perf_counter() - start) / a.calls
    print(
        f"metrics bus handlers: {per_call * 1e6:.1f} µs per call (OriginateSent + AttemptSettled)"
    )

    state = StateCollector(engine, None, None)  # type: ignore[arg-type]
    metrics.registry.register(state)
    rounds = 200
    start = time.perf_counter()
    for _ in range(rounds):
        body = generate_latest(metrics.registry)
    per = (time.perf_counter() - start) / rounds
    print(
        f"/metrics render, {a.seats} seats and {a.seats} live calls: {per * 1000:.2f} ms, {len(body):,} bytes"
    )


if __name__ == "__main__":
    main()
