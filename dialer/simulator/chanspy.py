"""ChanSpy in the simulated Asterisk: a supervisor's seat listening to a live call, as the
traces pjsip_chanspy_listen / _whisper / _barge show it (AMI traces, second PJSIP run).

The spyer is a call of its own (own Uniqueid = Linkedid, not linked to the spied call):
after its OriginateResponse, about 100 ms later, `ChanSpyStart` with no `Channel:` header and
both parties as `Spyer*` / `Spyee*` snapshots. With option `E` the spy ends when the spied
channel hangs up: `ChanSpyStop` (same headers), the spyer's own `Cdr` (`LastApplication:
ChanSpy`, no DestinationChannel, ANSWERED) and its `Hangup` with `Cause: 0 Unknown`, last.
`q`, `w` and `B` produce no event of their own: the three modes look the same on AMI.

Not in the traces, from Asterisk 22's app_chanspy: a spied channel that does not exist gives
no `ChanSpyStart` (ChanSpy keeps scanning until the spyer hangs up); a spyer hung up by an
action while spying gets `ChanSpyStop` before its Hangup.
"""

from __future__ import annotations

from dialer.simulator.pbx import Call, Chan, Leg, Pbx

START_DELAY = 0.1  # OriginateResponse -> ChanSpyStart in the traces (~100 ms)
WATCH_STEP = 0.05  # how often the spy looks whether the spied channel is still there
SCAN_STEP = 0.5  # how often a spy with nothing to spy on looks again


def _spy_event(pbx: Pbx, name: str, spyer: Chan, spyee: Chan) -> None:
    pbx.emit(name, "call,all", [*spyer.snapshot("Spyer"), *spyee.snapshot("Spyee")])


async def chanspy(pbx: Pbx, call: Call, leg: Leg, data: str) -> None:
    """Run ChanSpy(`data`) on the originated (answered) supervisor's channel; returns when
    the spy ends (the spied channel hung up, option E). A Hangup action on the spyer
    interrupts it (`Pbx.wait` raises), after `ChanSpyStop`."""
    spyer = leg.a
    spyer.app, spyer.appdata = "ChanSpy", data
    target_name = data.partition(",")[0]
    await pbx.wait(call, START_DELAY)
    spyee = pbx.channels.get(target_name)
    while spyee is None:  # scanning for a channel that is not there (yet)
        await pbx.wait(call, SCAN_STEP)
        spyee = pbx.channels.get(target_name)
    _spy_event(pbx, "ChanSpyStart", spyer, spyee)
    try:
        while pbx.channels.get(spyee.name) is spyee:
            await pbx.wait(call, WATCH_STEP)
    finally:
        _spy_event(pbx, "ChanSpyStop", spyer, spyee)
    pbx.cdr(spyer, "ANSWERED")
    pbx.hangup(spyer, 0)


def is_chanspy(application: str | None) -> bool:
    return (application or "").lower() == "chanspy"


__all__ = ["chanspy", "is_chanspy"]
