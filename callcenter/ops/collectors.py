"""What the metrics read at scrape time or hear on the dialer's bus: seats, live calls and
AMI links from the engine's views, the calls from its events, and what only the database
knows (outbox, recordings, import and distribution runs) from a few aggregate queries that
`/metrics` awaits before it renders (docs/operations.md "Reading the metrics")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.ops.metrics import Metrics
from common.clock import Clock
from crm_sync import outbox
from crm_sync.models import ImportRun, LeadKind
from dialer.domain import AttemptSettled, OriginateSent
from dialer.engine import DialerEngine
from dialer.models import SeatState
from recordings.models import Recording, RecordingStatus
from schedules.models import DistributionRun

log = logging.getLogger(__name__)

RECORDING_FAILURES = frozenset(
    {RecordingStatus.FAILED.value, RecordingStatus.CORRUPT.value, RecordingStatus.MISSING.value}
)
DB_TIMEOUT = 5.0  # seconds a scrape waits for the database part


def watch_dialer(metrics: Metrics, engine: DialerEngine) -> None:
    """Counters moved by the dialer's bus events (handlers never block: a dict look-up)."""

    def campaign_name(campaign_id: int | None, kind: str) -> str:
        info = engine.registry.get(campaign_id) if campaign_id is not None else None
        return info.name if info is not None else kind

    def started(e: OriginateSent) -> None:
        live = engine.live_attempt(e.attempt_id)
        if live is not None:
            metrics.calls_started.labels(
                campaign_name(live.campaign_id, live.kind), live.mode
            ).inc()

    def ended(e: AttemptSettled) -> None:
        # effects is None when the result had been written already: counted once.
        if e.effects is not None:
            metrics.calls_ended.labels(
                campaign_name(e.live.campaign_id, e.live.kind), e.finished.outcome
            ).inc()

    engine.bus.subscribe(OriginateSent, started)
    engine.bus.subscribe(AttemptSettled, ended)


@dataclass
class DbFigures:
    """What the database says, read once per scrape."""

    ok: bool = False
    outbox_pending: int = 0
    outbox_parked: int = 0
    outbox_oldest_age: float = 0.0
    recordings: dict[str, int] = field(default_factory=dict)
    recordings_oldest_pending_age: float = 0.0
    import_runs: dict[str, int] = field(default_factory=dict)
    import_last_finished: float = 0.0
    distribution_runs: int = 0
    distribution_last_finished: float = 0.0


async def read_db_figures(session: AsyncSession, now: datetime) -> DbFigures:
    st = await outbox.status(session, now)
    rec_rows = await session.execute(
        select(Recording.status, func.count()).group_by(Recording.status)
    )
    oldest_rec = await session.scalar(
        select(func.min(Recording.created_at)).where(
            Recording.status == RecordingStatus.PENDING.value
        )
    )
    imp_rows = await session.execute(select(ImportRun.kind, func.count()).group_by(ImportRun.kind))
    imp_last = await session.scalar(select(func.max(ImportRun.finished_at)))
    dist = (
        await session.execute(select(func.count(), func.max(DistributionRun.finished_at)))
    ).one()
    return DbFigures(
        ok=True,
        outbox_pending=st.pending,
        outbox_parked=st.parked,
        outbox_oldest_age=max(0.0, st.oldest_undelivered_age or 0.0),
        recordings={str(s): int(n) for s, n in rec_rows.all()},
        recordings_oldest_pending_age=(
            max(0.0, (now - oldest_rec).total_seconds()) if oldest_rec else 0.0
        ),
        import_runs={str(k): int(n) for k, n in imp_rows.all()},
        import_last_finished=imp_last.timestamp() if imp_last else 0.0,
        distribution_runs=int(dist[0] or 0),
        distribution_last_finished=dist[1].timestamp() if dist[1] else 0.0,
    )


LinkStats = tuple[str, bool, int, int]  # server, connected, events read, connections made


def link_stats(engine: DialerEngine) -> list[LinkStats]:
    """Each AMI link of the engine. `_servers` is the engine's view of its servers that it
    keeps for lookers from outside (tests, benchmarks, these metrics)."""
    return [
        (name, srv.link is not None and srv.link.connected, srv.read_check.events, srv.links)
        for name, srv in engine._servers.items()
    ]


