"""The dialer's domain events and commands: frozen dataclasses carried by the message bus
(`dialer.messagebus`). Events name what happened; the units that care subscribe."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dialer.campaigns import CampaignInfo
    from dialer.seats import Transition


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
    database, and `CallEnded` follows once it is written."""

    server: str
    attempt_id: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    """An attempt is no longer in flight here (its result is written, or it was never sent):
    views of the live calls (the supervisors' board) drop it."""

    server: str
    attempt_id: str


@dataclass(frozen=True, slots=True)
class PbxShuttingDown:
    """Asterisk said it is shutting down (`Event: Shutdown`): no new call on it until the
    link is re-established."""

    server: str


__all__ = [
    "CallBridged",
    "CallEnded",
    "CallHungUp",
    "CampaignChanged",
    "CustomerPressedKey",
    "OriginateSent",
    "PbxShuttingDown",
    "RecordingNamed",
    "SeatChanged",
]
