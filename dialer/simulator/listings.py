"""The simulated Asterisk's read-only AMI actions: the lists (CoreShowChannels, Status,
QueueStatus, QueueSummary, BridgeList, each an EventList with its `...Complete` event) and
CoreStatus, CoreSettings and ExtensionState, answered from the PBX's state as Asterisk 22
answers them in the traces. A part of the AMI session (`dialer.simulator.server`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from dialer.ami.protocol import Message
from dialer.simulator.pbx import Chan

if TYPE_CHECKING:
    from dialer.simulator.server import PbxSimulator

VERSION = "Asterisk 22.10.1 built by root @ vm on a x86_64 running Linux on 2026-11-27 11:28:40 UTC"


def encode(pairs: Iterable[tuple[str, str]]) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n").encode("utf-8")


def hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Listings:
    """The read-only actions of an AMI session; the session supplies the simulator and the
    output."""

    sim: PbxSimulator
    respond: Callable[..., None]
    write: Callable[[bytes], None]

    def _getvar(self, chan: Chan | None, var: str) -> str:
        if chan is None:
            return self.sim.pbx.globals.get(var, "")
        special = {
            "CALLERID(name)": chan.cid_name,
            "CALLERID(num)": chan.cid_num,
            "UNIQUEID": chan.uniqueid,
            "CHANNEL": chan.name,
        }
        if var in special:
            return special[var]
        return chan.variables.get(var, "")

    def _list(
        self,
        aid: str | None,
        message: str,
        complete: str,
        items: list[list[tuple[str, str]]],
        extra: list[tuple[str, str]] | None = None,
    ) -> None:
        self.respond("Success", aid, ("EventList", "start"), ("Message", message))
        tail = [("ActionID", aid)] if aid is not None else []
        out = bytearray()
        for item in items:
            out += encode(item)
        out += encode(
            [
                ("Event", complete),
                *tail,
                ("EventList", "Complete"),
                ("ListItems", str(len(items))),
                *(extra or []),
            ]
        )
        self.write(bytes(out))

    async def a_coreshowchannels(self, msg: Message, aid: str | None) -> None:
        pbx = self.sim.pbx
        now = pbx.clock.monotonic()
        items = []
        for c in pbx.channels.values():
            head = [("Event", "CoreShowChannel")] + ([("ActionID", aid)] if aid else [])
            items.append(
                [
                    *head,
                    *c.snapshot(),
                    ("Application", c.app),
                    ("ApplicationData", c.appdata),
                    ("Duration", hms(now - c.created)),
                    ("BridgeId", c.bridge),
                ]
            )
        self._list(aid, "Channels will follow", "CoreShowChannelsComplete", items)

    async def a_status(self, msg: Message, aid: str | None) -> None:
        pbx = self.sim.pbx
        want = msg.get("Channel")
        chans = list(pbx.channels.values())
        if want:
            chan = pbx.channels.get(want)
            if chan is None:
                self.respond("Error", aid, ("Message", "No such channel"))
                return
            chans = [chan]
        names = [v.strip() for v in (msg.get("Variables") or "").split(",") if v.strip()]
        now = pbx.clock.monotonic()
        items = []
        for c in chans:
            item = [
                ("Event", "Status"),
                ("Privilege", "Call"),
                *c.snapshot(),
                ("Type", c.tech),
                ("DNID", ""),
                ("EffectiveConnectedLineNum", c.conn_num),
                ("EffectiveConnectedLineName", c.conn_name),
                ("TimeToHangup", "0"),
                ("BridgeID", c.bridge),
                ("Application", c.app),
                ("Data", c.appdata),
                ("Nativeformats", "(ulaw)" if c.tech == "PJSIP" else "(slin)"),
                ("Readformat", "slin"),
                ("Readtrans", ""),
                ("Writeformat", "slin"),
                ("Writetrans", ""),
                ("Callgroup", "0"),
                ("Pickupgroup", "0"),
                ("Seconds", str(int(now - c.created))),
            ]
            item += [("Variable", f"{n}={self._getvar(c, n)}") for n in names]
            if aid is not None:
                item.append(("ActionID", aid))
            items.append(item)
        self._list(
            aid, "Channel status will follow", "StatusComplete", items, [("Items", str(len(items)))]
        )

    async def a_corestatus(self, msg: Message, aid: str | None) -> None:
        started = self.sim.pbx.started
        self.respond(
            "Success",
            aid,
            ("CoreStartupDate", started.strftime("%Y-%m-%d")),
            ("CoreStartupTime", started.strftime("%H:%M:%S")),
            ("CoreReloadDate", started.strftime("%Y-%m-%d")),
            ("CoreReloadTime", started.strftime("%H:%M:%S")),
            ("CoreCurrentCalls", str(len(self.sim.pbx.channels))),
            ("CoreProcessedCalls", str(self.sim.pbx.processed_calls)),
        )

    async def a_coresettings(self, msg: Message, aid: str | None) -> None:
        self.respond(
            "Success",
            aid,
            ("AMIversion", "11.0.0"),
            ("AsteriskVersion", "22.10.1"),
            ("SystemName", ""),
            ("CoreMaxCalls", "0"),
            ("CoreMaxLoadAvg", "0.000000"),
            ("CoreRunUser", ""),
            ("CoreRunGroup", ""),
            ("CoreMaxFilehandles", "0"),
            ("CoreRealTimeEnabled", "No"),
            ("CoreCDRenabled", "Yes"),
            ("CoreHTTPenabled", "No"),
            ("SoundsSearchCustomDir", "No"),
        )

    async def a_queuestatus(self, msg: Message, aid: str | None) -> None:
        tail = [("ActionID", aid)] if aid else []
        items = [
            [
                ("Event", "QueueParams"),
                ("Queue", "renewal"),
                ("Max", "0"),
                ("Strategy", "rrmemory"),
                ("Calls", "0"),
                ("Holdtime", "0"),
                ("TalkTime", "0"),
                ("Completed", "0"),
                ("Abandoned", "0"),
                ("ServiceLevel", "0"),
                ("ServicelevelPerf", "0.0"),
                ("ServicelevelPerf2", "0.0"),
                ("Weight", "0"),
                *tail,
            ]
        ]
        for seat, name in (("8001", "专员一"), ("8002", "专员二")):
            items.append(
                [
                    ("Event", "QueueMember"),
                    ("Queue", "renewal"),
                    ("Name", name),
                    ("Location", f"Local/{seat}@seats"),
                    ("StateInterface", f"Local/{seat}@seats"),
                    ("Membership", "static"),
                    ("Penalty", "0"),
                    ("CallsTaken", "0"),
                    ("LastCall", "0"),
                    ("LastPause", "0"),
                    ("LoginTime", "0"),
                    ("InCall", "0"),
                    ("Status", "1"),
                    ("Paused", "0"),
                    ("PausedReason", ""),
                    ("Wrapuptime", "0"),
                    *tail,
                ]
            )
        self._list(aid, "Queue status will follow", "QueueStatusComplete", items)

    async def a_queuesummary(self, msg: Message, aid: str | None) -> None:
        tail = [("ActionID", aid)] if aid else []
        items = [
            [
                ("Event", "QueueSummary"),
                ("Queue", "renewal"),
                ("LoggedIn", "2"),
                ("Available", "2"),
                ("Callers", "0"),
                ("HoldTime", "0"),
                ("TalkTime", "0"),
                ("LongestHoldTime", "0"),
                *tail,
            ]
        ]
        self._list(aid, "Queue summary will follow", "QueueSummaryComplete", items)

    async def a_bridgelist(self, msg: Message, aid: str | None) -> None:
        members: Counter[str] = Counter(
            c.bridge for c in self.sim.pbx.channels.values() if c.bridge
        )
        head = [("ActionID", aid)] if aid else []
        items = [
            [
                ("Event", "BridgeListItem"),
                *head,
                ("BridgeUniqueid", b),
                ("BridgeType", "basic"),
                ("BridgeTechnology", "simple_bridge"),
                ("BridgeCreator", "<unknown>"),
                ("BridgeName", "<unknown>"),
                ("BridgeNumChannels", str(n)),
                ("BridgeVideoSourceMode", "none"),
            ]
            for b, n in members.items()
        ]
        self._list(aid, "Bridge listing will follow", "BridgeListComplete", items)

    async def a_extensionstate(self, msg: Message, aid: str | None) -> None:
        self.respond(
            "Success",
            aid,
            ("Message", "Extension Status"),
            ("Exten", msg.get("Exten") or ""),
            ("Context", msg.get("Context") or ""),
            ("Hint", ""),
            ("Status", "-1"),
            ("StatusText", "Unknown"),
        )


__all__ = ["VERSION", "Listings", "encode", "hms"]
