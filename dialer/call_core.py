"""The call tracker's core (no I/O): the state it holds and the moves every part of it
shares: finding a call group and its channels, binding a group to its attempt, moving the
call's state forward, finishing an attempt into a `CallResult`. The event handlers
(`dialer.call_handlers`) and the OriginateResponse binding (`dialer.call_binding`) build on
it; `dialer.calls.CallTracker` is the whole."""

from __future__ import annotations

import logging
from collections.abc import Callable

from dialer.ami import events as ev
from dialer.call_groups import (
    CallChannel,
    CallGroup,
    TrackedAttempt,
    customer_ids,
    dial_string_of,
    group_state,
)
from dialer.call_outcome import RANK, CallResult, CallState, KeyPress, Mode, Outcome
from dialer.call_results import call_result

# The tracker is one thing to an operator: its parts log as `dialer.calls`.
log = logging.getLogger("dialer.calls")


class TrackerCore:
    early_hangup_seconds: float
    publish: Callable[[object], None] | None
    server: str
    on_key: Callable[[KeyPress], None] | None
    attempt_variable: str
    discover_unregistered: bool
    response_grace_seconds: float
    forget_after_seconds: float
    _attempts: dict[str, TrackedAttempt]
    _groups: dict[str, CallGroup]
    _by_uniqueid: dict[str, CallGroup]
    _link_wanted: dict[str, TrackedAttempt]  # linkedid -> attempt, before the group exists
    _finished: dict[str, float | None]  # linkedids and attempt ids already reported
    _orphan_cdrs: dict[str, ev.Cdr]
    _hangup_channels: dict[str, None]  # channel names, oldest first
    _failed_unmatched: dict[str, TrackedAttempt]  # Failure seen, channel not yet known
    _by_dial_string: dict[str, list[TrackedAttempt]]  # registered, not bound yet
    _watched_vars: set[str]

    # -- groups and channels ------------------------------------------------------------------

    def _group_for(self, linkedid: str, now: float | None) -> CallGroup | None:
        group = self._groups.get(linkedid)
        if group is None:
            if linkedid in self._finished:
                return None  # a late event of a call already reported
            group = CallGroup(linkedid=linkedid, created_at=now)
            self._groups[linkedid] = group
            attempt = self._link_wanted.pop(linkedid, None)
            if attempt is not None:
                self._bind(group, attempt, "linkedid")
        return group

    def _channel(
        self, group: CallGroup, uniqueid: str, name: str, now: float | None
    ) -> CallChannel:
        chan = group.channels.get(uniqueid)
        if chan is None:
            chan = CallChannel(uniqueid=uniqueid, name=name, first_seen=now)
            group.channels[uniqueid] = chan
            group.by_name[name] = uniqueid
            group.live += 1
            self._by_uniqueid[uniqueid] = group
            cdr = self._orphan_cdrs.pop(uniqueid, None)
            if cdr is not None:
                chan.cdr_disposition = cdr.disposition
                chan.billable_seconds = cdr.billable_seconds
            if uniqueid == group.linkedid and group.attempt is None and self._by_dial_string:
                self._claim_by_dial_string(group, dial_string_of(name), "originated channel name")
        return chan

    # -- binding a call to its attempt ----------------------------------------------------

    def _unclaim(self, attempt: TrackedAttempt) -> None:
        if attempt.dial_string is None:
            return
        waiting = self._by_dial_string.get(attempt.dial_string)
        if waiting is not None and attempt in waiting:
            waiting.remove(attempt)
            if not waiting:
                del self._by_dial_string[attempt.dial_string]

    def _claim_by_dial_string(self, group: CallGroup, dial_string: str, how: str) -> None:
        """Bind a new call to the one registered attempt that dialled this dial string (the
        dialer never has one seat or one number in two calls at once); if two could match,
        wait for the OriginateResponse instead of guessing."""
        waiting = self._by_dial_string.get(dial_string)
        if waiting is not None and len(waiting) == 1:
            self._bind(group, waiting[0], how)

    def _bind(self, group: CallGroup, attempt: TrackedAttempt, how: str) -> None:
        group.attempt = attempt
        attempt.group = group
        self._failed_unmatched.pop(attempt.attempt_id, None)
        self._unclaim(attempt)
        self._complete_discovered(group)
        log.info("attempt %s: bound to linkedid %s by %s", attempt.attempt_id, group.linkedid, how)
        self._rebuild_state(group, attempt.last_activity, "facts so far")

    def _complete_discovered(self, group: CallGroup) -> None:
        """Fill in what an attempt nobody registered left unknown, from its variables."""
        attempt = group.attempt
        if attempt is None or not attempt.discovered:
            return
        if group.seat_var and not attempt.seat:
            attempt.seat = group.seat_var
        if group.seat_var and (
            attempt.mode is None or (attempt.mode is Mode.APPLICATION and group.user_key is None)
        ):
            # SEAT set after a key was read is a hand-over to a seat (dialer.transfer): the
            # call stays an application call.
            attempt.mode = Mode.CUSTOMER_FIRST
        if group.number_var and not attempt.number:
            attempt.number = group.number_var

    def _claim_for_failed(self, group: CallGroup, dial_string: str | None) -> None:
        """Bind a new originate dial to an OriginateResponse Failure that came first."""
        if dial_string is None:
            return
        for attempt in self._failed_unmatched.values():
            resource = attempt.dial_string or ""
            resource = resource.split("/", 1)[1] if "/" in resource else resource
            if resource == dial_string:
                del self._failed_unmatched[attempt.attempt_id]
                self._bind(group, attempt, "originate DialString")
                return

    def _discover(self, attempt_id: str, now: float | None) -> TrackedAttempt | None:
        if not self.discover_unregistered or attempt_id in self._finished:
            return None
        attempt = TrackedAttempt(
            attempt_id=attempt_id,
            mode=None,
            seat=None,
            number=None,
            started_at=None,
            discovered=True,
            last_activity=now,
        )
        self._attempts[attempt_id] = attempt
        log.info("attempt %s: discovered from events", attempt_id)
        return attempt

    # -- state ----------------------------------------------------------------------------

    def _rebuild_state(self, group: CallGroup, now: float | None, why: str) -> None:
        """The state from the facts so far, once the flow (so the customer leg) is known."""
        self._advance(group, group_state(group), now, why)

    def _is_customer(self, group: CallGroup, uniqueid: str) -> bool:
        return uniqueid in customer_ids(group)

    def _advance(self, group: CallGroup, state: CallState, now: float | None, why: str) -> None:
        if RANK[state] <= RANK[group.state]:
            return  # events arrive out of order; states only move forward
        old = group.state
        group.state = state
        attempt = group.attempt
        if attempt is not None:
            attempt.state = state
            attempt.last_activity = now
            log.info("attempt %s: %s -> %s (%s)", attempt.attempt_id, old, state, why)
        else:
            log.info(
                "call linkedid %s (no attempt yet): %s -> %s (%s)", group.linkedid, old, state, why
            )

    # -- finishing ----------------------------------------------------------------------------

    def _maybe_finish(self, group: CallGroup, now: float | None) -> list[CallResult]:
        if group.live > 0 or not group.channels:
            return []
        if group.ended_at is None:
            group.ended_at = now
        attempt = group.attempt
        if attempt is None:
            return []  # wait for an OriginateResponse to say whose it was (or `expire`)
        if attempt.expect_response and attempt.or_response is None and attempt.sync_error is None:
            attempt.ended_at = now
            return []  # the OriginateResponse may still explain it (Reason 3 vs cause 19)
        return [self._finish(attempt, group, now)]

    def _finish(
        self,
        attempt: TrackedAttempt,
        group: CallGroup | None,
        now: float | None,
        lost: bool = False,
    ) -> CallResult:
        result = self._result(attempt, group, now, lost)
        self._attempts.pop(attempt.attempt_id, None)
        self._failed_unmatched.pop(attempt.attempt_id, None)
        self._unclaim(attempt)
        wanted = attempt.wanted_link
        if wanted is not None and self._link_wanted.get(wanted) is attempt:
            del self._link_wanted[wanted]
        self._finished[attempt.attempt_id] = now
        if group is not None:
            self._drop_group(group, now)
        final = CallState.FAILED if result.outcome == Outcome.FAILED else CallState.ENDED
        if lost:
            final = CallState.UNKNOWN
        log.info(
            "attempt %s: %s -> %s, outcome %s (cause %s, tech cause %s, dial status %s)",
            attempt.attempt_id,
            attempt.state,
            final,
            result.outcome,
            result.cause,
            result.tech_cause,
            result.dial_status,
        )
        attempt.state = final
        return result

    def _drop_group(self, group: CallGroup, now: float | None) -> None:
        self._groups.pop(group.linkedid, None)
        self._finished[group.linkedid] = now
        for uid in group.channels:
            self._by_uniqueid.pop(uid, None)
            self._finished[uid] = now  # a Cdr may still come after the last Hangup
        if len(self._finished) > 100_000:
            for key in list(self._finished)[:10_000]:
                del self._finished[key]

    def _result(
        self, attempt: TrackedAttempt | None, group: CallGroup | None, now: float | None, lost: bool
    ) -> CallResult:
        return call_result(
            attempt,
            group,
            now,
            lost,
            hangup_channels=self._hangup_channels,
            early_hangup_seconds=self.early_hangup_seconds,
        )


__all__ = ["TrackerCore"]
