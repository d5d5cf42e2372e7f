"""The dialer's domain events and commands: frozen dataclasses carried by the message bus
(`dialer.messagebus`). Events name what happened; the units that care subscribe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dialer.calls import CallResult
    from dialer.campaigns import CampaignInfo
    from dialer.decisions import Finished
    from dialer.results import Effects
    from dialer.seats import Transition
    from dialer.state import LiveCall


@dataclass(frozen=True, slots=True)
class SeatChanged:
    """A seat went through the state machine (`dialer.seats`); `transition` carries the
    attempt id. The seat store persists it and logs the transition."""

    specialist_id: int
    transition: Transition


@dataclass(frozen=True, slots=True)
class OriginateSent:
    """The Originate left for Asterisk: the attempt is `sent` from now on."""

    attempt_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class RecordingNamed:
    """MIXMONITOR_FILENAME was heard for the attempt: stored at once, so that a call cut off
    by a kill still names its recording."""

    attempt_id: str
    file_name: str


@dataclass(frozen=True, slots=True)
class CustomerPressedKey:
    """A key pressed during an automatic call (the call tracker heard the DTMF)."""

    server: str
    attempt_id: str
    channel: str
    key: str


@dataclass(frozen=True, slots=True)
class CustomerWaiting:
    """A pooled call was answered (UserEvent PoolAnswered): the customer waits on hold, at
    most the pool's 2 s, for the dialer to connect a free specialist of the pool."""

    server: str
    attempt_id: str
    channel: str


@dataclass(frozen=True, slots=True)
class CampaignChanged:
    """A campaign was created, changed or reloaded with new values (`dialer.campaigns`)."""

    campaign: CampaignInfo


@dataclass(frozen=True, slots=True)
class CallBridged:
    """A channel of the call entered a bridge for the first time: the call is answered
    (a seat's ringing ends here)."""

    server: str
    attempt_id: str


@dataclass(frozen=True, slots=True)
class CallHungUp:
    """The PBX ended the call (its last channel hung up); its result is on its way to the
    database, and `AttemptSettled` follows once it is written."""

    server: str
    attempt_id: str


@dataclass(frozen=True, slots=True)
class PbxShuttingDown:
    """Asterisk said it is shutting down (`Event: Shutdown`): no new call on it until the
    link is re-established."""

    server: str


@dataclass(frozen=True, slots=True)
class PbxLinkBack:
    """The link to an Asterisk was (re-)established and is resyncing: the seats and campaigns
    that waited for it look for calls again."""

    server: str


@dataclass(frozen=True, slots=True)
class AttemptRestored:
    """At start, an attempt left in flight by the last process was taken back (it waits for
    the reconciliation)."""

    live: LiveCall


@dataclass(frozen=True, slots=True)
class CallPaced:
    """An automatic call got its trunk slot and its turn of the trunk's rate: it no longer
    waits to be sent (the campaign runner claims no more than the trunk can start)."""

    campaign_id: int


@dataclass(frozen=True, slots=True)
class AttemptSettled:
    """An attempt's result is committed and it is no longer in flight. `effects` is None when
    the result had been written already (nothing changed): the seat is left as it is."""

    live: LiveCall
    finished: Finished
    effects: Effects | None
    at: datetime


# -- commands (one handler each; the async ones return the coroutine to await) -------------


@dataclass(frozen=True, slots=True)
class SendCall:
    """Pace, check and send the Originate of a claimed attempt (the originator)."""

    live: LiveCall
    campaign: CampaignInfo | None


@dataclass(frozen=True, slots=True)
class FinishAttempt:
    """Write an attempt's result now, in its own transaction (the result writer)."""

    live: LiveCall
    finished: Finished


@dataclass(frozen=True, slots=True)
class SettleResults:
    """Finished calls of a server's tracker: to the result writer's queue (call events)."""

    server: str
    results: Sequence[CallResult]


__all__ = [
    "AttemptRestored",
    "AttemptSettled",
    "CallBridged",
    "CallHungUp",
    "CallPaced",
    "CampaignChanged",
    "CustomerPressedKey",
    "CustomerWaiting",
    "FinishAttempt",
    "OriginateSent",
    "PbxLinkBack",
    "PbxShuttingDown",
    "RecordingNamed",
    "SeatChanged",
    "SendCall",
    "SettleResults",
]
