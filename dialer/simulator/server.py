"""The simulated Asterisk's AMI server (asyncio), standing in for Asterisk 22.

    sim = PbxSimulator(clock=VirtualClock(), users={"dialer": "secret"}, monitor_dir=path)
    await sim.start("127.0.0.1", 0)      # sim.port is the bound port
    ...
    await sim.drop_clients()             # cut every AMI link (reconnect tests)
    sim.shutdown("gracefully")           # Asterisk stopping (dialer/simulator/shutdown.py)
    sim.mute = True                      # stop answering, keep sockets open (dead link)
    sim.action_counts["Originate"]       # what clients sent
    await sim.stop()

Protocol as in the traces: banner, plain and MD5 login (a wrong secret is answered
"Authentication failed" 1 s later, then the socket is closed), "Permission denied" before
login, FullyBooted + SuccessfulAuth after a login with events on, EventList actions with
`...Complete` events, Logoff with Goodbye and a close.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import random
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from common.clock import Clock, SystemClock
from dialer.ami.events import may_read, read_classes
from dialer.ami.protocol import AmiParser, Message
from dialer.simulator.behaviour import Scenario
from dialer.simulator.flows import Originate, request_redirect, start_originate
from dialer.simulator.listings import VERSION, Listings, encode
from dialer.simulator.pbx import STATE_DESC, Chan, Pbx
from dialer.simulator.shutdown import REFUSAL, Shutdown, Stop

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
_MAX_CLIENT_BUFFER = 64 * 1024 * 1024  # a reader this far behind is dropped, like writetimeout
_LIST_ACTIONS = {"CoreShowChannels", "Status", "QueueStatus", "QueueSummary", "BridgeList"}
_OPEN_ACTIONS = {"Login", "Challenge", "Logoff"}


class _Session(Listings):
    _ids = itertools.count(0x7F1AE0007700)

    def __init__(
        self, sim: PbxSimulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.user: str | None = None
        self.read: frozenset[str] = frozenset()  # the user's read classes, after login
        self.events_on = False
        self.challenge: str | None = None
        self.session_id = f"0x{next(self._ids):x}"
        peer = writer.get_extra_info("peername") or ("127.0.0.1", 0)
        sock = writer.get_extra_info("sockname") or ("127.0.0.1", 5038)
        self.remote = f"IPV4/TCP/{peer[0]}/{peer[1]}"
        self.local = f"IPV4/TCP/{sock[0]}/{sock[1]}"
        self.closed = False

    # -- output ----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        transport = self.writer.transport
        if transport.is_closing():
            self.closed = True
            return
        if transport.get_write_buffer_size() > _MAX_CLIENT_BUFFER:
            log.warning("simulator: dropping a client that stopped reading")
            self.close()
            return
        self.writer.write(data)

    def event_sink(self, data: bytes, cls: str) -> None:
        if self.events_on and self.user is not None and may_read(self.read, cls):
            self.write(data)

    def respond(self, response: str, action_id: str | None, *pairs: tuple[str, str]) -> None:
        head = [("Response", response)]
        if action_id is not None:
            head.append(("ActionID", action_id))
        self.write(encode([*head, *pairs]))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sim.pbx.sinks.discard(self.event_sink)
            self.writer.close()

    # -- input -----------------------------------------------------------------------------

    async def run(self) -> None:
        self.write(BANNER)
        parser = AmiParser(expect_banner=False)
        try:
            while not self.closed:
                data = await self.reader.read(65536)
                if not data:
                    break
                for msg in parser.feed(data):
                    if self.sim.mute:
                        continue
                    await self.handle(msg)
                    if self.closed:
                        break
        except (ConnectionError, OSError):
            pass
        finally:
            self.close()

    async def handle(self, msg: Message) -> None:
        action = msg.get("Action") or ""
        aid = msg.get("ActionID")
        self.sim.action_counts[action] += 1
        if self.user is None and action not in _OPEN_ACTIONS:
            self.respond("Error", aid, ("Message", "Permission denied"))
            return
        if self.sim.stopping is not None and action != "Logoff":
            self.respond("Error", aid, ("Message", REFUSAL))
            return
        handler = getattr(self, f"a_{action.lower()}", None)
        if handler is None:
            self.respond(
                "Error",
                aid,
                (
                    "Message",
                    f"Invalid/unknown command: {action}. Use Action: ListCommands to show available commands.",
                ),
            )
            self.security_event("RequestBadFormat", "Error", [("RequestType", f"Action: {action}")])
            return
        await handler(msg, aid)

    def security_event(self, name: str, severity: str, extra: list[tuple[str, str]]) -> None:
        if not may_read(self.read, "security"):
            return
        now = self.sim.pbx.clock.now().strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        pairs = [
            ("EventTV", now),
            ("Severity", severity),
            ("Service", "AMI"),
            ("EventVersion", "1"),
            ("AccountID", self.user or ""),
            ("SessionID", self.session_id),
            ("LocalAddress", self.local),
            ("RemoteAddress", self.remote),
            *extra,
            ("SessionTV", now),
        ]
        self.write(encode([("Event", name), ("Privilege", "security,all"), *pairs]))

    # -- actions ---------------------------------------------------------------------------

    async def a_challenge(self, msg: Message, aid: str | None) -> None:
        if (msg.get("AuthType") or "").lower() != "md5":
            self.respond("Error", aid, ("Message", "Must specify AuthType"))
            return
        self.challenge = str(self.sim.rng.randrange(10**8, 10**9))
        self.respond("Success", aid, ("Challenge", self.challenge))

    async def a_login(self, msg: Message, aid: str | None) -> None:
        user = msg.get("Username") or ""
        secret = self.sim.users.get(user)
        ok = False
        if secret is not None:
            if (msg.get("AuthType") or "").lower() == "md5":
                if self.challenge is not None:
                    expect = hashlib.md5((self.challenge + secret).encode("utf-8")).hexdigest()
                    ok = msg.get("Key") == expect
            else:
                ok = msg.get("Secret") == secret
        if not ok:
            # Asterisk answers a failed login only after a second, then hangs up.
            await self.sim.pbx.clock.sleep(1.0)
            self.respond("Error", aid, ("Message", "Authentication failed"))
            self.close()
            return
        self.user = user
        self.read = read_classes(self.sim.read.get(user, "all"))
        self.events_on = (msg.get("Events") or "on").lower() not in ("off", "no", "false", "0")
        self.respond("Success", aid, ("Message", "Authentication accepted"))
        self.sim.pbx.sinks.add(self.event_sink)
        if self.events_on:
            up = int(self.sim.pbx.clock.monotonic() + self.sim.uptime0)
            self.write(
                encode(
                    [
                        ("Event", "FullyBooted"),
                        ("Privilege", "system,all"),
                        ("Uptime", str(up)),
                        ("LastReload", str(up)),
                        ("Status", "Fully Booted"),
                    ]
                )
            )
            self.security_event("SuccessfulAuth", "Informational", [("UsingPassword", "0")])

    async def a_logoff(self, msg: Message, aid: str | None) -> None:
        self.respond("Goodbye", aid, ("Message", "Thanks for all the fish."))
        self.close()

    async def a_events(self, msg: Message, aid: str | None) -> None:
        mask = (msg.get("EventMask") or "on").lower()
        self.events_on = mask not in ("off", "no", "false", "0")
        self.respond("Success", aid, ("Events", "On" if self.events_on else "Off"))

    async def a_ping(self, msg: Message, aid: str | None) -> None:
        ts = self.sim.pbx.clock.now().timestamp()
        self.respond("Success", aid, ("Ping", "Pong"), ("Timestamp", f"{ts:.6f}"))

    async def a_command(self, msg: Message, aid: str | None) -> None:
        cmd = " ".join((msg.get("Command") or "").split())
        pbx = self.sim.pbx
        if cmd == "core show version":
            lines = [VERSION]
        elif cmd == "core show channels concise":
            lines = [self.sim.concise(c) for c in pbx.channels.values()]
        elif cmd == "core show channels":
            n = len(pbx.channels)
            lines = [f"{c.name} {c.app}" for c in pbx.channels.values()]
            lines += [
                f"{n} active channels",
                f"{len(pbx.calls)} active calls",
                f"{pbx.processed_calls} calls processed",
            ]
        else:
            words = cmd.split()
            self.respond(
                "Error",
                aid,
                ("Message", "Command output follows"),
                (
                    "Output",
                    f"No such command '{cmd}' (type 'core show help {' '.join(words[:2])}' for other possible commands)",
                ),
            )
            return
        self.respond(
            "Success",
            aid,
            ("Message", "Command output follows"),
            *[("Output", line) for line in lines],
        )

    async def a_originate(self, msg: Message, aid: str | None) -> None:
        headers = {k: v for k, v in msg.headers if k != "Variable"}
        o = Originate(headers, msg.getall("Variable"), aid or "")
        done = asyncio.get_running_loop().create_future()

        def respond(response: str, message: str) -> None:
            self.respond(response, aid, ("Message", message))
            if not done.done():
                done.set_result(None)

        start_originate(self.sim.pbx, o, respond)
        await done  # a synchronous Originate holds the session until its outcome, as in Asterisk

    async def a_hangup(self, msg: Message, aid: str | None) -> None:
        name = msg.get("Channel") or ""
        chan = self.sim.pbx.channels.get(name)
        if chan is None or chan.call is None or chan.call.task is None:
            self.respond("Error", aid, ("Message", "No such channel"))
            return
        call = chan.call
        self.respond("Success", aid, ("Message", "Channel Hungup"))
        if call.hangup_by is None and call.task is not None:
            call.hangup_by = chan
            call.task.cancel()

    async def a_redirect(self, msg: Message, aid: str | None) -> None:
        # Asterisk's messages (manager.c action_redirect); ExtraChannel is not modelled.
        name = msg.get("Channel") or ""
        target = {h: msg.get(h) or "" for h in ("Context", "Exten", "Priority")}
        for header, value in (("Channel", name), *target.items()):
            if not value:
                self.respond("Error", aid, ("Message", f"{header} not specified"))
                return
        if not target["Priority"].isdigit() or int(target["Priority"]) < 1:
            self.respond("Error", aid, ("Message", "Priority is invalid"))
            return
        chan = self.sim.pbx.channels.get(name)
        if chan is None:
            self.respond("Error", aid, ("Message", f"Channel does not exist: {name}"))
            return
        if msg.get("ExtraChannel") or not request_redirect(
            self.sim.pbx, chan, target["Context"], target["Exten"]
        ):
            self.respond("Error", aid, ("Message", "Redirect failed"))
            return
        self.respond("Success", aid, ("Message", "Redirect successful"))

    def _chan(self, msg: Message, aid: str | None) -> Chan | None:
        chan = self.sim.pbx.channels.get(msg.get("Channel") or "")
        if chan is None:
            self.respond("Error", aid, ("Message", "No such channel"))
        return chan

    async def a_getvar(self, msg: Message, aid: str | None) -> None:
        var = msg.get("Variable") or ""
        chan = None
        if msg.get("Channel"):
            chan = self._chan(msg, aid)
            if chan is None:
                return
        self.respond("Success", aid, ("Variable", var), ("Value", self._getvar(chan, var)))

    async def a_setvar(self, msg: Message, aid: str | None) -> None:
        var = msg.get("Variable") or ""
        value = msg.get("Value") or ""
        if not var:
            self.respond("Error", aid, ("Message", "No variable specified"))
            return
        if msg.get("Channel"):
            chan = self._chan(msg, aid)
            if chan is None:
                return
            self.respond("Success", aid, ("Message", "Variable Set"))
            self.sim.pbx.varset(chan, var, value)
        else:
            self.sim.pbx.globals[var] = value
            self.respond("Success", aid, ("Message", "Variable Set"))


class PbxSimulator:
    """The AMI server plus the simulated PBX behind it."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        users: dict[str, str] | None = None,
        monitor_dir: Path | None = None,
        scenario: Scenario | None = None,
        seed: int | None = None,
        read: Mapping[str, str] | None = None,
    ) -> None:
        self.pbx = Pbx(clock or SystemClock(), monitor_dir=monitor_dir, scenario=scenario)
        self.users = users if users is not None else {"dialer": "dialer-secret"}
        # Each user's manager.conf `read =` line (default `all`): events of other classes are
        # not sent to that user's sessions, as Asterisk does (e.g. no VarSet without dialplan).
        self.read: Mapping[str, str] = read if read is not None else {}
        self.rng = random.Random(seed)
        self.uptime0 = 204
        self.mute = False
        self.stopping: Shutdown | None = None  # a shutdown in progress
        self.action_counts: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.host = "127.0.0.1"
        self.port = 0

    def concise(self, c: Chan) -> str:
        now = self.pbx.clock.monotonic()
        dur = str(int(now - c.created))
        state = STATE_DESC.get(c.state, "Unknown")
        return "!".join(
            [
                c.name,
                c.context,
                c.exten,
                str(c.priority),
                state,
                c.app,
                c.appdata,
                c.cid_num,
                "",
                "",
                "3",
                dur,
                c.bridge,
                c.uniqueid,
            ]
        )

    async def start(self, host: str = "127.0.0.1", port: int = 5038) -> None:
        self._server = await asyncio.start_server(self._accept, host, port)
        sock = self._server.sockets[0].getsockname()
        self.host, self.port = sock[0], sock[1]
        log.info("PBX simulator listening on %s:%d", self.host, self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(self, reader, writer)
        self._sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            if task is not None:
                self._tasks.discard(task)

    @property
    def clients(self) -> int:
        return sum(1 for s in self._sessions if not s.closed)

    async def drop_clients(self) -> None:
        """Cut every AMI connection at once (calls keep running, as on a real PBX)."""
        for s in list(self._sessions):
            s.writer.transport.abort()
            s.close()

    def shutdown(self, how: str = "gracefully", *, restart: bool = False) -> Shutdown:
        """Asterisk stopping (`core stop|restart gracefully|now`): actions are refused from
        now on; `gracefully` lets the calls end, `now` cuts them; then `Event: Shutdown` and
        every AMI link closes. After a restart new logins are accepted again."""
        if self.stopping is not None:
            return self.stopping
        self.stopping = Shutdown(self, Stop(how), restart)
        task = asyncio.ensure_future(self.stopping.run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return self.stopping

    async def close_sessions(self) -> None:
        """Close every AMI link after what was written to it (the server's side of a stop)."""
        for s in list(self._sessions):
            s.close()

    def restarted(self) -> None:
        """The PBX is back after a restart: logins and actions are served again."""
        self.stopping = None

    def stop_listening(self) -> None:
        """A stop without restart: nobody answers on the port any more."""
        if self._server is not None:
            self._server.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for s in list(self._sessions):
            s.writer.transport.abort()
            s.close()
        for call in list(self.pbx.calls):
            if call.task is not None:
                call.task.cancel()
        tasks = [c.task for c in self.pbx.calls if c.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> PbxSimulator:
        await self.start(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
