"""What an Asterisk shutting down means for the dialer (issue 11, finding 6). Pure.

A restart of Asterisk showed two ways of losing leads to it:

* Every action during the stop is refused: `Response: Error`, `Message: Asterisk is
  shutting down` (trace `pjsip_originate_while_shutting_down`). Nothing was dialled, so the
  attempt is *not sent*: no call counted, the lead due again at once, and the server takes no
  new call until its link is re-established (a seat waits instead of going through its
  queue, one refusal per lead).
* A call the PBX itself ends — cut by `core restart now` while the customer's phone rang
  (cause 16, DialStatus CANCEL, then `Event: Shutdown` and the link drops) — is no customer's
  answer. It ends as `ended_by_pbx`, which no retry rule counts (not toward the three calls
  of a callback number); a customer who was reached (bridged to a specialist, or who pressed
  a key) keeps that outcome.

The engine applies these: `refused_for_shutdown` on an Originate's reply; `reached` and
`may_be_cut` on a finished call, which is held back `DialerConfig.pbx_cut_grace_seconds`
to see whether the PBX goes down right after (its `Shutdown` comes after the calls' last
events), and `ended_by_pbx` to relabel it.
"""

from __future__ import annotations

from dataclasses import replace

from dialer.calls import CallResult, Outcome
from dialer.decisions import Finished
from dialer.outcomes import ENDED_BY_PBX

SHUTTING_DOWN = "shutting down"  # in Asterisk's "Asterisk is shutting down"
NORMAL_CLEARING = 16


def refused_for_shutdown(message: str | None) -> bool:
    """An action's `Response: Error` message says Asterisk is stopping."""
    return SHUTTING_DOWN in (message or "").lower()


def reached(result: CallResult) -> bool:
    """The customer was reached: talked with a specialist or answered a menu with a key."""
    return result.answered and (result.bridged or bool(result.key_pressed))


def may_be_cut(result: CallResult) -> bool:
    """A ringing call cancelled with cause 16 (normal clearing), never answered: the PBX may
    have cut it. (A customer who does not answer gives cause 0 or 19 and NOANSWER, busy 17;
    but a seat that hangs up on a ringing customer also gives cause 16 and CANCEL: only the
    PBX going down right after tells the two apart.)"""
    return (
        result.outcome is not Outcome.HUNG_UP_BY_ACTION
        and not result.answered
        and result.cause == NORMAL_CLEARING
        and result.dial_status == "CANCEL"
    )


def ended_by_pbx(fin: Finished, why: str) -> Finished:
    """The finished call as one the PBX ended: no customer outcome, no contact result."""
    return replace(fin, outcome=ENDED_BY_PBX, reason=f"ended by the PBX: {why}")


__all__ = ["SHUTTING_DOWN", "ended_by_pbx", "may_be_cut", "reached", "refused_for_shutdown"]