class LatencyCursor:
    """Moves the seat-ready → Originate histogram from the engine's latency record (the
    samples the dialer benchmark reads: specialist, ready at, seconds to the send, seconds
    to the reply): each scrape observes the samples added since the last one."""

    def __init__(self) -> None:
        self._last: object | None = None

    def new_samples(self, record: Sequence[tuple[int, float, float, float]]) -> list[float]:
        fresh: list[float] = []
        for sample in reversed(record):  # newest first, back to the last one seen
            if sample is self._last:
                break
            fresh.append(sample[2])
        if record:
            self._last = record[-1]
        return fresh[::-1]


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class StateCollector(Collector):
    """Seats, live calls and AMI links from the engine at scrape time, and the database's
    figures of the last `refresh()` (which `/metrics` awaits before it renders)."""

    def __init__(
        self,
        engine: DialerEngine,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        off_servers: Iterable[str] = (),
        histogram: Histogram | None = None,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.clock = clock
        self.off_servers = list(off_servers)
        self.db = DbFigures()
        self.histogram = histogram
        self._latency = LatencyCursor()

    async def refresh(self) -> None:
        if self.histogram is not None:
            for seconds in self._latency.new_samples(self.engine.latencies):
                self.histogram.observe(seconds)
        try:
            async with asyncio.timeout(DB_TIMEOUT), self.sessions() as s:
                self.db = await read_db_figures(s, self.clock.now())
        except Exception as exc:  # a scrape still shows the dialer when the database is away
            log.warning("metrics: the database figures could not be read: %s", exc)
            self.db = DbFigures(ok=False)

    def collect(self) -> Iterator[Metric]:
        yield from self._dialer()
        yield from self._links()
        yield from self._database()

    def _dialer(self) -> Iterator[Metric]:
        seats = GaugeMetricFamily("callcenter_seats", "Signed-in seats by state", labels=["state"])
        counts = dict.fromkeys((s.value for s in SeatState), 0)
        for seat in self.engine.signed_in_seats():
            counts[seat.state.value] = counts.get(seat.state.value, 0) + 1
        for state, n in sorted(counts.items()):
            seats.add_metric([state], n)
        yield seats
        live = GaugeMetricFamily(
            "callcenter_live_calls", "Calls in flight by AMI server", labels=["server"]
        )
        per_server = dict.fromkeys((name for name, *_ in link_stats(self.engine)), 0)
        for call in self.engine.live_calls():
            per_server[call["ami_server"]] = per_server.get(call["ami_server"], 0) + 1
        for server, n in sorted(per_server.items()):
            live.add_metric([server], n)
        yield live

    def _links(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "callcenter_ami_link_up", "1 = the AMI link is up, 0 = down", labels=["server"]
        )
        enabled = GaugeMetricFamily(
            "callcenter_ami_link_enabled",
            "0 = the server is deliberately off in the settings (ami[].enabled = false)",
            labels=["server"],
        )
        events = CounterMetricFamily(
            "callcenter_ami_events", "AMI events read, per server", labels=["server"]
        )
        reconnects = CounterMetricFamily(
            "callcenter_ami_reconnects",
            "AMI links re-established after the first connection, per server",
            labels=["server"],
        )
        for name, connected, n_events, connects in link_stats(self.engine):
            up.add_metric([name], 1 if connected else 0)
            enabled.add_metric([name], 1)
            events.add_metric([name], n_events)
            reconnects.add_metric([name], max(0, connects - 1))
        for name in self.off_servers:
            up.add_metric([name], 0)
            enabled.add_metric([name], 0)
        yield from (up, enabled, events, reconnects)

    def _database(self) -> Iterator[Metric]:
        db = self.db
        yield _gauge(
            "callcenter_metrics_database_up", "1 = this scrape read the database", int(db.ok)
        )
        if not db.ok:
            return
        yield _gauge(
            "callcenter_outbox_pending", "Outbox messages not yet delivered", db.outbox_pending
        )
        yield _gauge(
            "callcenter_outbox_parked", "Outbox messages parked (refused)", db.outbox_parked
        )
        yield _gauge(
            "callcenter_outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered outbox message (0 = none)",
            db.outbox_oldest_age,
        )
        recs = GaugeMetricFamily("callcenter_recordings", "Recordings by status", labels=["status"])
        for status in RecordingStatus:
            recs.add_metric([status.value], db.recordings.get(status.value, 0))
        yield recs
        yield _gauge(
            "callcenter_recordings_backlog",
            "Recordings submitted and not yet processed",
            db.recordings.get(RecordingStatus.PENDING.value, 0),
        )
        yield _gauge(
            "callcenter_recordings_failures",
            "Recordings failed, corrupt or missing",
            sum(n for s, n in db.recordings.items() if s in RECORDING_FAILURES),
        )
        yield _gauge(
            "callcenter_recordings_oldest_pending_age_seconds",
            "Age of the oldest unprocessed recording (0 = none)",
            db.recordings_oldest_pending_age,
        )
        imports = CounterMetricFamily(
            "callcenter_import_runs", "Imports run, by lead kind", labels=["kind"]
        )
        runs: dict[str, int] = {k.value: 0 for k in LeadKind}  # every kind, run or not
        runs.update(db.import_runs)
        for kind, n in sorted(runs.items()):
            imports.add_metric([kind], n)
        yield imports
        yield _gauge(
            "callcenter_import_last_finished_timestamp_seconds",
            "When the last import finished (Unix time; 0 = never)",
            db.import_last_finished,
        )
        yield CounterMetricFamily(
            "callcenter_distribution_runs", "Daily distributions run", value=db.distribution_runs
        )
        yield _gauge(
            "callcenter_distribution_last_finished_timestamp_seconds",
            "When the last distribution finished (Unix time; 0 = never)",
            db.distribution_last_finished,
        )
