"""AMI layer throughput, in events per second, on the real 50-call burst trace.

Stages measured (each over the 07_burst_50 capture, 5,352 events, 2.15 MB, fed repeatedly
in 64 KiB chunks, as a socket read would deliver them):

- parse+dispatch: bytes -> `Message`s -> a handler looked up by event name and called;
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


def _repeat(run_once: Callable[[], int], seconds: float) -> list[float]:
    """Events/s of each pass, passes repeated for about `seconds`."""
    rates: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(rates) < 3:
        t0 = time.perf_counter()
        n = run_once()
        rates.append(n / (time.perf_counter() - t0))
    return rates


def bench_parse_dispatch(chunks: list[bytes], seconds: float) -> list[float]:
    counts: Counter[str] = Counter()
    handlers: dict[str, Callable[[Message], None]] = {}

    def on_any(msg: Message) -> None:
        counts[msg.name] += 1

    for name in ("Newchannel", "Newstate", "Hangup", "VarSet", "DialBegin", "DialEnd"):
        handlers[name] = on_any

    def once() -> int:
        parser = AmiParser(expect_banner=False)
        n = 0
        get = handlers.get
        for chunk in chunks:
            for msg in parser.feed(chunk):
                handler = get(msg._first.get("Event", ""))
                if handler is not None:
                    handler(msg)
                n += 1
        return n

    return _repeat(once, seconds)


def bench_parse_typed(chunks: list[bytes], seconds: float) -> list[float]:
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


def bench_pipeline(chunks: list[bytes], actions: list[Message], seconds: float) -> list[float]:
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


def _serve(port_queue: multiprocessing.Queue[int], body: bytes, repeat: int) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port_queue.put(srv.getsockname()[1])
    conn, _ = srv.accept()
    conn.sendall(b"Asterisk Call Manager/11.0.0\r\n")
    for _ in range(repeat):
        conn.sendall(body)
    conn.close()
    srv.close()


def bench_tcp(body: bytes, repeat: int) -> tuple[float, int]:
    queue: multiprocessing.Queue[int] = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_serve, args=(queue, body, repeat))
    proc.start()
    port = queue.get(timeout=10)

    async def client() -> tuple[float, int]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        parser = AmiParser()
        counts: Counter[str] = Counter()
        n = 0
        t0 = time.perf_counter()
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            for msg in parser.feed(data):
                counts[msg._first.get("Event", "")] += 1
                n += 1
        elapsed = time.perf_counter() - t0
        writer.close()
        return n / elapsed, n

    try:
        return asyncio.run(client())
    finally:
        proc.join(timeout=10)


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
    stages = [
        ("parse+dispatch", bench_parse_dispatch(chunks, args.seconds), 150_000),
        ("parse+typed events", bench_parse_typed(chunks, args.seconds), None),
        ("pipeline (typed + call tracker)", bench_pipeline(chunks, actions, args.seconds), 60_000),
    ]
    for name, rates, target in stages:
        best, median = max(rates), statistics.median(rates)
        verdict = (
            ""
            if target is None
            else f"  target {target:,}: {'met' if median >= target else 'NOT met'}"
        )
        print(
            f"{name:33s} median {median:10,.0f} events/s  best {best:10,.0f}  ({len(rates)} passes){verdict}"
        )
    if args.tcp:
        rate, n = bench_tcp(body, repeat=20)
        print(
            f"{'tcp loopback parse+dispatch':33s} {rate:17,.0f} events/s  ({n:,} events, one pass)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
