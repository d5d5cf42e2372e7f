"""The call events unit: every AMI event of a server goes to its call tracker
(`dialer.calls`), and what the tracker finishes goes to the result writer; reconciliation
after a (re)connect and the expiry of calls nothing more will be heard of.

The tracker publishes what matters while a call runs (`RecordingNamed`, `CallBridged`,
`PbxShuttingDown`, `CustomerPressedKey`); this unit applies them to the calls in flight and
to the seats (through the seat state machine). After every (re)connect the supervisor runs
CoreShowChannels and calls `on_resync`: attempts with live channels are re-attached; the
others are finished as *unknown* and not redialled before the next window."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from dialer import shutdown
from dialer.ami import events as ev
from dialer.calls import CallResult, KeyPress
from dialer.domain import (
    CallBridged,
    CallHungUp,
    CustomerPressedKey,
    PbxLinkBack,
    PbxShuttingDown,
    RecordingNamed,
    SettleResults,
)
from dialer.results import Finished
from dialer.runtime import DialerRuntime
from dialer.seats import SeatState
from dialer.state import LiveCall, PbxServer, finished_from

log = logging.getLogger(__name__)

_UNKNOWN_AFTER_LOSS = (
    "fate unknown after the AMI link was lost: not redialled before the next window"
)


class CallEvents:
    def __init__(self, rt: DialerRuntime, put: Callable[[LiveCall, Finished], None]) -> None:
        self.rt = rt
        self._put = put  # the result writer's queue
        bus = rt.bus
        # The trackers publish the keys they hear; the key-2 hand-over listens.
        for name, srv in rt.servers.items():
            srv.tracker.on_key = functools.partial(self._publish_key, name)
            srv.tracker.publish, srv.tracker.server = bus.publish, name
        bus.subscribe(RecordingNamed, self._on_recording_named)
        bus.subscribe(CallBridged, self._on_bridged)
        bus.subscribe(PbxShuttingDown, self._on_pbx_shutdown)
        bus.register(SettleResults, self._on_settle)

    def on_event(self, server_name: str, event: Any) -> None:
        """Every AMI event goes to the server's call tracker; what happens while a call runs
        comes back as bus events, the finished calls as results."""
        server = self.rt.servers[server_name]
        results = server.tracker.handle(event, self.rt.clock.monotonic())
        server.read_check.saw(event)
        if results:
            self.settle(server_name, results)

    def _on_pbx_shutdown(self, e: PbxShuttingDown) -> None:
        log.warning(
            "AMI %s: Asterisk is shutting down: no new calls until the link is back", e.server
        )
        server = self.rt.servers[e.server]
        server.refusing = server.going = True

    def _on_recording_named(self, e: RecordingNamed) -> None:
        live = self.rt.live.get(e.attempt_id)
        if live is not None:
            live.recording = e.file_name

    def _on_bridged(self, e: CallBridged) -> None:
        live = self.rt.live.get(e.attempt_id)
        if live is None or (live.answered and live.moved_to is None):
            return
        live.answered = True
        seat = self.rt.seats.get(live.moved_to or live.specialist_id or -1)
        if (
            seat is not None
            and seat.attempt_id == live.attempt_id
            and seat.state is SeatState.RINGING
        ):
            self.rt.record(seat, seat.answer(self.rt.clock.now()))

    def _publish_key(self, server_name: str, press: KeyPress) -> None:
        self.rt.bus.publish(
            CustomerPressedKey(server_name, press.attempt_id, press.channel, press.key)
        )

    def _on_settle(self, cmd: SettleResults) -> None:
        self.settle(cmd.server, cmd.results)

    def settle(self, server_name: str, results: Sequence[CallResult]) -> None:
        server = self.rt.servers[server_name]
        server.read_check.ended(results)
        for r in results:
            live = self.rt.live.get(r.attempt_id or "")
            if live is None:
                if r.attempt_id is not None:
                    log.debug("result for an attempt not in flight here: %s", r.attempt_id)
                continue
            self.rt.bus.publish(CallHungUp(server_name, live.attempt_id))
            fin = finished_from(r, live)
            if server.going and not fin.unknown and not shutdown.reached(r):
                fin = shutdown.ended_by_pbx(fin, "it ended while Asterisk shut down")
            elif shutdown.may_be_cut(r) and not fin.unknown:
                self.rt.spawn(self._unless_cut(server, live, fin))
                continue
            self._put(live, fin)

    async def _unless_cut(self, server: PbxServer, live: LiveCall, fin: Finished) -> None:
        """A ringing call cancelled with cause 16: if the PBX goes down within the grace
        (`Event: Shutdown`, or the link drops), the PBX cut it; else it is what it was."""
        step, waited, links = 0.1, 0.0, server.links
        while waited < self.rt.config.pbx_cut_grace_seconds and not _pbx_went(server, links):
            await self.rt.clock.sleep(step)
            waited += step
        if _pbx_went(server, links):
            fin = shutdown.ended_by_pbx(fin, "cancelled as Asterisk shut down")
        self._put(live, fin)

    async def on_resync(self, server_name: str, channels: Sequence[Any]) -> None:
        server = self.rt.servers[server_name]
        if server.refusing:
            log.info("AMI %s: link re-established after a shutdown: dialling again", server_name)
        server.refusing = server.going = False
        server.links += 1
        if self.rt.running:  # the seats and campaigns that waited for this server
            self.rt.bus.publish(PbxLinkBack(server_name))
        chans = [c for c in channels if isinstance(c, ev.CoreShowChannel)]
        results = server.tracker.resync(chans, self.rt.clock.monotonic())
        live_ids = {c.linkedid for c in chans}
        for r in results:
            live = self.rt.live.get(r.attempt_id or "")
            if live is None:
                continue
            fin = finished_from(r, live)
            if fin.unknown:
                fin = replace(fin, reason=_UNKNOWN_AFTER_LOSS)
                self.rt.stats["unknown"] += 1
            await self.rt.finish(live, fin)
        kept = sum(
            1 for a in self.rt.live.values() if a.server == server_name and a.attempt_id in live_ids
        )
        log.info(
            "AMI %s resynced: %d calls re-attached, %d settled", server_name, kept, len(results)
        )

    def expire(self) -> None:
        """Calls nothing more will be heard of (housekeeping)."""
        mono = self.rt.clock.monotonic()
        for name, server in self.rt.servers.items():
            try:
                self.settle(
                    name,
                    server.tracker.expire(
                        mono, originate_timeout=self.rt.config.originate_lost_seconds
                    ),
                )
            except Exception:
                log.exception("AMI %s: tracker expiry failed", name)


def _pbx_went(server: PbxServer, links: int) -> bool:
    """Shutdown seen, or the link is down or was re-established since `links`."""
    link = server.link
    return server.going or server.links != links or link is None or not link.connected


__all__ = ["CallEvents"]
