"""AMI layer throughput, in events per second, on the real 50-call burst trace.

Stages measured (each over the 07_burst_50 capture, 5,352 events, 2.15 MB, fed repeatedly
in 64 KiB chunks, as a socket read would deliver them):

- parse+dispatch: bytes -> `Message`s -> a handler looked up by event name and called, as
  the connection routes them (the name is read from the first line; the headers are split
  only when something reads them);
- parse+dispatch, headers split: the same with every message's headers split (what a
  subscriber that reads any header of every event costs);
- parse+typed: the same plus `EventDecoder.decode` (typed frozen dataclasses);
- pipeline: parse + typed events + the `CallTracker` correlating them into call state and
  classifying the 50 attempts (a fresh tracker per pass, the attempts registered as the
  dialer would, the results checked);
- tcp (with --tcp): parse+dispatch of bytes read from a loopback TCP socket, written by a
  separate process.

Usage: .venv/bin/python bench/bench_ami_parse.py [--seconds 3] [--tcp]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import platform
import socket
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dialer.ami.events import EventDecoder
from dialer.ami.protocol import AmiParser, Message
from dialer.calls import CallTracker, Outcome
from dialer.replay import Replayer

TRACE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "ami" / "07_burst_50"
CHUNK = 64 * 1024


def _load() -> tuple[bytes, list[bytes], list[Message]]:
    data = (TRACE.with_suffix(".ami")).read_bytes()
    body = data.split(b"\r\n", 1)[1]  # without the banner: the stream repeats
    chunks = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]
    actions = AmiParser(expect_banner=False).feed(TRACE.with_suffix(".actions").read_bytes())
    return body, chunks, actions


Rates = tuple[list[float], list[float]]


def _repeat(run_once: Callable[[], int], seconds: float) -> Rates:
    """Events/s of each pass, by wall clock and by this process's CPU time (the machine is
    shared: CPU time is what the code costs, wall time includes waiting for a core)."""
    wall: list[float] = []
    cpu: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(wall) < 3:
        t0, c0 = time.perf_counter(), time.process_time()
        n = run_once()
        wall.append(n / (time.perf_counter() - t0))
        cpu.append(n / max(time.process_time() - c0, 1e-9))
    return wall, cpu


def bench_parse_dispatch(chunks: list[bytes], seconds: float, split: bool = False) -> Rates:
    counts: Counter[str] = Counter()
    handlers: dict[str, Callable[[Message], None]] = {}

    def on_any(msg: Message) -> None:
        counts[msg.event_name or ""] += 1

    for name in ("Newchannel", "Newstate", "Hangup", "VarSet", "DialBegin", "DialEnd"):
        handlers[name] = on_any

    def once() -> int:
        parser = AmiParser(expect_banner=False)
        n = 0
        get = handlers.get
        for chunk in chunks:
            for msg in parser.feed(chunk):
                if split:
                    msg.get("Uniqueid")  # splits the headers
                handler = get(msg.event_name or "")
                if handler is not None:
                    handler(msg)
                n += 1
        return n

    return _repeat(once, seconds)


def bench_parse_typed(chunks: list[bytes], seconds: float) -> Rates:
    decoder = EventDecoder()

    def once() -> int:
        parser = AmiParser(expect_banner=False)
        decode = decoder.decode
        n = 0
        for chunk in chunks:
            for msg in parser.feed(chunk):
                decode(msg)
                n += 1
        return n

    return _repeat(once, seconds)


def bench_pipeline(chunks: list[bytes], actions: list[Message], seconds: float) -> Rates:
    decoder = EventDecoder()

    def once() -> int:
        rep = Replayer()  # registers the 50 Originates exactly as the dialer would
        for action in actions:
            rep.action(action, 0.0)
        tracker: CallTracker = rep.tracker
        parser = AmiParser(expect_banner=False)
        decode = decoder.decode
        handle = tracker.handle
        n = 0
        finished = 0
        now = 0.0
        for chunk in chunks:
            now += 0.01
            for msg in parser.feed(chunk):
                finished += len(handle(decode(msg), now))
                n += 1
        if finished != 50:
            raise AssertionError(f"{finished} attempts finished, expected 50")
        return n

    return _repeat(once, seconds)


def _variant(body: bytes, i: int) -> bytes:
    """The burst as a different set of calls: other Uniqueids/Linkedids and ActionIDs (same
    lengths), so a tracker sees 50 new calls on every repetition."""
    return body.replace(b"1795779", str(1795779 + i).encode()).replace(
        b"burst-", f"b{i:04d}-".encode()
    )


def _serve(port_queue: multiprocessing.Queue[int], body: bytes, repeat: int) -> None:
    variants = [_variant(body, i) for i in range(repeat)]
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port_queue.put(srv.getsockname()[1])
    conn, _ = srv.accept()
    conn.sendall(b"Asterisk Call Manager/11.0.0\r\n")
    for data in variants:
        conn.sendall(data)
    conn.close()
    srv.close()


def bench_tcp(body: bytes, repeat: int, pipeline: bool) -> tuple[float, float, int, int]:
    """What a loopback socket delivers (an asyncio Protocol feeding the parser from
    `data_received`), written by another process: parse+dispatch, or the whole pipeline
    (typed events and a tracker that discovers the calls from their OriginateResponses)."""
    queue: multiprocessing.Queue[int] = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_serve, args=(queue, body, repeat))
    proc.start()
    port = queue.get(timeout=30)
    counts: Counter[str] = Counter()
    decoder = EventDecoder()
    tracker = CallTracker(discover_unregistered=True)

    class Client(asyncio.Protocol):
        def __init__(self, done: asyncio.Future[None]) -> None:
            self.parser = AmiParser()
            self.done = done
            self.n = 0
            self.finished = 0

        def data_received(self, data: bytes) -> None:
            now = time.monotonic()
            if pipeline:
                for msg in self.parser.feed(data):
                    self.finished += len(tracker.handle(decoder.decode(msg), now))
                    self.n += 1
            else:
                for msg in self.parser.feed(data):
                    counts[msg.event_name or ""] += 1
                    self.n += 1

        def connection_lost(self, exc: Exception | None) -> None:
            self.done.set_result(None)

    async def client() -> tuple[float, float, int, int]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        t0, c0 = time.perf_counter(), time.process_time()
        _, proto = await loop.create_connection(lambda: Client(done), "127.0.0.1", port)
        await done
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return proto.n / wall, proto.n / cpu, proto.n, proto.finished

    try:
        return asyncio.run(client())
    finally:
        proc.join(timeout=30)


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=3.0, help="time per stage (default 3)")
    ap.add_argument("--tcp", action="store_true", help="also measure over loopback TCP")
    args = ap.parse_args()
    body, chunks, actions = _load()
    events = sum(len(AmiParser(expect_banner=False).feed(c)) for c in [body])
    print(
        f"python {platform.python_version()} on {platform.machine()}, {multiprocessing.cpu_count()} CPUs"
    )
    print(
        f"trace {TRACE.name}: {events} messages, {len(body):,} bytes, {len(chunks)} chunks of 64 KiB"
    )
    # Sanity: the pipeline classifies the burst right before it is timed.
    rep = Replayer()
    for action in actions:
        rep.action(action, 0.0)
    rep.received(b"Asterisk Call Manager/11.0.0\r\n" + body, None)  # no clock: no durations
    outcomes = Counter(r.outcome for r in rep.finish(None))
    if outcomes != {Outcome.ANSWERED: 50}:
        raise SystemExit(f"the burst is misclassified: {outcomes}")
    load_before = _load_average()
    stages = [
        ("parse+dispatch", bench_parse_dispatch(chunks, args.seconds), 150_000),
        ("parse+dispatch, headers split", bench_parse_dispatch(chunks, args.seconds, True), None),
        ("parse+typed events", bench_parse_typed(chunks, args.seconds), None),
        ("pipeline (typed + call tracker)", bench_pipeline(chunks, actions, args.seconds), 60_000),
    ]
    print(f"load average before: {load_before}; after: {_load_average()}")
    print(f"{'events/s':33s} {'wall median':>12s} {'wall best':>10s} {'CPU median':>11s}")
    for name, (wall, cpu), target in stages:
        verdict = ""
        if target is not None:
            met = "met" if statistics.median(cpu) >= target else "NOT met"
            verdict = f"  target {target:,}: {met}"
        print(
            f"{name:33s} {statistics.median(wall):12,.0f} {max(wall):10,.0f} "
            f"{statistics.median(cpu):11,.0f}  ({len(wall)} passes){verdict}"
        )
    if args.tcp:
        for pipeline in (False, True):
            wall_rate, cpu_rate, n, finished = bench_tcp(body, repeat=20, pipeline=pipeline)
            name = "tcp loopback " + ("pipeline" if pipeline else "parse+dispatch")
            extra = f", {finished} calls classified" if pipeline else ""
            print(
                f"{name:33s} {wall_rate:12,.0f} {'':10s} "
                f"{cpu_rate:11,.0f}  (one pass, {n:,} events{extra})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
