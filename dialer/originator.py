"""The originator unit: pacing, the Originate's headers, the send, and hanging up.

It answers `SendCall`: a trunk slot and the trunk's rate first (waits on the clock, never
sleeps blind), then the calling window and the CRM's stops are checked *at the moment of
sending*, then `Originate` with the attempt id as ActionID, ChannelId and ATTEMPT_ID. A send
whose fate is unknown (the link dropped) is never re-sent: the reconciliation settles it.
When an attempt is settled its trunk slot is given back (`AttemptSettled`)."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import replace
from datetime import datetime
from typing import Any

from common.logcontext import about_the_call
from dialer import originate, queues, shutdown
from dialer.ami.exceptions import AmiError
from dialer.ami.protocol import HeaderValue
from dialer.campaigns import CampaignInfo
from dialer.domain import AttemptSettled, CallPaced, OriginateSent, SendCall
from dialer.models import CampaignKind, DialMode
from dialer.originate import DialPlan
from dialer.outcomes import NOT_SENT
from dialer.results import Finished
from dialer.runtime import DialerRuntime
from dialer.state import TRACKER_MODE, LiveCall, PbxServer

log = logging.getLogger(__name__)

_WINDOW_CLOSED = "calling window closed (or closing within the minimum ring time) at send time"


class Originator:
    def __init__(self, rt: DialerRuntime) -> None:
        self.rt = rt
        # Seat ready -> Originate handed to the AMI link, and -> "queued" by the PBX, for
        # benchmarks: (specialist id, ready at (clock.monotonic), seconds to the send,
        # seconds to the reply).
        self.latencies: deque[tuple[int, float, float, float]] = deque(maxlen=100_000)
        rt.bus.register(SendCall, self._on_send)
        rt.bus.subscribe(AttemptSettled, self._on_settled)

    def _on_send(self, cmd: SendCall) -> Any:
        return self.send(cmd.live, cmd.campaign)

    def _on_settled(self, e: AttemptSettled) -> None:
        live = e.live
        if live.admitted and live.trunk is not None:
            limiter = self.rt.servers[live.server].trunks.get(live.trunk)
            if limiter is not None:
                limiter.release()
            live.admitted = False

    def headers(
        self, live: LiveCall, camp: CampaignInfo | None, plan: DialPlan, ring_ms: int | None = None
    ) -> dict[str, HeaderValue]:
        if ring_ms is not None and ring_ms < plan.ring_timeout_ms:
            plan = replace(plan, ring_timeout_ms=ring_ms)
        number = originate.dialable(live.number)
        cid = camp.caller_id if camp is not None else None
        trunk = camp.trunk if camp is not None else None
        common: dict[str, Any] = {
            "attempt_id": live.attempt_id,
            "number": number,
            "lead_id": live.lead_id,
            "caller_id": cid,
        }
        if live.mode == DialMode.CUSTOMER_FIRST.value:
            pooled = camp is not None and camp.pooled
            if live.seat is None and pooled:  # predictive: the seat is chosen on answer
                return originate.pooled(plan, trunk=trunk, **common)
            assert live.seat is not None
            return originate.customer_first(
                plan, seat=live.seat, trunk=trunk, pooled=pooled, **common
            )
        if live.mode == DialMode.AUTOMATIC.value:
            if live.kind == CampaignKind.REMINDER.value:
                message = (
                    camp.message if camp is not None else None
                ) or self.rt.config.reminder_message
                return originate.reminder(plan, message=message, trunk=trunk, **common)
            return originate.callback(plan, trunk=trunk, **common)
        assert live.seat is not None
        return originate.seat_first(plan, seat=live.seat, **common)

    async def _pace(self, server: PbxServer, live: LiveCall, camp: CampaignInfo | None) -> None:
        """A trunk slot and the trunk's rate (seats ready together queue for it)."""
        clock = self.rt.clock
        if camp is not None:
            trunk = server.trunk(camp.trunk, camp.trunk_max_calls, camp.trunk_max_cps)
            while (wait := trunk.reserve(clock.monotonic())) is None:
                await clock.sleep(1.0)  # the trunk is full: look again
            live.admitted = True
            if wait > 0.0:  # this call's slot of the trunk's rate
                await clock.sleep(wait)
        if live.mode == DialMode.AUTOMATIC.value and live.campaign_id is not None:
            self.rt.bus.publish(CallPaced(live.campaign_id))

    async def _not_sent(self, live: LiveCall, stat: str, fin: Finished) -> None:
        self.rt.stats[stat] += 1
        await self.rt.finish(live, fin)

    async def _why_not(
        self, server: PbxServer, live: LiveCall, now: datetime, ring_ms: int | None
    ) -> tuple[str, Finished] | None:
        """Checked at the moment of sending: the calling window, the CRM's stops (it may
        have closed the lead or barred the number since the claim, docs/crm.md), the link."""
        if ring_ms is None:
            retry_at = self.rt.windows.hours_for(live.kind).next_window_start(now, live.tz)
            fin = Finished(live.attempt_id, NOT_SENT, reason=_WINDOW_CLOSED, retry_at=retry_at)
            return "not_sent_window", fin
        async with self.rt.sessions() as s:
            stop = await queues.not_callable_reason(s, live.lead_id, live.number)
        if stop is not None:
            return "not_sent_closed", Finished(live.attempt_id, NOT_SENT, reason=stop)
        if server.link is None or not server.usable:
            reason = "AMI link down or Asterisk shutting down: not dialled"
            return "not_sent_link", Finished(live.attempt_id, NOT_SENT, reason=reason)
        return None

    @about_the_call
    async def send(self, live: LiveCall, camp: CampaignInfo | None) -> None:
        server = self.rt.servers[live.server]
        await self._pace(server, live, camp)
        now = self.rt.clock.now()
        # The ring time is cut to what is left of the window.
        ring_ms = self.rt.windows.ring_ms(live.kind, live.tz, now, server.spec.plan)
        stop = await self._why_not(server, live, now, ring_ms)
        if stop is not None:
            await self._not_sent(live, *stop)
            return
        headers = self.headers(live, camp, server.spec.plan, ring_ms)
        await self._originate(server, live, headers, now)

    async def _originate(
        self, server: PbxServer, live: LiveCall, headers: dict[str, HeaderValue], now: datetime
    ) -> None:
        clock, link = self.rt.clock, server.link
        assert link is not None
        server.tracker.register(
            live.attempt_id,
            TRACKER_MODE[live.mode],
            seat=live.seat,
            number=originate.dialable(live.number),
            started_at=clock.monotonic(),
            channel=str(headers["Channel"]),
            channel_id=live.attempt_id,
        )
        ready_at = self.rt.ready_at.pop(live.specialist_id or -1, None)
        sending = clock.monotonic()
        try:
            reply = await link.send(
                "Originate",
                headers,
                action_id=live.attempt_id,
                timeout=self.rt.config.action_timeout,
            )
        except AmiError as exc:
            # Fate unknown: maybe Asterisk got it. Never re-sent; resync/expiry settles it.
            self.rt.stats["send_unknown"] += 1
            log.warning(
                "attempt %s: Originate fate unknown (%s); left for reconciliation",
                live.attempt_id,
                exc,
            )
            return
        self.rt.stats["originates"] += 1
        if ready_at is not None and live.specialist_id is not None:
            self.latencies.append(
                (live.specialist_id, ready_at, sending - ready_at, clock.monotonic() - ready_at)
            )
        if not reply.ok:
            message = reply.get("Message") or "Originate refused"
            results = server.tracker.originate_failed(live.attempt_id, message, clock.monotonic())
            if shutdown.refused_for_shutdown(message):
                await self._refused_for_shutdown(server, live, message)
                return
            self.rt.settle(live.server, results)
            return
        self.rt.bus.publish(OriginateSent(live.attempt_id, now))

    async def _refused_for_shutdown(self, server: PbxServer, live: LiveCall, message: str) -> None:
        """Asterisk refused the Originate because it is stopping: nothing was dialled. The
        attempt is not sent (no call counted, the lead due again at once) and the server
        takes no new call until its link is back, so its seats wait instead of going through
        their queues one refused lead at a time."""
        if not server.refusing:
            log.warning(
                "AMI %s: %s: no new calls until the link is re-established",
                server.spec.name,
                message,
            )
        server.refusing = True
        reason = f"Originate refused: {message}"
        await self._not_sent(
            live, "not_sent_shutdown", Finished(live.attempt_id, NOT_SENT, reason=reason)
        )

    async def hang_up(self, attempt_id: str) -> bool:
        """Hang up one of this process's calls: an AMI Hangup of its originated channel. The
        tracker is told first, so the outcome is hung_up_by_action whichever arrives first,
        the Hangup's reply or the call's last events. False if no channel of the call is
        up (not dialled yet, already over) or the link failed."""
        live = self.rt.live.get(attempt_id)
        if live is None:
            return False
        server = self.rt.servers[live.server]
        channels = server.tracker.live_channels(attempt_id)
        link = server.link
        if not channels or link is None or not link.connected:
            return False
        server.tracker.note_hangup_action(attempt_id=attempt_id, channel=channels[0])
        try:
            reply = await link.send(
                "Hangup",
                {"Channel": channels[0], "Cause": "16"},
                timeout=self.rt.config.action_timeout,
            )
        except AmiError as exc:
            log.warning("attempt %s: Hangup of %s failed: %s", attempt_id, channels[0], exc)
            return False
        if not reply.ok:
            log.info(
                "attempt %s: Hangup of %s refused: %s",
                attempt_id,
                channels[0],
                reply.get("Message"),
            )
        return reply.ok


__all__ = ["Originator"]
