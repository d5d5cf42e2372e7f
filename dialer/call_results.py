"""The final word on one attempt (`CallResult`), read from its call group's accumulated facts
(no I/O): the customer's legs, the causes, who answered and when, the ring and talk times,
the seat a customer was handed to, who hung up; then the outcome from the pure
classification (`dialer.call_outcome.explain`)."""

from __future__ import annotations

from dataclasses import dataclass

from dialer.call_groups import CallChannel, CallGroup, TrackedAttempt, customer_ids, dial_string_of
from dialer.call_outcome import CallFacts, CallResult, Mode, Party, explain, hangup_party


@dataclass(slots=True)
class _Legs:
    """The customer's side of a call group."""

    customer: list[CallChannel]
    uids: set[str]
    dial_status: str | None
    dial_begin: float | None
    dial_end: float | None
    answered: bool
    answered_at: float | None
    bridged: bool
    end: float | None  # the first customer channel's hang-up


def _legs(group: CallGroup | None) -> _Legs:
    customer: list[CallChannel] = []
    dial_status: str | None = None
    dial_begin: float | None = None
    dial_end: float | None = None
    if group is not None:
        ids = customer_ids(group)
        customer = [group.channels[uid] for uid in ids if uid in group.channels]
        for dial in group.dials:
            if dial.dest in ids and (dial.status is not None or dial_status is None):
                dial_status = dial.status or dial_status
                dial_begin = dial.begin_at if dial_begin is None else dial_begin
                dial_end = dial.end_at or dial_end
    ups = [c.up_at for c in customer if c.up_at is not None]
    answered_at = min(ups) if ups else None
    answered = bool(ups) or dial_status == "ANSWER" or any(c.bridged_at for c in customer)
    if answered and answered_at is None and dial_status == "ANSWER":
        answered_at = dial_end
    ends = [c.hangup_at for c in customer if c.hangup_at is not None]
    return _Legs(
        customer=customer,
        uids={ch.uniqueid for ch in customer},
        dial_status=dial_status,
        dial_begin=dial_begin,
        dial_end=dial_end,
        answered=answered,
        answered_at=answered_at,
        bridged=any(c.bridged_at is not None for c in customer),
        end=min(ends) if ends else None,
    )


def _causes(customer: list[CallChannel]) -> tuple[int | None, str | None, int | None]:
    """(cause, its text, SIP code). The half that ran Busy()/Hangup(N) has the real cause;
    the other says 0."""
    cause: int | None = None
    cause_txt: str | None = None
    tech_cause: int | None = None
    for chan in sorted(customer, key=lambda c: c.name.endswith(";2"), reverse=True):
        if chan.cause is not None and (cause is None or (cause == 0 and chan.cause != 0)):
            cause, cause_txt = chan.cause, chan.cause_txt
        tech = chan.tech_cause if chan.tech_cause is not None else chan.request_tech_cause
        if tech is not None and tech_cause is None:
            tech_cause = tech
    return cause, cause_txt, tech_cause


def _connected_seat(group: CallGroup | None, legs: _Legs, mode: Mode | None) -> str | None:
    """The seat the customer was bridged with when the seat was not the originated side."""
    if not legs.bridged or mode is Mode.SEAT_FIRST or group is None:
        return None
    peers = [
        c for uid, c in group.channels.items() if uid not in legs.uids and c.bridged_at is not None
    ]
    if not peers:
        return None
    return dial_string_of(min(peers, key=lambda c: c.bridged_at or 0.0).name)


def _hung_up_by(group: CallGroup | None, legs: _Legs) -> Party | None:
    request = group.first_request if group is not None else None
    if request is None or group is None or request[0] not in group.channels:
        return None
    uid, soft = request
    return hangup_party(group.channels[uid].name, soft, uid in legs.uids)


def _ring_seconds(legs: _Legs) -> float | None:
    starts = [c.first_seen for c in legs.customer if c.first_seen is not None]
    if legs.dial_begin is not None:
        starts.append(legs.dial_begin)
    ring_start = min(starts) if starts else None
    if legs.answered:
        ring_end = legs.answered_at
    else:
        ring_end = legs.end if legs.end is not None else legs.dial_end
    if ring_start is None or ring_end is None:
        return None
    return max(0.0, ring_end - ring_start)


