"""What an attempt's outcome means for the desk's rules: the one home of two of them.

* What counts as a call (toward the three-call rule of a callback number, a lead's attempt
  count, the daily cap per number, the branch e-mail's "not reached in N calls", a lead's
  one reminder): every attempt that may have rung the customer. An attempt never dialled
  (`not_sent`), a preview the specialist skipped (`skipped`) and a call the PBX itself ended
  (`ended_by_pbx`, Asterisk shutting down) are not calls and count nowhere.
* An automatic call (no specialist) reached the customer only if they pressed a menu key
  (1 = received and correct, 2 = talk to a person): answered with no key, or with a key the
  menu does not offer, it was a machine or nobody listening, and counts as not reached.

Pure: the SQL helper only builds an expression over the column it is given.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_

from dialer.models import DialMode
from schedules.retry import Outcome

# The engine's outcomes, as members of the one vocabulary (schedules.retry.Outcome).
NOT_SENT = Outcome.NOT_SENT
ABANDONED = Outcome.ABANDONED
SKIPPED = Outcome.SKIPPED
# The PBX itself ended the call (Asterisk shutting down, dialer.shutdown): no customer
# outcome, never counted by the retry rules (not toward the three calls of a callback number).
ENDED_BY_PBX = Outcome.ENDED_BY_PBX
UNKNOWN = Outcome.UNKNOWN
ANSWERED_OUTCOMES = frozenset({Outcome.ANSWERED, Outcome.ANSWERED_HUNG_UP_EARLY})

# Attempts that are not calls: they count nowhere.
NOT_CALLS = frozenset({NOT_SENT, SKIPPED, ENDED_BY_PBX})

# The callback menu's keys (docs/asterisk.md): the only answers that show a person listened.
MENU_KEYS = frozenset({"1", "2"})


def counts_as_call(outcome: str | None) -> bool:
    """Whether an attempt counts as a call placed to the customer. An attempt still in
    flight (`None`) counts: it may be ringing now, and must never be dialled twice."""
    return outcome not in NOT_CALLS


def counts_as_call_sql(outcome: Any) -> Any:
    """`counts_as_call` as a SQL condition over an outcome column (NULL: in flight, counts)."""
    return or_(outcome.is_(None), outcome.not_in(sorted(NOT_CALLS)))


def automatic_reached(mode: str, key_pressed: str | None) -> bool:
    """An automatic call that was answered reached the customer only with a menu key;
    a call a specialist took is always reached once answered."""
    return mode != DialMode.AUTOMATIC.value or (key_pressed or "") in MENU_KEYS


__all__ = [
    "ABANDONED",
    "ANSWERED_OUTCOMES",
    "ENDED_BY_PBX",
    "MENU_KEYS",
    "NOT_CALLS",
    "NOT_SENT",
    "SKIPPED",
    "UNKNOWN",
    "automatic_reached",
    "counts_as_call",
    "counts_as_call_sql",
]
