"""The dialer's configuration, its port to Asterisk (`AmiLink`) and the state of calls in
flight (`LiveCall`, `PbxServer`), shared by the engine's units."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from common.clock import Clock
from dialer import prompts
from dialer.ami.connection import Reply
from dialer.ami.protocol import HeaderValue
from dialer.ami.supervisor import AmiConfig, AmiSupervisor
from dialer.calls import CallResult, CallTracker, Mode, Outcome
from dialer.decisions import Finished
from dialer.models import (
    DialMode,
)
from dialer.originate import DialPlan
from dialer.outcomes import ABANDONED, ANSWERED_OUTCOMES
from dialer.pacing import TrunkLimiter
from dialer.predictive import LEGAL_MAX_ABANDON
from dialer.readcheck import ReadCheck
from schedules.retry import DAILY_CALLS_PER_NUMBER
from schedules.windows import MIN_RING

log = logging.getLogger(__name__)


# -- configuration and ports -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AmiServerSpec:
    """One Asterisk this engine owns."""

    name: str
    config: AmiConfig
    plan: DialPlan = field(default_factory=DialPlan)


@dataclass(frozen=True, slots=True)
class DialerConfig:
    wrap_up_seconds: float = 15.0
    # From the Originate to the customer's phone ringing (the seat answers, the dialplan
    # starts its Dial: ~20 ms in the PJSIP traces): kept off the ring time near a window's end.
    last_call_margin: float = 1.0
    # A call rings for the dial plan's ring time, cut to what is left of its window (less the
    # margin), and none starts with less than this to ring (schedules.windows.ring_time).
    min_ring_seconds: float = MIN_RING.total_seconds()
    idle_recheck_seconds: float = 60.0  # a ready seat with nothing to dial looks again
    claim_batch: int = 20
    claim_parallelism: int = 8
    # Claim a seat's next lead while it wraps up, so "ready" goes straight to the Originate.
    preclaim: bool = True
    action_timeout: float = 10.0
    automatic_tick_seconds: float = 2.0
    housekeeping_seconds: float = 5.0
    originate_lost_seconds: float = 120.0  # nothing heard of an Originate: fate unknown
    # A ringing call cancelled with cause 16 waits this long for the PBX to go down (its
    # `Shutdown` follows the calls it cut): then it was the PBX's doing (dialer.shutdown).
    # Below the 1.1 s a graceful stop waits after the last call.
    pbx_cut_grace_seconds: float = 1.0
    # Calls per number per local day, every campaign together (None: no cap). The claim
    # query decides it (dialer.queues), for specialists' and automatic campaigns alike.
    daily_calls_per_number: int | None = DAILY_CALLS_PER_NUMBER
    reminder_message: str = prompts.RENEWAL_REMINDER  # the reminder campaign's default
    legal_max_abandon: float = LEGAL_MAX_ABANDON  # no campaign's abandon cap above it
    result_writers: int = 4
    result_batch: int = 100  # results per transaction (fewer commits; SQLite holds its lock longer)
    # A result the database cannot take (restarting, unreachable) is kept and written again
    # after this, doubled each time up to the max (docs/reliability.md).
    database_retry_seconds: float = 1.0
    database_retry_max_seconds: float = 10.0
    # Seat states, transitions and "sent" marks are written at most this often (one
    # transaction for all that changed meanwhile); a specialist's own action at once.
    seat_store_seconds: float = 0.5
    seat_servers: Mapping[str, str] = field(default_factory=dict)  # seat device -> server


class AmiLink(Protocol):
    """What the engine needs of an AMI connection (AmiSupervisor satisfies it)."""

    @property
    def connected(self) -> bool: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(
        self,
        action: str,
        headers: Mapping[str, HeaderValue] | None = None,
        *,
        action_id: str | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> Reply: ...


EventCallback = Callable[[Any], object]
ResyncCallback = Callable[[Sequence[Any]], Awaitable[None]]
LinkFactory = Callable[[AmiServerSpec, Clock, EventCallback, ResyncCallback], AmiLink]


def supervisor_link(
    spec: AmiServerSpec, clock: Clock, on_event: EventCallback, on_resync: ResyncCallback
) -> AmiLink:
    return AmiSupervisor(
        spec.config, clock=clock, on_event=on_event, on_resync=on_resync, name=spec.name
    )


@dataclass(frozen=True, slots=True)
class AttemptEnded:
    """Passed to the optional in-memory `on_attempt_ended` hook. Recordings do not use it: they
    take the durable `attempt.recording` outbox message that `record_result` commits."""

    attempt_id: str
    lead_id: int
    specialist_id: int | None
    seat: str | None
    outcome: str
    ended_at: datetime
    talk_seconds: float | None
    recording: str | None
    ami_server: str


AttemptEndedHook = Callable[[AttemptEnded], Awaitable[None]]


@dataclass(slots=True)
class LiveCall:
    """An attempt in flight, as this process knows it."""

    attempt_id: str
    lead_id: int
    number: str
    tz: str
    kind: str  # campaign kind, for the calling window
    mode: str
    server: str
    campaign_id: int | None
    specialist_id: int | None = None
    seat: str | None = None
    trunk: str | None = None
    admitted: bool = False  # holds a trunk slot
    answered: bool = False
    recording: str | None = None  # MIXMONITOR_FILENAME, stored on the attempt when heard
    # The specialist who owns the customer (the lead's or its policy's owner): the key-2
    # hand-over offers the call to their seat first.
    owner_id: int | None = None
    # The specialist whose seat a supervisor moved the call to (`dialer.takeover`): the seat
    # that has the call now. `specialist_id` stays the attempt's (whose lead it is).
    moved_to: int | None = None


class PbxServer:
    def __init__(self, spec: AmiServerSpec) -> None:
        self.spec = spec
        self.tracker = CallTracker()
        self.read_check = ReadCheck(spec.name, spec.config.username)
        self.link: AmiLink | None = None
        self.trunks: dict[str, TrunkLimiter] = {}
        # Asterisk said it is shutting down (an action refused so, or `Event: Shutdown`): no
        # new call on it until the link is re-established (`_on_resync`).
        self.refusing = False
        self.going = False  # `Event: Shutdown` seen: it is ending what is left
        self.links = 0  # (re)connections so far: a change means the link dropped meanwhile

    @property
    def usable(self) -> bool:
        """Connected, and Asterisk takes new calls."""
        return self.link is not None and self.link.connected and not self.refusing

    def trunk(self, name: str, max_calls: int, max_cps: float) -> TrunkLimiter:
        """The trunk's limiter. One object per trunk for good (callers waiting on it must see
        every release); campaigns sharing a trunk should agree on its limits, the last one
        applied wins."""
        t = self.trunks.get(name)
        if t is None:
            t = self.trunks[name] = TrunkLimiter(max_calls, max_cps)
        elif t.max_calls != max_calls or t.max_cps != max_cps:
            t.max_calls = max_calls
            t.max_cps = max_cps
            t.bucket.rate = max_cps
        return t


TRACKER_MODE = {
    DialMode.SEAT_FIRST.value: Mode.SEAT_FIRST,
    DialMode.PREVIEW.value: Mode.SEAT_FIRST,
    DialMode.CUSTOMER_FIRST.value: Mode.CUSTOMER_FIRST,
    DialMode.AUTOMATIC.value: Mode.APPLICATION,
}


def finished_from(result: CallResult, live: LiveCall) -> Finished:
    outcome = result.outcome.value
    if (
        live.mode == DialMode.CUSTOMER_FIRST.value
        and result.answered
        and not result.bridged
        and outcome in ANSWERED_OUTCOMES
    ):
        outcome = ABANDONED
    unknown = result.outcome is Outcome.UNKNOWN
    return Finished(
        attempt_id=live.attempt_id,
        outcome=outcome,
        answered=result.answered,
        bridged=result.bridged,
        cause=result.cause,
        tech_cause=result.tech_cause,
        dial_status=result.dial_status,
        ring_seconds=result.ring_seconds,
        talk_seconds=result.talk_seconds,
        key_pressed=result.key_pressed,
        # A tracker rebuilt after a restart never heard the VarSet: the stored name stands in.
        recording=result.recording or live.recording,
        unknown=unknown,
        specialist_id=live.specialist_id,
        seat=result.connected_seat or live.seat,
        reason=result.error if unknown else None,
    )


__all__ = [
    "TRACKER_MODE",
    "AmiLink",
    "AmiServerSpec",
    "AttemptEnded",
    "AttemptEndedHook",
    "DialerConfig",
    "LinkFactory",
    "LiveCall",
    "PbxServer",
    "finished_from",
    "supervisor_link",
]
