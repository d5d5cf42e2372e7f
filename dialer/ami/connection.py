"""One AMI connection over asyncio streams: login, actions, events. No reconnects here.

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
* Backpressure: writes await `drain()`; at most `max_in_flight` actions wait for responses;
  `stream(maxsize)` gives a bounded queue of events and, when it is full, the reader stops
  reading the socket (TCP pushes back on Asterisk) instead of buffering without limit.
* Timeouts run on the project `Clock` when one is given, so tests drive them.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dialer.ami import events
from dialer.ami.exceptions import AmiActionError, AmiAuthError, AmiDisconnected, AmiTimeout
from dialer.ami.protocol import AmiParser, HeaderValue, Message, MissingHeader, encode_action
from schedules.clock import Clock

log = logging.getLogger(__name__)

EventCallback = Callable[[Any], object]
EventParser = Callable[[Message], Any]

_READ_SIZE = 256 * 1024
_STREAM_LIMIT = 4 * 1024 * 1024
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
    """A bounded queue of events; iterate with `async for`. Close to unsubscribe."""

    def __init__(self, conn: AmiConnection, maxsize: int) -> None:
        self._conn = conn
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)

    def close(self) -> None:
        self._conn._streams.discard(self)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Any]:
        while True:
            yield await self.queue.get()


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
        self._subscribers: list[EventCallback] = []
        self._streams: set[EventStream] = set()
        self._parser = AmiParser()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task[None] | None = None
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
        # A large stream limit: with the default 64 KiB the transport pauses and resumes
        # reading many times per burst, which halves throughput.
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, limit=_STREAM_LIMIT
        )
        self._connected = True
        self._closed.clear()
        self._read_task = asyncio.create_task(self._read_loop(), name=f"ami-read {self.name}")
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
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        task = self._read_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def wait_closed(self) -> str:
        """Wait until the link is down; returns why."""
        await self._closed.wait()
        return self._close_reason

    # -- subscribers -----------------------------------------------------------------------

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Call `callback(event)` for every event (in the reader task; keep it quick).
        Returns a function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

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
            writer = self._writer
            if not self._connected or writer is None:
                raise AmiDisconnected(
                    f"AMI link {self.name} is down ({self._close_reason}); {action} {aid} not sent"
                )
            fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
            self._pending[aid] = _Pending(action, aid, fut)
            try:
                writer.write(payload)
                await writer.drain()
                reply = await self._wait(fut, timeout, action, aid)
            except (ConnectionError, OSError) as exc:
                self._lost(f"write failed: {exc}")
                reply = await fut  # _lost failed it with AmiDisconnected
            finally:
                self._pending.pop(aid, None)
        if check and not reply.ok:
            raise AmiActionError(action, reply.get("Message") or "")
        return reply

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

    # -- reading ---------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        reader = self._reader
        assert reader is not None
        reason = "connection closed by Asterisk"
        try:
            while True:
                data = await reader.read(_READ_SIZE)
                if not data:
                    break
                msgs = self._parser.feed(data)
                if self.banner is None and self._parser.banner is not None:
                    self.banner = self._parser.banner
                for msg in msgs:
                    # Sync dispatch (no coroutine per event); wait only for full streams.
                    blocked = self._dispatch(msg)
                    if blocked is not None:
                        for s, event in blocked:
                            await s.queue.put(event)
        except asyncio.CancelledError:
            reason = self._close_reason if not self._connected else "reader cancelled"
            raise
        except (ConnectionError, OSError) as exc:
            reason = f"connection error: {exc}"
        except Exception:
            log.exception("AMI %s reader crashed", self.name)
            reason = "reader crashed"
        finally:
            self._lost(reason)

    def _dispatch(self, msg: Message) -> list[tuple[EventStream, Any]] | None:
        if "Event" not in msg:
            if "Response" in msg:
                self._on_response(msg)
            else:
                log.warning(
                    "AMI %s: skipped a message that is neither response nor event: %s",
                    self.name,
                    msg.first_line(),
                )
            return None
        aid = msg.get("ActionID")
        if aid is not None:
            pending = self._pending.get(aid)
            if pending is not None and pending.response is not None:
                # A list event of an EventList action.
                if msg.get("EventList") == "Complete":
                    if not pending.future.done():
                        pending.future.set_result(Reply(pending.response, tuple(pending.events)))
                else:
                    pending.events.append(msg)
                return None
        self.events_received += 1
        try:
            event = self._parse(msg)
        except Exception:
            log.exception("AMI %s: event parser failed on %s", self.name, msg.first_line())
            event = msg
        for callback in tuple(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.exception(
                    "AMI %s: subscriber %r raised on %s", self.name, callback, msg.first_line()
                )
        blocked: list[tuple[EventStream, Any]] | None = None
        for s in self._streams:
            try:
                s.queue.put_nowait(event)
            except asyncio.QueueFull:
                blocked = blocked or []
                blocked.append((s, event))
        return blocked

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
