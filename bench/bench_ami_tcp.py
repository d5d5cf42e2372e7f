"""Events per second over loopback TCP through the project's AMI connection.

A fast server logs the client in, then blasts the events of the real 07_burst_50 trace
(5,350 events, ~2.1 MB) again and again in 64 KiB writes. Three pipelines:
  parse-and-dispatch: AmiParser -> Message -> one counting subscriber (what the connection
                      itself does: headers are split only when something reads them);
  ... headers read:   the same, the subscriber reading a header of every event;
  full pipeline:      ... -> typed events (dialer.ami.events.EventDecoder) -> CallTracker.

    .venv/bin/python bench/bench_ami_tcp.py [--repeats 40] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dialer.ami.connection import AmiConnection
from dialer.ami.events import EventDecoder
from dialer.ami.protocol import parse_stream
from dialer.calls import CallTracker

TRACE = Path(__file__).resolve().parents[1] / "tests/fixtures/ami/07_burst_50.ami"


def burst_events() -> tuple[bytes, int]:
    _, msgs = parse_stream(TRACE.read_bytes())
    events = [m for m in msgs if m.kind == "event"]
    return b"".join(m.to_bytes() for m in events), len(events)


def _server_process(body: bytes, repeats: int, port_q: Any) -> None:
    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port_q.put(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        login = await reader.readuntil(b"\r\n\r\n")
        aid = next(
            ln.split(b": ", 1)[1] for ln in login.split(b"\r\n") if ln.startswith(b"ActionID")
        )
        writer.write(
            b"Response: Success\r\nActionID: "
            + aid
            + b"\r\nMessage: Authentication accepted\r\n\r\n"
        )
        for _ in range(repeats):
            for i in range(0, len(body), 65536):
                writer.write(body[i : i + 65536])
                await writer.drain()
        await reader.read()

    asyncio.run(main())


async def run(body: bytes, per_body: int, repeats: int, mode: str) -> tuple[float, float]:
    """Events/s by wall clock and by this (client) process's CPU time."""
    # The blasting server runs in its own process, as Asterisk would.
    total = per_body * repeats
    port_q: Any = multiprocessing.Queue()
    proc = multiprocessing.Process(
        target=_server_process, args=(body, repeats, port_q), daemon=True
    )
    proc.start()
    port = port_q.get()
    done = asyncio.Event()
    count = 0
    if mode == "pipeline":
        tracker = CallTracker(discover_unregistered=True)

        def on_event(e: object) -> None:
            nonlocal count
            tracker.handle(e, 0.0)  # type: ignore[arg-type]
            count += 1
            if count == total:
                done.set()

        conn = AmiConnection(
            "127.0.0.1", port, username="b", secret="b", event_parser=EventDecoder().decode
        )
    else:
        split = mode == "split"

        def on_event(e: object) -> None:
            nonlocal count
            if split:
                e.get("Uniqueid")  # type: ignore[attr-defined]  # splits the headers
            count += 1
            if count == total:
                done.set()

        conn = AmiConnection("127.0.0.1", port, username="b", secret="b", event_parser=lambda m: m)
    conn.subscribe(on_event)
    t0, c0 = time.perf_counter(), time.process_time()
    await conn.connect()
    await done.wait()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    await conn.abort()
    proc.terminate()
    proc.join()
    return total / elapsed, total / cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    body, n = burst_events()
    print(
        f"payload: 07_burst_50 events, {n} events / {len(body)} bytes per repeat, x{args.repeats}"
    )
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    names = {
        "dispatch": "parse-and-dispatch",
        "split": "... every event's headers read",
        "pipeline": "typed events + call tracker",
    }
    for mode, name in names.items():
        results = [asyncio.run(run(body, n, args.repeats, mode)) for _ in range(args.runs)]
        rates = [wall for wall, _ in results]
        cpu = [c for _, c in results]
        print(
            f"{name:30s} median {statistics.median(rates):>10,.0f} events/s  "
            f"(runs: {', '.join(f'{r:,.0f}' for r in rates)}); "
            f"by client CPU time median {statistics.median(cpu):,.0f}"
        )
    print("load average after:  {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
