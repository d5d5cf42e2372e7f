"""The call tracker's event handlers (no I/O): each typed AMI event adds its facts to its
call group (channels, dials, states, variables, keys, Cdrs) and, on the last Hangup, may
finish the attempt. What the dialer needs while a call runs is published on its bus
(`RecordingNamed`, `CallBridged`); a key read on a live call goes to `on_key`."""

from __future__ import annotations

import logging

from dialer.ami import events as ev
from dialer.call_core import TrackerCore
from dialer.call_groups import CallGroup, DialLeg
from dialer.call_outcome import STATE_RINGING, STATE_UP, CallResult, CallState, KeyPress
from dialer.domain import CallBridged, CustomerWaiting, RecordingNamed
from dialer.originate import POOL_ANSWERED_EVENT

# The tracker is one thing to an operator: its parts log as `dialer.calls`.
log = logging.getLogger("dialer.calls")


class EventHandlers(TrackerCore):
    def _on_newchannel(self, e: ev.Newchannel, now: float | None) -> list[CallResult]:
        group = self._group_for(e.linkedid, now)
        if group is not None:
            self._channel(group, e.uniqueid, e.channel, now)
        return []

    def _on_newstate(self, e: ev.Newstate, now: float | None) -> list[CallResult]:
        group = self._group_for(e.linkedid, now)
        if group is None:
            return []
        chan = self._channel(group, e.uniqueid, e.channel, now)
        if e.channel_state == STATE_UP:
            if chan.up_at is None:
                chan.up_at = now
                if self._is_customer(group, e.uniqueid):
                    self._advance(group, CallState.ANSWERED, now, "Newstate Up")
        elif e.channel_state == STATE_RINGING:
            chan.ringing = True
            if self._is_customer(group, e.uniqueid):
                self._advance(group, CallState.RINGING, now, "Newstate Ringing")
        return []

    def _on_dial_begin(self, e: ev.DialBegin, now: float | None) -> list[CallResult]:
        group = self._group_for(e.dest_linkedid, now)
        if group is None:
            return []
        self._channel(group, e.dest_uniqueid, e.dest_channel, now)
        group.dials.append(DialLeg(e.uniqueid, e.dest_uniqueid, e.dial_string, now))
        if e.uniqueid is None and group.attempt is None and e.dial_string:
            if self._failed_unmatched:
                self._claim_for_failed(group, e.dial_string)
            if group.attempt is None and self._by_dial_string:
                tech = e.dest_channel.split("/", 1)[0]
                self._claim_by_dial_string(group, f"{tech}/{e.dial_string}", "originate DialString")
        if self._is_customer(group, e.dest_uniqueid):
            self._advance(group, CallState.DIALLING, now, "DialBegin")
        return []

    def _find_dial(self, group: CallGroup, e: ev.DialEvent) -> DialLeg | None:
        for dial in reversed(group.dials):
            if dial.dest == e.dest_uniqueid and dial.caller == e.uniqueid:
                return dial
        return None

    def _on_dial_state(self, e: ev.DialState, now: float | None) -> list[CallResult]:
        group = self._groups.get(e.dest_linkedid)
        if group is None:
            return []
        if e.dial_status in ("RINGING", "PROGRESS", "PROCEEDING"):
            dial = self._find_dial(group, e)
            if dial is not None:
                dial.ringing = True
            if self._is_customer(group, e.dest_uniqueid):
                self._advance(group, CallState.RINGING, now, f"DialState {e.dial_status}")
        return []

    def _on_dial_end(self, e: ev.DialEnd, now: float | None) -> list[CallResult]:
        group = self._groups.get(e.dest_linkedid)
        if group is None:
            return []
        dial = self._find_dial(group, e)
        if dial is None:  # DialBegin lost (e.g. before a reconnect)
            self._channel(group, e.dest_uniqueid, e.dest_channel, now)
            dial = DialLeg(e.uniqueid, e.dest_uniqueid, e.dial_string, None)
            group.dials.append(dial)
        dial.status = e.dial_status
        dial.end_at = now
        if e.dial_status == "ANSWER" and self._is_customer(group, e.dest_uniqueid):
            self._advance(group, CallState.ANSWERED, now, "DialEnd ANSWER")
        return []

    def _on_bridge_enter(self, e: ev.BridgeEnter, now: float | None) -> list[CallResult]:
        group = self._group_for(e.linkedid, now)
        if group is None:
            return []
        chan = self._channel(group, e.uniqueid, e.channel, now)
        if chan.bridged_at is None:
            chan.bridged_at = now
        if self.publish is not None and not group.bridge_published:
            group.bridge_published = True
            # The linkedid is the attempt id (the Originate's ChannelId) on every channel.
            self.publish(CallBridged(self.server, group.linkedid))
        if self._is_customer(group, e.uniqueid):
            self._advance(group, CallState.BRIDGED, now, "BridgeEnter")
        return []

    def _on_hangup_request(
        self, e: ev.HangupRequest | ev.SoftHangupRequest, now: float | None
    ) -> list[CallResult]:
        group = self._group_for(e.linkedid, now)
        if group is None:
            return []
        chan = self._channel(group, e.uniqueid, e.channel, now)
        if group.first_request is None and not chan.hung_up:
            group.first_request = (e.uniqueid, isinstance(e, ev.SoftHangupRequest))
        if e.tech_cause is not None:
            chan.request_tech_cause = e.tech_cause
        return []

    def _on_hangup(self, e: ev.Hangup, now: float | None) -> list[CallResult]:
        group = self._group_for(e.linkedid, now)
        if group is None:
            return []
        chan = self._channel(group, e.uniqueid, e.channel, now)
        if chan.hung_up:
            return []
        chan.hung_up = True
        chan.hangup_at = now
        if group.first_request is None:
            group.first_request = (e.uniqueid, True)
        chan.cause = e.cause
        chan.cause_txt = e.cause_txt
        chan.tech_cause = e.tech_cause
        group.live -= 1
        return self._maybe_finish(group, now)

    def _on_varset(self, e: ev.VarSet, now: float | None) -> list[CallResult]:
        variable = e.variable
        if variable not in self._watched_vars:
            return []
        group = self._group_for(e.linkedid, now)
        if group is None:
            return []
        self._channel(group, e.uniqueid, e.channel, now)
        if variable == "MIXMONITOR_FILENAME":
            if (
                self.publish is not None
                and group.attempt is not None  # one of this dialer's calls
                and e.value
                and e.value != group.recording
            ):
                self.publish(RecordingNamed(group.linkedid, e.value))
            group.recording = e.value or group.recording
        elif variable == "PLAYBACKSTATUS":
            group.playback_status.pop(e.uniqueid, None)  # the latest last
            group.playback_status[e.uniqueid] = e.value
        elif variable == self.attempt_variable:
            if group.attempt is None and e.value:
                attempt = self._attempts.get(e.value) or self._discover(e.value, now)
                if attempt is not None and attempt.group is None:
                    self._bind(group, attempt, f"VarSet {variable}")
        elif variable == "SEAT":
            group.seat_var = e.value or group.seat_var
            self._complete_discovered(group)
        elif variable == "NUMBER":
            group.number_var = e.value or group.number_var
            self._complete_discovered(group)
        return []

    def _on_user_event(self, e: ev.UserEvent, now: float | None) -> list[CallResult]:
        if e.user_event == POOL_ANSWERED_EVENT:
            self._pool_answered(e)
            return []
        key = e.get("Key")
        if key and e.linkedid:
            group = self._groups.get(e.linkedid)
            if group is not None and group.user_key is None:
                group.user_key = key
                self._key_read(group, key, e, now)
        return []

    def _pool_answered(self, e: ev.UserEvent) -> None:
        group = self._groups.get(e.linkedid or "")
        attempt = group.attempt if group is not None else None
        if self.publish is None or attempt is None or e.channel is None:
            return
        self.publish(CustomerWaiting(self.server, attempt.attempt_id, e.channel))

    def _key_read(self, group: CallGroup, key: str, e: ev.UserEvent, now: float | None) -> None:
        attempt = group.attempt
        if self.on_key is None or attempt is None or e.channel is None or e.uniqueid is None:
            return
        chan = group.channels.get(e.uniqueid)
        if chan is None or chan.hung_up:
            return  # nobody left to connect
        press = KeyPress(attempt.attempt_id, key, e.channel, e.uniqueid, attempt.mode, now)
        try:
            self.on_key(press)
        except Exception:
            log.exception("attempt %s: on_key hook failed", attempt.attempt_id)

    def _on_dtmf_end(self, e: ev.DTMFEnd, now: float | None) -> list[CallResult]:
        if e.direction == "Received":
            group = self._group_for(e.linkedid, now)
            if group is not None:
                self._channel(group, e.uniqueid, e.channel, now).dtmf_received.append(e.digit)
        return []

    def _on_cdr(self, e: ev.Cdr, now: float | None) -> list[CallResult]:
        group = self._by_uniqueid.get(e.uniqueid)
        if group is None:
            if e.uniqueid in self._finished:
                return []
            # A Cdr may come before its channel's Newchannel; keep it for a while.
            self._orphan_cdrs[e.uniqueid] = e
            if len(self._orphan_cdrs) > 10_000:
                del self._orphan_cdrs[next(iter(self._orphan_cdrs))]
            return []
        chan = group.channels[e.uniqueid]
        # A failed seat-first Dial gives the seat two Cdrs (the Dial, then ANSWERED for the
        # originate leg): the first non-ANSWERED one is the informative one.
        if chan.cdr_disposition is None or chan.cdr_disposition == "ANSWERED":
            chan.cdr_disposition = e.disposition
        if e.billable_seconds is not None:
            chan.billable_seconds = max(chan.billable_seconds or 0, e.billable_seconds)
        return []


__all__ = ["EventHandlers"]
