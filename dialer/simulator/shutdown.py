"""Asterisk shutting down (`core stop|restart gracefully|now`), as the simulator plays it.

From the trace `pjsip_originate_while_shutting_down` (tests/fixtures/ami/pjsip/shutdown/),
`core stop gracefully` run on the CLI while a call is bridged:

* nothing on AMI marks the start of the stop;
* every action from then on is refused at once: `Response: Error`, `Message: Asterisk is
  shutting down` (the trace shows it for an Originate: no channel, no OriginateResponse;
  Asterisk's manager.c refuses any action the same way before dispatching it. Logoff is
  still answered here, which no trace shows);
* the live call goes on to its natural end;
* 1.1 s after the last Hangup: `Event: Shutdown` (`Privilege: system,all`, `Shutdown:
  Cleanly`, `Restart: False`), the last message; then the server closes the connection.

`now` (`core stop now`, `core restart now`, the restart of issue 11) does not wait: every
channel is hung up at once (a Dial in progress ends `DialStatus: CANCEL`, every channel with
`Cause: 16`, as the live run recorded: no trace of it), then comes `Shutdown` and the close.
A restart (`restart=True`, `Restart: True`) keeps listening: new logins find a fresh PBX.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import TYPE_CHECKING

from dialer.simulator.pbx import Call, Chan, Pbx, PbxShutDown

if TYPE_CHECKING:
    from dialer.simulator.server import PbxSimulator

log = logging.getLogger(__name__)

__all__ = ["REFUSAL", "PbxShutDown", "Shutdown", "Stop", "cut"]

REFUSAL = "Asterisk is shutting down"
SHUTDOWN_AFTER_LAST_HANGUP = 1.1  # seconds, as traced


class Stop(enum.StrEnum):
    GRACEFULLY = "gracefully"  # wait for the calls to end
    NOW = "now"  # hang every call up first


def _customer(chan: Chan) -> bool:
    return chan.name.startswith("PJSIP/carrier-") or "@customers-" in chan.name


def cut(pbx: Pbx, call: Call) -> None:
    """Hang up every channel of `call` that is still up, as a `now` shutdown does."""
    live = [c for c in call.channels if c.name in pbx.channels]
    callers = [c for c in live if not _customer(c) and c.state == 6]
    for cust in (c for c in live if _customer(c) and c.state != 6):
        # A Dial (or the originate itself) still ringing the customer is cancelled.
        caller = callers[0] if callers else None
        if caller is not None:
            pbx.varset(caller, "DIALSTATUS", "CANCEL")
        pbx.dial_event("DialEnd", caller, cust, ("DialStatus", "CANCEL"))
    bridges = {c.bridge for c in live if c.bridge}
    for bridge in bridges:
        members = [c for c in live if c.bridge == bridge]
        for i, c in enumerate(members):
            c.bridge = ""
            pbx.bridge_event("BridgeLeave", bridge, len(members) - i - 1, c)
        pbx.bridge_event("BridgeDestroy", bridge, 0)
    for c in sorted(live, key=lambda c: not _customer(c)):  # the far end first
        pbx.hangup_request(c, 16, soft=True)
        pbx.hangup(c, 16)
        pbx.cdr(c, "ANSWERED" if c.answered is not None else "NO ANSWER")


class Shutdown:
    """A shutdown in progress (`PbxSimulator.shutdown` starts one)."""

    def __init__(self, sim: PbxSimulator, how: Stop, restart: bool) -> None:
        self.sim = sim
        self.how = how
        self.restart = restart
        self.done = asyncio.Event()

    async def run(self) -> None:
        pbx = self.sim.pbx
        if self.how is Stop.NOW:
            for call in list(pbx.calls):
                if call.task is not None and not call.task.done():
                    call.shutdown = True
                    call.task.cancel()
        tasks = [c.task for c in pbx.calls if c.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.how is Stop.GRACEFULLY:
            await pbx.clock.sleep(SHUTDOWN_AFTER_LAST_HANGUP)
        pbx.emit(
            "Shutdown",
            "system,all",
            [("Shutdown", "Cleanly"), ("Restart", "True" if self.restart else "False")],
        )
        log.info("simulated PBX shut down (%s, restart %s)", self.how.value, self.restart)
        if not self.restart:
            self.sim.stop_listening()
        await self.sim.close_sessions()
        if self.restart:
            self.sim.restarted()
        self.done.set()