def _talk_seconds(legs: _Legs, handed_over: bool) -> float | None:
    bridged_ats = [c.bridged_at for c in legs.customer if c.bridged_at is not None]
    if handed_over and bridged_ats and legs.end is not None:
        # The conversation with the specialist, not the recorded menu before it.
        return max(0.0, legs.end - min(bridged_ats))
    if not legs.answered:
        return None
    if legs.answered_at is not None and legs.end is not None:
        return max(0.0, legs.end - legs.answered_at)
    billed = [c.billable_seconds for c in legs.customer if c.billable_seconds is not None]
    return float(max(billed)) if billed else None


def _last_playback(group: CallGroup | None, customer_uids: set[str]) -> str | None:
    if group is None:
        return None
    statuses = [v for uid, v in group.playback_status.items() if uid in customer_uids]
    return statuses[-1] if statuses else None


def _hung_up_by_action(
    attempt: TrackedAttempt | None, channels: tuple[str, ...], hangup_channels: dict[str, None]
) -> bool:
    """The dialer asked for the hang-up (`CallTracker.note_hangup_action`); the channels'
    names are forgotten with the call."""
    asked = (attempt is not None and attempt.hangup_requested) or any(
        name in hangup_channels for name in channels
    )
    for name in channels:
        hangup_channels.pop(name, None)
    return asked


def _facts(
    attempt: TrackedAttempt | None,
    group: CallGroup | None,
    legs: _Legs,
    causes: tuple[int | None, str | None, int | None],
    talk_seconds: float | None,
    *,
    point: bool,
    hung_up_by_action: bool,
    lost: bool,
) -> CallFacts:
    """The input of the classification. `point`: the call was an automatic call's message
    and no key was read, so its playback status counts (a customer-first apology or a
    goodbye after a key must not turn an abandoned or confirmed call into a failure)."""
    return CallFacts(
        originate_response=attempt.or_response if attempt else None,
        originate_reason=attempt.or_reason if attempt else None,
        sync_error=attempt.sync_error if attempt else None,
        customer_dialled=bool(legs.customer),
        answered=legs.answered,
        cause=causes[0],
        tech_cause=causes[2],
        dial_status=legs.dial_status,
        cdr_disposition=next((c.cdr_disposition for c in legs.customer if c.cdr_disposition), None),
        talk_seconds=talk_seconds,
        hung_up_by=_hung_up_by(group, legs),
        playback_status=_last_playback(group, legs.uids) if point else None,
        hung_up_by_action=hung_up_by_action,
        lost=lost,
    )


def call_result(
    attempt: TrackedAttempt | None,
    group: CallGroup | None,
    now: float | None,
    lost: bool,
    *,
    hangup_channels: dict[str, None],
    early_hangup_seconds: float,
) -> CallResult:
    legs = _legs(group)
    mode = attempt.mode if attempt is not None else None
    connected_seat = _connected_seat(group, legs, mode)
    handed_over = mode is Mode.APPLICATION and connected_seat is not None
    talk_seconds = _talk_seconds(legs, handed_over)
    digits = "".join(d for c in legs.customer for d in c.dtmf_received)
    key = group.user_key if group is not None and group.user_key else (digits[:1] or None)
    channels = () if group is None else tuple(c.name for c in group.channels.values())
    causes = _causes(legs.customer)
    facts = _facts(
        attempt,
        group,
        legs,
        causes,
        talk_seconds,
        point=mode is Mode.APPLICATION and key is None and not handed_over,
        hung_up_by_action=_hung_up_by_action(attempt, channels, hangup_channels),
        lost=lost,
    )
    outcome, why = explain(facts, early_hangup_seconds)
    if handed_over:
        why += f"; key {key}, connected to seat {connected_seat}"
    return CallResult(
        attempt_id=attempt.attempt_id if attempt else None,
        seat=attempt.seat if attempt else None,
        number=attempt.number if attempt else None,
        mode=mode,
        outcome=outcome,
        cause=facts.cause,
        cause_txt=causes[1],
        tech_cause=facts.tech_cause,
        dial_status=legs.dial_status,
        originate_response=facts.originate_response,
        originate_reason=facts.originate_reason,
        answered=legs.answered,
        bridged=legs.bridged,
        ring_seconds=_ring_seconds(legs),
        talk_seconds=talk_seconds,
        key_pressed=key,
        digits=digits,
        recording=group.recording if group is not None else None,
        linkedid=group.linkedid if group is not None else None,
        uniqueids=() if group is None else tuple(group.channels),
        channels=channels,
        started_at=attempt.started_at if attempt else (group.created_at if group else None),
        ended_at=group.ended_at if group is not None and group.ended_at is not None else now,
        error=attempt.sync_error if attempt else None,
        why=why,
        connected_seat=connected_seat,
        facts=facts,
    )


__all__ = ["call_result"]
