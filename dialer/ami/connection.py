"""One AMI connection as an asyncio Protocol: login, actions, events. No reconnects here.

API (what the dialer uses)::

    conn = AmiConnection(host, port, username="dialer", secret="...", auth="md5")
    await conn.connect()                      # banner, login; raises AmiAuthError
    unsubscribe = conn.subscribe(callback)    # callback(event) for every event
    reply = await conn.send("Originate", {...}, action_id="att-001", timeout=10)
    reply.ok, reply["Message"], reply.events  # EventList actions: the list events
    await conn.close()                        # Logoff, then close

Rules that the public libraries broke (docs/ami.md, spec/ami-client-evaluation.md):

* `send` returns the `Response` as a `Reply`. For EventList actions (CoreShowChannels,
  Status, QueueStatus, ...) it waits for the `...Complete` event and `Reply.events` holds the
  list events. An `Async` Originate returns the immediate "queued" response; its later
  `OriginateResponse` is an ordinary event for the subscribers.
* When the link drops, every action still waiting fails at once with `AmiDisconnected`,
  naming the action and its ActionID. Nothing is ever re-sent by this layer.
* A subscriber that raises is logged; the other subscribers still get the event.
* Events are parsed by `event_parser` (a typed `dialer.ami.events.EventDecoder` by default
  when it is importable, else the raw `Message`).
* Reading: `data_received` feeds the parser and dispatches the messages synchronously, in
  slices of `_SLICE` bytes (no task switch or await per read; see `_on_data` for the slices).
* Backpressure: a write waits while the transport is above its high-water mark
  (`pause_writing`/`resume_writing`); at most `max_in_flight` actions wait for responses;
  `stream(maxsize)` gives a bounded queue of events and, when it is full, the connection
  stops reading the socket (`pause_reading`; TCP pushes back on Asterisk) until the consumer
  has taken the events that did not fit, instead of buffering without limit.
* Timeouts run on the project `Clock` when one is given, so tests drive them.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from common.clock import Clock
from dialer.ami import events
from dialer.ami.exceptions import AmiActionError, AmiAuthError, AmiDisconnected, AmiTimeout
from dialer.ami.protocol import AmiParser, HeaderValue, Message, MissingHeader, encode_action

log = logging.getLogger(__name__)

EventCallback = Callable[[Any], object]
EventParser = Callable[[Message], Any]

# The parser gets a socket read (up to 256 KiB) in slices of this size, and each slice's
# messages are dispatched before the next is parsed: the decoded text, the messages and the
# consumer's work on them then stay in the CPU cache. Whole 256 KiB reads are ~1.5x slower
# per event on this machine (docs/benchmarks/ami-tcp.md).
_SLICE = 8 * 1024
_OK = frozenset({"Success", "Goodbye", "Follows"})


def default_event_parser() -> EventParser:
    """Typed events, with a decoder of this connection's own (it remembers which broken
    headers it has already reported, so each is logged once)."""
    return events.EventDecoder().decode


def md5_key(challenge: str, secret: str) -> str:
    return hashlib.md5((challenge + secret).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Reply:
    """The response to one action, plus the list events of an EventList action."""

    response: Message
    events: tuple[Message, ...] = ()

    @property
    def ok(self) -> bool:
        return self.response.get("Response") in _OK

    def __getitem__(self, key: str) -> str:
        return self.response[key]

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.response.get(key, default)


@dataclass(slots=True)
class _Pending:
    action: str
    action_id: str
    future: asyncio.Future[Reply]
    response: Message | None = None
    events: list[Message] = field(default_factory=list)


class EventStream:
    """A bounded queue of events; iterate with `async for`. Close to unsubscribe.

    When `queue` is full, further events wait in `_overflow` (at most one socket read's
    worth) and the connection stops reading until iteration has moved them into the queue.
    """

    def __init__(self, conn: AmiConnection, maxsize: int) -> None:
        self._conn = conn
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self._overflow: deque[Any] = deque()

    def close(self) -> None:
        self._conn._streams.discard(self)
        self._overflow.clear()
        self._conn._resume_reading()

    def _put(self, event: Any) -> bool:
        """Queue `event`; False when the queue is full (the event waits in the overflow)."""
        if not self._overflow:
            try:
                self.queue.put_nowait(event)
                return True
            except asyncio.QueueFull:
                pass
        self._overflow.append(event)
        return False

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Any]:
        queue = self.queue
        overflow = self._overflow
        while True:
            item = await queue.get()
            if overflow:
                while overflow and not queue.full():
                    queue.put_nowait(overflow.popleft())
                if not overflow:
                    self._conn._resume_reading()
            yield item


class _AmiProtocol(asyncio.Protocol):
    """Hands the transport's callbacks to its connection."""

    def __init__(self, conn: AmiConnection) -> None:
        self._conn = conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._conn._on_connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._conn._on_data(data)

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._conn._on_connection_lost(exc)

    def pause_writing(self) -> None:
        self._conn._write_paused = True

    def resume_writing(self) -> None:
        self._conn._write_paused = False
        self._conn._wake_writers()


