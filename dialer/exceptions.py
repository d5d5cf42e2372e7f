"""Errors of the dialer's services. Each carries a `reason` the HTTP layer can return as is,
and a `status` hint; `callcenter.web`'s error middleware answers them (`common.errors`)."""

from __future__ import annotations

from common.errors import DomainError


class DialerError(DomainError):
    status = 400


class IllegalSeatTransition(DialerError):
    """The seat cannot do that in its current state (e.g. pause while offline)."""

    status = 409


class NotSignedIn(DialerError):
    status = 409


class NotYourLead(DialerError):
    """A specialist may act only on the leads they own. Answered like an unknown lead (404,
    same words), so that a specialist cannot learn which lead ids exist."""

    status = 404


class NotYourSeat(DialerError):
    """A specialist may sign in only at the seat configured for them (Specialist.seat)."""

    status = 403


class UnknownLead(DialerError):
    status = 404


class UnknownCampaign(DialerError):
    status = 404


class UnknownResult(DialerError):
    """Not a standard contact result, or one only the dialer may set."""

    status = 400


class NoPreview(DialerError):
    """No lead is offered to this specialist for preview (or it is another one)."""

    status = 409


class NotAPhoneNumber(DialerError):
    """A do-not-call entry that is not one phone number by the import's rules."""

    status = 400


class OutsideCallingWindow(DialerError):
    status = 409


class SeatTaken(DialerError):
    """The seat device is signed in by another specialist."""

    status = 409


class SupervisorActionFailed(DialerError):
    """Listening in or taking over a call did not happen (link down, channel gone, refused)."""

    status = 409


__all__ = [
    "DialerError",
    "IllegalSeatTransition",
    "NoPreview",
    "NotAPhoneNumber",
    "NotSignedIn",
    "NotYourLead",
    "NotYourSeat",
    "OutsideCallingWindow",
    "SeatTaken",
    "SupervisorActionFailed",
    "UnknownCampaign",
    "UnknownLead",
    "UnknownResult",
]
