"""The call tracker's OriginateResponse binding (no I/O): an OriginateResponse names the
attempt (its ActionID) and, on success, the call (its Uniqueid is the Linkedid); a Failure
names only the dial string, matched against calls nobody has claimed yet. Attempts nobody
registered (a replay) are discovered from it."""

from __future__ import annotations

import logging

from dialer.ami import events as ev
from dialer.call_core import TrackerCore
from dialer.call_groups import CallGroup, TrackedAttempt, dial_string_of, infer_mode, resource
from dialer.call_outcome import CallResult, Mode

# The tracker is one thing to an operator: its parts log as `dialer.calls`.
log = logging.getLogger("dialer.calls")


class OriginateBinding(TrackerCore):
    def _on_originate_response(
        self, e: ev.OriginateResponse, now: float | None
    ) -> list[CallResult]:
        attempt = self._responding(e, now)
        if attempt is None or attempt.or_response is not None:
            return []
        if attempt.discovered:
            self._learn_from_response(attempt, e)
        attempt.or_response = e.response
        attempt.or_reason = e.reason
        attempt.or_at = now
        attempt.last_activity = now
        if attempt.dial_string is None and not e.success:
            attempt.dial_string = e.channel
        log.info(
            "attempt %s: OriginateResponse %s reason %s uniqueid %s",
            attempt.attempt_id,
            e.response,
            e.reason,
            e.uniqueid,
        )
        if (
            attempt.group is not None
            and e.uniqueid is not None
            and attempt.group.linkedid != e.uniqueid
        ):
            log.warning(
                "attempt %s: was bound to linkedid %s but its OriginateResponse says %s",
                attempt.attempt_id,
                attempt.group.linkedid,
                e.uniqueid,
            )
            attempt.group.attempt = None
            attempt.group = None
        if attempt.group is None and not self._bind_from_response(attempt, e):
            return []
        if attempt.group is not None:
            return self._maybe_finish(attempt.group, now)
        if not e.success:
            if self._open_unclaimed(e.channel):
                # A channel of the same technology nobody has claimed yet may be this one
                # (a PJSIP channel is named after the endpoint, not the number): wait for
                # its ATTEMPT_ID variable or the originate's DialBegin to tell.
                self._failed_unmatched[attempt.attempt_id] = attempt
                return []
            return [self._finish(attempt, None, now)]  # no channel was ever created
        return []

    def _responding(self, e: ev.OriginateResponse, now: float | None) -> TrackedAttempt | None:
        """The attempt the response is for (its ActionID), discovered if nobody registered
        it; None for a late response of an attempt already reported."""
        if e.action_id is None:
            return None
        attempt = self._attempts.get(e.action_id)
        if attempt is None:
            if e.action_id in self._finished:
                return None
            attempt = self._discover(e.action_id, now)
        return attempt

    def _bind_from_response(self, attempt: TrackedAttempt, e: ev.OriginateResponse) -> bool:
        """Bind the attempt to the call the response names (its Uniqueid is the Linkedid;
        a Failure names only the dial string). False: the call was already reported."""
        group: CallGroup | None = None
        if e.uniqueid is not None:
            group = self._groups.get(e.uniqueid)
            if group is None:
                if e.uniqueid in self._finished:
                    return False
                self._link_wanted[e.uniqueid] = attempt
                attempt.wanted_link = e.uniqueid
        else:
            group = self._match_failed_originate(e.channel)
        if group is not None and group.attempt is not None and e.uniqueid is not None:
            # The OriginateResponse is authoritative over a guess by dial string.
            other = group.attempt
            log.warning(
                "attempt %s: linkedid %s was taken by attempt %s; giving it back",
                attempt.attempt_id,
                group.linkedid,
                other.attempt_id,
            )
            other.group = None
            group.attempt = None
            if other.dial_string and other.channel_id is None:
                self._by_dial_string.setdefault(other.dial_string, []).append(other)
        if group is not None and group.attempt is None:
            self._bind(group, attempt, "OriginateResponse")
        return True

    def _open_unclaimed(self, dial_string: str) -> bool:
        tech = dial_string.split("/", 1)[0] + "/"
        for group in self._groups.values():
            if group.attempt is None and group.live > 0:
                root = group.channels.get(group.linkedid)
                if root is None or root.name.startswith(tech):
                    return True
        return False

    def _match_failed_originate(self, dial_string: str) -> CallGroup | None:
        prefix = dial_string + "-"
        resource = dial_string.split("/", 1)[1] if "/" in dial_string else dial_string
        for group in self._groups.values():  # oldest first
            if group.attempt is not None:
                continue
            root = group.channels.get(group.linkedid)
            if root is not None and root.name.startswith(prefix):
                return group
            for dial in group.dials:
                if dial.caller is None and dial.dial_string == resource:
                    return group
        return None

    def _learn_from_response(self, attempt: TrackedAttempt, response: ev.OriginateResponse) -> None:
        dial_string = response.channel if not response.success else dial_string_of(response.channel)
        attempt.dial_string = attempt.dial_string or dial_string
        mode = infer_mode(response.exten, response.application)
        if attempt.mode is None or (attempt.mode == Mode.APPLICATION and mode != Mode.APPLICATION):
            attempt.mode = mode
        if mode == Mode.SEAT_FIRST:
            attempt.seat = attempt.seat or resource(dial_string)
            attempt.number = attempt.number or response.exten
        else:
            attempt.number = attempt.number or resource(dial_string)
        if attempt.group is not None:
            self._complete_discovered(attempt.group)


__all__ = ["OriginateBinding"]
