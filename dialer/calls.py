"""Call tracking: one state machine per dial attempt, fed with typed AMI events. No I/O.

An *attempt* is one Originate by the dialer, keyed by the dialer's attempt id (sent as the
Originate `ActionID`, optionally as `ChannelId`, and as the channel variable `ATTEMPT_ID`).
All channels Asterisk creates for one Originate share one Linkedid (the Uniqueid of the
originated channel, or the ChannelId), so the tracker gathers events by Linkedid into a
*call group* and binds the group to its attempt as soon as one of these is seen:

- a Linkedid equal to the ChannelId the attempt was registered with;
- `OriginateResponse` Success: its Uniqueid is the originated channel's, i.e. the Linkedid;
- `VarSet ATTEMPT_ID=<id>` on any channel of the group (the PJSIP traces set it);
- `OriginateResponse` Failure (Uniqueid `<unknown>`): its `Channel` is the dial string as
  sent, matched against the group's originated channel (`Local/<x>@ctx-0000000a;1` starts
  with `Local/<x>@ctx-`; or the originate's own DialBegin `DialString`).

Events arrive in no causal order (OriginateResponse before or after DialEnd, Cdr before
Newchannel, a Hangup before the OriginateResponse that explains it), so nothing is decided
per event: facts are accumulated and an attempt is finalized only when every channel of its
group has hung up *and* its OriginateResponse is in (or, for a failure without channels, at
the OriginateResponse). The outcome then comes from the pure `classify(facts)`.

Which channels are the customer's: in the seat-first flow, the destination of the dialplan
Dial (a DialBegin that has a `Channel:`); in the customer-first and application flows, the
originated channel. A Local destination brings its other half (`;1`/`;2`); the half that ran
Busy()/Hangup(N) (`;2`) carries the real cause while `;1` often says 0, so a non-zero cause
wins. PJSIP channels (`PJSIP/8001-…` seats, `PJSIP/carrier-…` customers) are single.

An automatic (application) call may be handed to a seat mid-call: on the callback's key 2 the
dialer Redirects the customer's channel to `connect-seat` (`dialer.transfer`), which dials a
seat from that channel. `on_key` tells the dialer when a key arrives while the customer is
still on the line; the seat leg then joins the call group (same Linkedid), and the result
names the seat the customer was bridged with (`connected_seat`), with the talk time counted
from that bridge.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from dialer.ami import events as ev
from dialer.call_binding import OriginateBinding
from dialer.call_groups import CallGroup, TrackedAttempt, infer_mode, resource
from dialer.call_handlers import EventHandlers
from dialer.call_outcome import (
    DEFAULT_EARLY_HANGUP_SECONDS,
    REASON_ORIGINATE_TIMEOUT,
    STATE_RINGING,
    STATE_UP,
    CallFacts,
    CallResult,
    CallState,
    KeyPress,
    Mode,
    Outcome,
    Party,
    classify,
    explain,
    hangup_party,
)
from dialer.domain import PbxShuttingDown

log = logging.getLogger(__name__)


class CallTracker(EventHandlers, OriginateBinding):
    """Tracks dial attempts through AMI events. Pure: time comes in as `now` arguments.

    `handle(event, now)` returns the results of the attempts that just finished.
    `now` may be None (a replay without timestamps); durations are then None.
    `on_key(KeyPress)`, if set, is called once per attempt with the first key the dialplan
    read while the customer was still on the line (the callback's key 2 hand-over).
    """

    def __init__(
        self,
        *,
        early_hangup_seconds: float = DEFAULT_EARLY_HANGUP_SECONDS,
        attempt_variable: str = "ATTEMPT_ID",
        discover_unregistered: bool = False,
        response_grace_seconds: float = 10.0,
        forget_after_seconds: float = 300.0,
        on_key: Callable[[KeyPress], None] | None = None,
        publish: Callable[[object], None] | None = None,
        server: str = "",
    ) -> None:
        self.early_hangup_seconds = early_hangup_seconds
        # The dialer's bus (`dialer.messagebus`): what the engine needs to know while a call
        # runs (`dialer.domain`: recording named, first bridge, PBX shutting down), so that
        # it never reads the raw AMI events itself.
        self.publish = publish
        self.server = server
        # Called (synchronously, from `handle`) with the first key read on a live call.
        self.on_key = on_key
        self.attempt_variable = attempt_variable
        self.discover_unregistered = discover_unregistered
        self.response_grace_seconds = response_grace_seconds
        self.forget_after_seconds = forget_after_seconds
        self._attempts: dict[str, TrackedAttempt] = {}
        self._groups: dict[str, CallGroup] = {}
        self._by_uniqueid: dict[str, CallGroup] = {}
        self._link_wanted: dict[
            str, TrackedAttempt
        ] = {}  # linkedid -> attempt, before the group exists
        self._finished: dict[str, float | None] = {}  # linkedids and attempt ids already reported
        self._orphan_cdrs: dict[str, ev.Cdr] = {}
        self._hangup_channels: dict[str, None] = {}  # channel names, oldest first
        self._failed_unmatched: dict[
            str, TrackedAttempt
        ] = {}  # Failure seen, channel not yet known
        self._by_dial_string: dict[str, list[TrackedAttempt]] = {}  # registered, not bound yet
        self._watched_vars = {
            attempt_variable,
            "MIXMONITOR_FILENAME",
            "SEAT",
            "NUMBER",
            "PLAYBACKSTATUS",
        }
        self._handlers: dict[type, Callable[[Any, float | None], list[CallResult]]] = {
            ev.Newchannel: self._on_newchannel,
            ev.Newstate: self._on_newstate,
            ev.DialBegin: self._on_dial_begin,
            ev.DialState: self._on_dial_state,
            ev.DialEnd: self._on_dial_end,
            ev.BridgeEnter: self._on_bridge_enter,
            ev.Hangup: self._on_hangup,
            ev.HangupRequest: self._on_hangup_request,
            ev.SoftHangupRequest: self._on_hangup_request,
            ev.VarSet: self._on_varset,
            ev.UserEvent: self._on_user_event,
            ev.DTMFEnd: self._on_dtmf_end,
            ev.Cdr: self._on_cdr,
            ev.OriginateResponse: self._on_originate_response,
        }

    # -- the dialer's side ------------------------------------------------------------------

    def register(
        self,
        attempt_id: str,
        mode: Mode | str | None = None,
        *,
        seat: str | None = None,
        number: str | None = None,
        started_at: float | None = None,
        channel: str | None = None,
        channel_id: str | None = None,
        expect_originate_response: bool = True,
    ) -> None:
        """Announce an Originate about to be sent (`channel` = its Channel header, the dial
        string; `channel_id` = its ChannelId if any). Async originates get an
        OriginateResponse; pass `expect_originate_response=False` for a synchronous one."""
        existing = self._attempts.get(attempt_id)
        if existing is not None:
            # Discovered from events first (replay): complete it with what we now know.
            existing.mode = Mode(mode) if mode is not None else existing.mode
            existing.seat = seat or existing.seat
            existing.number = number or existing.number
            existing.dial_string = channel or existing.dial_string
            return
        attempt = TrackedAttempt(
            attempt_id=attempt_id,
            mode=Mode(mode) if mode is not None else None,
            seat=seat,
            number=number,
            started_at=started_at,
            dial_string=channel,
            channel_id=channel_id,
            expect_response=expect_originate_response,
            last_activity=started_at,
        )
        self._attempts[attempt_id] = attempt
        log.info(
            "attempt %s: registered (%s, seat %s, number %s)",
            attempt_id,
            attempt.mode,
            seat,
            number,
        )
        if channel_id:
            group = self._groups.get(channel_id)
            if group is not None:
                self._bind(group, attempt, "ChannelId")
            else:
                self._link_wanted[channel_id] = attempt
                attempt.wanted_link = channel_id
        elif channel:
            self._by_dial_string.setdefault(channel, []).append(attempt)

    def originate_failed(self, attempt_id: str, error: str, now: float | None) -> list[CallResult]:
        """The Originate action itself was refused (`Response: Error`): no call exists."""
        attempt = self._attempts.get(attempt_id)
        if attempt is None:
            return []
        attempt.sync_error = error or "Originate failed"
        if attempt.group is not None:  # cannot happen with a real Asterisk; keep the facts
            attempt.expect_response = False
            return self._maybe_finish(attempt.group, now)
        return [self._finish(attempt, None, now)]

    def note_hangup_action(
        self, *, channel: str | None = None, attempt_id: str | None = None
    ) -> None:
        """The dialer (or an operator through it) sent `Action: Hangup` for this channel or
        attempt; its outcome becomes HUNG_UP_BY_ACTION when it ends."""
        if attempt_id is not None and attempt_id in self._attempts:
            self._attempts[attempt_id].hangup_requested = True
        if channel:
            self._hangup_channels[channel] = None
            if len(self._hangup_channels) > 10_000:  # names of channels that never existed
                del self._hangup_channels[next(iter(self._hangup_channels))]

    def live_channels(self, attempt_id: str) -> list[str]:
        """Names of the attempt's channels not hung up yet, the originated one first (a
        Hangup of that one ends the whole call). Empty while none is known."""
        attempt = self._attempts.get(attempt_id)
        if attempt is None or attempt.group is None:
            return []
        first = attempt.channel_id or attempt.group.linkedid
        up = [c for c in attempt.group.channels.values() if not c.hung_up]
        return [c.name for c in sorted(up, key=lambda c: c.uniqueid != first)]

    def expect_bridge(self, attempt_id: str) -> None:
        """The call is being moved to another seat: its next bridge is published again
        (`CallBridged`), so that the new seat is seen answering."""
        attempt = self._attempts.get(attempt_id)
        if attempt is not None and attempt.group is not None:
            attempt.group.bridge_published = False

    def active(self) -> list[str]:
        """Attempt ids not finished yet."""
        return list(self._attempts)

    def stats(self) -> dict[str, int]:
        """Sizes of what the tracker holds (for metrics, and to show nothing leaks)."""
        return {
            "attempts": len(self._attempts),
            "calls": len(self._groups),
            "channels": len(self._by_uniqueid),
            "waiting_links": len(self._link_wanted),
            "waiting_dial_strings": sum(len(v) for v in self._by_dial_string.values()),
            "failures_waiting": len(self._failed_unmatched),
            "orphan_cdrs": len(self._orphan_cdrs),
        }

    def state_of(self, attempt_id: str) -> CallState | None:
        attempt = self._attempts.get(attempt_id)
        return None if attempt is None else attempt.state

    # -- events ------------------------------------------------------------------------------

    def handle(self, event: ev.AmiEvent, now: float | None) -> list[CallResult]:
        handler = self._handlers.get(type(event))
        if handler is None:
            if self.publish is not None and event.name == "Shutdown":
                self.publish(PbxShuttingDown(self.server))
            return []
        return handler(event, now)

    # -- time and reconnects ------------------------------------------------------------------

    def expire(self, now: float, originate_timeout: float = 60.0) -> list[CallResult]:
        """Give up waiting: an attempt whose channels are gone but whose OriginateResponse
        never came is finalized from its facts after `response_grace_seconds`; an attempt
        that saw nothing at all for `originate_timeout` becomes UNKNOWN; a call no
        originate claimed is forgotten after `forget_after_seconds`."""
        results: list[CallResult] = []
        for attempt in list(self._attempts.values()):
            group = attempt.group
            if group is not None and group.live == 0 and group.channels:
                ended = group.ended_at if group.ended_at is not None else attempt.ended_at
                if ended is not None and now - ended >= self.response_grace_seconds:
                    results.append(self._finish(attempt, group, now))
            elif group is None and attempt.or_response is not None:
                # A Failure that waited for an unclaimed channel which never turned out to be its.
                if attempt.or_at is None or now - attempt.or_at >= self.response_grace_seconds:
                    results.append(self._finish(attempt, None, now))
            elif group is None:
                since = (
                    attempt.last_activity
                    if attempt.last_activity is not None
                    else attempt.started_at
                )
                if since is not None and now - since >= originate_timeout:
                    results.append(self._finish(attempt, None, now, lost=True))
        for group in list(self._groups.values()):
            if group.attempt is None and group.created_at is not None:
                if now - group.created_at >= self.forget_after_seconds:
                    self._drop_group(group, now)
        return results

    def flush(self, now: float | None) -> list[CallResult]:
        """End of input (a replay): finalize everything still open from its facts; calls
        no originate claimed are reported with `attempt_id=None`."""
        results: list[CallResult] = []
        for attempt in list(self._attempts.values()):
            group = attempt.group
            if group is None:
                lost = attempt.or_response is None and attempt.sync_error is None
            else:
                lost = group.live > 0
            results.append(self._finish(attempt, group, now, lost=lost))
        for group in list(self._groups.values()):
            results.append(self._result(None, group, now, lost=group.live > 0))
            self._drop_group(group, now)
        return results

    def resync(self, channels: Iterable[ev.CoreShowChannel], now: float | None) -> list[CallResult]:
        """After a reconnect: rebuild calls from the live channel list (CoreShowChannels).

        Attempts with live channels stay tracked; channels we knew that are no longer live
        are marked hung up (their Hangup was lost, cause unknown); live channels we did not
        know are added. Attempts with no live channel and no final result are returned as
        UNKNOWN (or classified from their facts if every channel's Hangup was seen)."""
        live_by_linkedid: dict[str, list[ev.CoreShowChannel]] = {}
        for live in channels:
            live_by_linkedid.setdefault(live.linkedid, []).append(live)
        for linkedid, chans in live_by_linkedid.items():
            group = self._group_for(linkedid, now)
            if group is None:
                continue
            live_ids = set()
            for c in chans:
                live_ids.add(c.uniqueid)
                known = c.uniqueid in group.channels
                chan = self._channel(group, c.uniqueid, c.channel, now)
                if not known:
                    chan.first_seen = None
                if c.channel_state == STATE_UP and chan.up_at is None:
                    chan.up_at = now  # answered while we were away: talk time is a lower bound
                if c.bridge_id and chan.bridged_at is None:
                    chan.bridged_at = now
            for gone in group.channels.values():
                if gone.uniqueid not in live_ids and not gone.hung_up:
                    gone.hung_up = True
                    gone.hangup_at = now
                    group.live -= 1
        results: list[CallResult] = []
        for attempt in list(self._attempts.values()):
            group = attempt.group
            if group is not None and group.linkedid in live_by_linkedid:
                log.info(
                    "attempt %s: still live after reconnect (%s)", attempt.attempt_id, group.state
                )
                continue
            complete = (
                group is not None
                and group.channels
                and all(
                    c.hangup_at is not None and c.cause is not None for c in group.channels.values()
                )
            )
            if complete and group is not None:
                results.append(self._finish(attempt, group, now))
            else:
                results.append(self._finish(attempt, group, now, lost=True))
        for group in list(self._groups.values()):
            if group.attempt is None and group.linkedid not in live_by_linkedid:
                self._drop_group(group, now)
        return results


__all__ = [
    "DEFAULT_EARLY_HANGUP_SECONDS",
    "REASON_ORIGINATE_TIMEOUT",
    "STATE_RINGING",
    "STATE_UP",
    "CallFacts",
    "CallResult",
    "CallState",
    "CallTracker",
    "KeyPress",
    "Mode",
    "Outcome",
    "Party",
    "classify",
    "explain",
    "hangup_party",
    "infer_mode",
    "resource",
]