class AmiConnection:
    """A single AMI session. Use `AmiSupervisor` for ping, reconnect and resync."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str,
        secret: str,
        auth: str = "plain",
        events: bool = True,
        clock: Clock | None = None,
        event_parser: EventParser | None = None,
        max_in_flight: int = 1000,
        login_timeout: float = 10.0,
        name: str | None = None,
    ) -> None:
        if auth not in ("plain", "md5"):
            raise ValueError("auth must be 'plain' or 'md5'")
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret
        self.auth = auth
        self.events_on = events
        self.name = name or f"{host}:{port}"
        self._clock = clock
        self._parse: EventParser = event_parser or default_event_parser()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._login_timeout = login_timeout
        self._ids = itertools.count(1)
        self._id_prefix = f"ami-{id(self):x}-"
        self._pending: dict[str, _Pending] = {}
        # A tuple, replaced on (un)subscribe: dispatch reads it without copying per event.
        self._subscribers: tuple[EventCallback, ...] = ()
        self._streams: set[EventStream] = set()
        self._parser = AmiParser()
        self._transport: asyncio.Transport | None = None
        self._transport_closed: asyncio.Future[None] | None = None
        self._write_paused = False
        self._write_waiters: list[asyncio.Future[None]] = []
        self._read_paused = False
        self._closed = asyncio.Event()
        self._close_reason = "not connected"
        self._connected = False
        self.banner: str | None = None
        self.events_received = 0

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def close_reason(self) -> str:
        return self._close_reason

    async def connect(self) -> None:
        """Open the TCP link, read the banner and log in."""
        loop = asyncio.get_running_loop()
        self._parser = AmiParser()
        self._transport = None
        self._transport_closed = loop.create_future()
        await loop.create_connection(lambda: _AmiProtocol(self), self.host, self.port)
        try:
            await self._login()
        except BaseException:
            await self.abort("login failed")
            raise
        log.info("AMI %s logged in as %s (%s)", self.name, self.username, self.banner)

    async def _login(self) -> None:
        headers: dict[str, HeaderValue] = {"Username": self.username}
        try:
            if self.auth == "md5":
                challenge = await self.send(
                    "Challenge", {"AuthType": "MD5"}, timeout=self._login_timeout
                )
                if not challenge.ok or "Challenge" not in challenge.response:
                    raise AmiAuthError(f"MD5 challenge refused: {challenge.get('Message')}")
                headers["AuthType"] = "MD5"
                headers["Key"] = md5_key(challenge["Challenge"], self._secret)
            else:
                headers["Secret"] = self._secret
            headers["Events"] = "on" if self.events_on else "off"
            reply = await self.send("Login", headers, timeout=self._login_timeout)
        except AmiDisconnected as exc:
            raise AmiAuthError(f"server closed the link during login: {exc}") from exc
        if not reply.ok:
            raise AmiAuthError(f"login as {self.username!r} refused: {reply.get('Message')}")

    async def close(self, timeout: float = 2.0) -> None:
        """Log off politely, then close. Safe to call twice."""
        if self._connected:
            try:
                await self.send("Logoff", timeout=timeout)
            except Exception as exc:  # the link is going away anyway
                log.debug("AMI %s logoff: %s", self.name, exc)
        await self.abort("closed by us")

    async def abort(self, reason: str = "aborted") -> None:
        """Drop the link at once: pending actions fail with AmiDisconnected."""
        self._lost(reason)
        transport, closed = self._transport, self._transport_closed
        if transport is not None and closed is not None:
            transport.close()
            await asyncio.shield(closed)

    async def wait_closed(self) -> str:
        """Wait until the link is down; returns why."""
        await self._closed.wait()
        return self._close_reason

    # -- subscribers -----------------------------------------------------------------------

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Call `callback(event)` for every event (inside the transport's read callback; keep
        it quick). Returns a function that unsubscribes."""
        self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            subs = list(self._subscribers)
            if callback in subs:
                subs.remove(callback)
                self._subscribers = tuple(subs)

        return unsubscribe

    def stream(self, maxsize: int = 10_000) -> EventStream:
        """A bounded event queue; a full queue pauses reading from the socket."""
        s = EventStream(self, maxsize)
        self._streams.add(s)
        return s

    # -- actions ---------------------------------------------------------------------------

    def next_action_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids)}"

    async def send(
        self,
        action: str,
        headers: Mapping[str, HeaderValue] | None = None,
        *,
        action_id: str | None = None,
        timeout: float | None = 10.0,
        check: bool = False,
    ) -> Reply:
        """Send one action and wait for its response (and list events).

        Raises AmiDisconnected if the link is down or drops before the answer, AmiTimeout,
        and with `check=True` AmiActionError on `Response: Error`.
        """
        if headers and "ActionID" in headers:
            action_id = str(headers["ActionID"])
            headers = {k: v for k, v in headers.items() if k != "ActionID"}
        aid = action_id or self.next_action_id()
        if aid in self._pending:
            raise ValueError(f"ActionID {aid!r} is already waiting for a response")
        payload = encode_action(action, {"ActionID": aid, **(headers or {})})
        async with self._slots:
            transport = self._transport
            if not self._connected or transport is None:
                raise AmiDisconnected(
                    f"AMI link {self.name} is down ({self._close_reason}); {action} {aid} not sent"
                )
            fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
            self._pending[aid] = _Pending(action, aid, fut)
            try:
                transport.write(payload)
                if self._write_paused:
                    await self._drain()
                reply = await self._wait(fut, timeout, action, aid)
            except (ConnectionError, OSError) as exc:
                self._lost(f"write failed: {exc}")
                reply = await fut  # _lost failed it with AmiDisconnected
            finally:
                self._pending.pop(aid, None)
        if check and not reply.ok:
            raise AmiActionError(action, reply.get("Message") or "")
        return reply

    async def _drain(self) -> None:
        """Wait until the transport's write buffer is below its low-water mark."""
        while self._write_paused and self._connected:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._write_waiters.append(waiter)
            await waiter
        if not self._connected:
            raise ConnectionResetError(f"AMI link {self.name} lost while writing")

    def _wake_writers(self) -> None:
        waiters, self._write_waiters = self._write_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _wait(
        self, fut: asyncio.Future[Reply], timeout: float | None, action: str, aid: str
    ) -> Reply:
        if timeout is None:
            return await fut
        if self._clock is None:
            try:
                return await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                raise AmiTimeout(f"no response to {action} {aid} within {timeout:g}s") from None
        timer: asyncio.Future[None] = asyncio.ensure_future(self._clock.sleep(timeout))
        try:
            both: list[asyncio.Future[Any]] = [fut, timer]
            await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        if fut.done():
            return fut.result()
        fut.cancel()
        raise AmiTimeout(f"no response to {action} {aid} within {timeout:g}s")

    # -- reading (transport callbacks) -----------------------------------------------------

    def _on_connection_made(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._write_paused = False
        self._read_paused = False
        self._connected = True
        self._closed.clear()

    def _on_connection_lost(self, exc: Exception | None) -> None:
        if exc is None:
            self._lost("connection closed by Asterisk")
        else:
            self._lost(f"connection error: {exc}")
        self._wake_writers()
        closed = self._transport_closed
        if closed is not None and not closed.done():
            closed.set_result(None)

    def _on_data(self, data: bytes) -> None:
        try:
            feed = self._parser.feed
            if len(data) <= _SLICE:
                self._dispatch(feed(data))
            else:
                for start in range(0, len(data), _SLICE):
                    self._dispatch(feed(data[start : start + _SLICE]))
            if self.banner is None:
                self.banner = self._parser.banner
        except Exception:
            log.exception("AMI %s reader crashed", self.name)
            self._lost("reader crashed")
            if self._transport is not None:
                self._transport.abort()

    def _dispatch(self, msgs: list[Message]) -> None:
        """Route one slice's messages: responses and list events to their pending actions,
        events to every subscriber and stream. Synchronous: no coroutine per event."""
        pending = self._pending
        parse = self._parse
        events = 0
        for msg in msgs:
            # This loop runs once per event: route on the text where it can (see Message).
            raw = msg._raw
            if raw is None or not raw.startswith("Event: "):
                first = msg._first
                if "Event" not in first:
                    if "Response" in first:
                        self._on_response(msg)
                    else:
                        log.warning(
                            "AMI %s: skipped a message that is neither response nor event: %s",
                            self.name,
                            msg.first_line(),
                        )
                    continue
            if pending:
                aid = msg._peek("ActionID")
                action = pending.get(aid) if aid is not None else None
                if action is not None and action.response is not None:
                    # A list event of an EventList action.
                    if msg.get("EventList") == "Complete":
                        if not action.future.done():
                            action.future.set_result(Reply(action.response, tuple(action.events)))
                    else:
                        action.events.append(msg)
                    continue
            events += 1
            try:
                event = parse(msg)
            except Exception:
                log.exception("AMI %s: event parser failed on %s", self.name, msg.first_line())
                event = msg
            for callback in self._subscribers:
                try:
                    callback(event)
                except Exception:
                    log.exception(
                        "AMI %s: subscriber %r raised on %s", self.name, callback, msg.first_line()
                    )
            if self._streams:
                self._to_streams(event)
        self.events_received += events

    def _to_streams(self, event: Any) -> None:
        full = False
        for s in self._streams:
            if not s._put(event):
                full = True
        if full and not self._read_paused and self._transport is not None:
            self._read_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        """Read again once no stream holds events beyond its queue."""
        if not self._read_paused or any(s._overflow for s in self._streams):
            return
        self._read_paused = False
        if self._transport is not None and self._connected:
            self._transport.resume_reading()

    def _on_response(self, msg: Message) -> None:
        aid = msg.get("ActionID")
        pending = self._pending.get(aid) if aid is not None else None
        if pending is None:
            log.warning(
                "AMI %s: response to no pending action: %s %s", self.name, msg.first_line(), aid
            )
            return
        if msg.get("EventList") == "start":
            pending.response = msg  # wait for the ...Complete event
            return
        if not pending.future.done():
            pending.future.set_result(Reply(msg))

    def _lost(self, reason: str) -> None:
        if not self._connected and self._closed.is_set():
            return
        first = self._connected
        self._connected = False
        self._close_reason = reason
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(
                    AmiDisconnected(
                        f"link lost ({reason}) before Asterisk answered {pending.action} "
                        f"{pending.action_id}; its fate is unknown, not re-sent"
                    )
                )
        if first:
            log.warning(
                "AMI %s: link down: %s (%d actions failed)", self.name, reason, len(self._pending)
            )
        self._closed.set()


__all__ = [
    "AmiConnection",
    "EventStream",
    "MissingHeader",
    "Reply",
    "default_event_parser",
    "md5_key",
]
