"""Notice an AMI user that is not sent the events the dialer relies on, and say how to fix it.

Asterisk sends an AMI session only the events whose class is in its user's `read =` line
(manager.conf). Nothing fails when a class is missing: the events simply never come. With
`dialplan` missing (the example manager.conf once lacked it) no `VarSet` arrives, so the
dialer never learns `MIXMONITOR_FILENAME` and no answered call gets its recording (issue
11: 0 of 13 recorded on a real Asterisk). One `ReadCheck` per AMI server watches the
events that arrive and the calls that end, and after a few calls that must have produced
an event that never came, it logs once (WARNING) and keeps a warning for the health
endpoint naming the exact `read =` line to use. A warning goes away when such an event
arrives (after `manager reload` and a reconnect).

Pure bookkeeping: no I/O, no clock; the engine feeds it (`saw` per event, `ended` per batch
of call results).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from dialer.ami import events as ev
from dialer.calls import CallResult, Mode, Outcome

log = logging.getLogger(__name__)

# The `read =` line docker/asterisk/manager.conf ships: every class the dialer uses.
RECOMMENDED_READ = "call,cdr,user,dtmf,reporting,system,dialplan"
REQUIRED_CLASSES = ("call", "dialplan", "user")
DEFAULT_WINDOW = 3  # calls that needed an event before a missing one is reported


@dataclass(frozen=True, slots=True)
class _Need:
    event: str  # the event whose absence shows it
    what: str  # what the dialer loses without it


_NEEDS = {
    "dialplan": _Need(
        "VarSet", "no VarSet events (MIXMONITOR_FILENAME, ATTEMPT_ID): no call gets its recording"
    ),
    "call": _Need(
        "Hangup",
        "no call events (Newchannel, DialEnd, Hangup, OriginateResponse): no call outcome is known",
    ),
    "user": _Need(
        "UserEvent", "no UserEvent (CallbackResult, Abandoned): the callback's key is never read"
    ),
}


_CLASS_OF = {need.event: cls for cls, need in _NEEDS.items()}


def fix_for(missing_class: str, username: str) -> str:
    """What to change in manager.conf, in words a person can act on."""
    return (
        f"add '{missing_class}' to the read line of the [{username}] user in manager.conf "
        f"(read = {RECOMMENDED_READ}, as docker/asterisk/manager.conf ships), make sure no "
        f"eventfilter drops {_NEEDS[missing_class].event}, then run 'manager reload' in the "
        "Asterisk CLI; the dialer reconnects by itself"
    )


class ReadCheck:
    """Which event classes one AMI server's user is evidently not sent."""

    def __init__(self, server: str, username: str, window: int = DEFAULT_WINDOW) -> None:
        self.server = server
        self.username = username
        self.window = window
        self._seen: set[str] = set()  # event names of _NEEDS seen since start
        self._needed: dict[str, int] = dict.fromkeys(_NEEDS, 0)  # calls that lacked them
        self._reads = 0  # READSTATUS variables seen: the dialplan read a key
        self.missing: dict[str, str] = {}  # class -> warning, while it holds
        self.events = 0  # every event read on the link (the events/s metric)

    def saw(self, event: ev.AmiEvent) -> None:
        """Called for every event (thousands a second in a burst): two dict look-ups."""
        self.events += 1
        name = event.name
        if isinstance(event, ev.VarSet) and event.variable == "READSTATUS":
            self._reads += 1
        cls = _CLASS_OF.get(name)
        if cls is not None and name not in self._seen:
            self._seen.add(name)
            self._needed[cls] = 0
            if self.missing.pop(cls, None) is not None:
                log.info("AMI %s: %s events arrive now", self.server, name)

    def ended(self, results: Iterable[CallResult]) -> None:
        for r in results:
            if r.channels and "VarSet" not in self._seen:
                self._needed["dialplan"] += 1
            if r.outcome is Outcome.UNKNOWN and not r.channels and "Hangup" not in self._seen:
                self._needed["call"] += 1
            if r.mode is Mode.APPLICATION and self._reads and "UserEvent" not in self._seen:
                self._needed["user"] += 1
        for cls, count in self._needed.items():
            if count >= self.window and cls not in self.missing:
                self._report(cls, count)

    def _report(self, cls: str, count: int) -> None:
        warning = (
            f"AMI {self.server}: {_NEEDS[cls].what}, over {count} calls. "
            f"To fix: {fix_for(cls, self.username)}."
        )
        self.missing[cls] = warning
        log.warning("%s", warning)

    def warnings(self) -> list[str]:
        return list(self.missing.values())
