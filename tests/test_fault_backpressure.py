"""A slow consumer (docs/reliability.md): Asterisk sends AMI events faster than the dialer
handles them, for a minute (`make faults`; a few seconds in `make test`). The connection
dispatches events inside the transport's read callback, so a slow handler slows the reading,
TCP's window fills and the sender's writes wait: memory stays flat instead of queueing
events without limit. Measured with tracemalloc (Python allocations) and psutil (RSS).

Real time by nature: the point is a sender and a reader running at their own speeds over a
real socket; every wait is bounded and none is a fixed sleep of the test."""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import psutil
import pytest

from dialer.ami.connection import AmiConnection
from tests.fault_support import figure

EVENT = (
    "Event: Newexten\r\nPrivilege: dialplan,all\r\nChannel: PJSIP/8001-0000{n:04x}\r\n"
    "ChannelState: 6\r\nChannelStateDesc: Up\r\nCallerIDNum: 8001\r\nCallerIDName: <unknown>\r\n"
    "ConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>\r\nLanguage: en\r\n"
    "AccountCode: \r\nContext: seats\r\nExten: 8001\r\nPriority: 2\r\n"
    "Uniqueid: 1795779201.{n}\r\nLinkedid: att-{n}\r\nExtension: 8001\r\n"
    "Application: Playback\r\nAppData: tt-weasels\r\n\r\n"
)


class Flood:
    """An AMI server that logs anyone in and then writes events as fast as the socket takes
    them (awaiting `drain()`, as asyncio's writer must) for `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.sent = 0
        self.waited = 0.0  # seconds the writer spent in drain(): the reader pushing back
        self.done = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        login = (await reader.readuntil(b"\r\n\r\n")).decode()
        aid = next(line[10:] for line in login.split("\r\n") if line.startswith("ActionID: "))
        writer.write(f"Response: Success\r\nActionID: {aid}\r\nMessage: ok\r\n\r\n".encode())
        end = time.monotonic() + self.seconds
        try:
            while time.monotonic() < end:
                chunk = "".join(EVENT.format(n=self.sent + i) for i in range(50)).encode()
                writer.write(chunk)
                self.sent += 50
                before = time.monotonic()
                await writer.drain()
                self.waited += time.monotonic() - before
        except ConnectionError:
            pass
        finally:
            self.done.set()
            writer.close()


def _slow(counter: list[int]):  # type: ignore[no-untyped-def]
    """A handler slower than the sender: some CPU per event, like a busy tracker."""

    def handle(_event: object) -> None:
        counter[0] += 1
        sum(range(400))

    return handle


@pytest.mark.parametrize(
    "seconds",
    [pytest.param(4.0, id="4s"), pytest.param(60.0, id="60s", marks=pytest.mark.faults)],
)
async def test_events_faster_than_handled_hold_memory_flat(seconds: float) -> None:
    flood = Flood(seconds)
    await flood.start()
    conn = AmiConnection("127.0.0.1", flood.port, username="dialer", secret="x", name="flood")
    handled = [0]
    conn.subscribe(_slow(handled))
    process = psutil.Process()
    tracemalloc.start()
    try:
        await asyncio.wait_for(conn.connect(), 30)
        samples: list[tuple[float, int, int]] = []  # (t, traced bytes, rss)
        t0 = time.monotonic()
        while not flood.done.is_set():
            samples.append(
                (
                    time.monotonic() - t0,
                    tracemalloc.get_traced_memory()[0],
                    process.memory_info().rss,
                )
            )
            await asyncio.wait({asyncio.ensure_future(flood.done.wait())}, timeout=seconds / 20)
        await asyncio.wait_for(conn.abort("done"), 30)
    finally:
        tracemalloc.stop()
        await flood.stop()
    warm = [s for s in samples if s[0] >= seconds / 4] or samples
    traced = [s[1] for s in warm]
    rss = [s[2] for s in warm]
    # The sender was held back by the reader, and what it sent was handled or is in flight
    # in bounded buffers (the socket's and one read's worth), not queued in the process.
    assert flood.waited > seconds / 4
    backlog = flood.sent - handled[0]
    assert backlog < 20_000, backlog
    growth = max(traced) - min(traced)
    assert growth < 8 * 2**20, f"Python memory grew {growth / 2**20:.1f} MiB while flooded"
    figure(
        f"slow AMI consumer for {seconds:.0f} s",
        events_sent=flood.sent,
        events_handled=handled[0],
        per_second_handled=round(handled[0] / seconds),
        sender_held_back_s=round(flood.waited, 1),
        traced_growth_kib=round(growth / 1024),
        traced_peak_mib=round(max(traced) / 2**20, 1),
        rss_growth_mib=round((max(rss) - min(rss)) / 2**20, 1),
    )
