"""Recordings: transcoding throughput of the worker pool vs plain ffmpeg, and ingest delay.

1. Throughput, in audio minutes per wall-clock second, on the same WAV files in the same run,
   rounds alternating:
     ffmpeg CLI   `ffmpeg -i x.wav -c:a libmp3lame -b:a 24k x.mp3`, POOL files at a time
                  (the physical limit of this machine);
     worker pool  recordings.audio.process_wav (validate + analyse + pydub/ffmpeg transcode +
                  sha256) in the Ingest's executor, POOL workers.
   Files: the two real MixMonitor fixtures plus generated 8 kHz calls of 60 s and 180 s.
2. Ingest delay from hang-up to a stored, verified, linked recording (row + outbox committed),
   real time (SystemClock), calls ending at a fixed rate (default 50 per minute). At each
   hang-up the WAV lands in the monitor folder and the job is submitted, as the dialer would.
   The delay includes the stability wait (stable_checks x stable_interval).

    .venv/bin/python bench/bench_recordings.py [--rounds 3] [--calls 100] [--rate 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select

from callcenter.database import create_engine, session_factory, upgrade
from common.clock import SystemClock
from recordings.audio import AudioOptions, inspect_wav, process_wav
from recordings.config import RecordingSettings
from recordings.ingest import Ingest, RecordingJob
from recordings.models import Recording
from recordings.store import LocalStore
from tests.test_recordings_helpers import write_call_wav

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = [
    ROOT / "tests/fixtures/audio/1795779201.0.wav",
    ROOT / "tests/fixtures/audio/1795781502.0.wav",
]


def make_corpus(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for i in range(10):
        for src in FIXTURES:
            dest = folder / f"fx{i}-{src.name}"
            shutil.copyfile(src, dest)
            files.append(dest)
    speech = [(4.0, 0.6), (1.5, 0.0), (6.0, 0.4), (0.5, 0.0)]  # 12 s of talk and pauses
    for i in range(6):
        p = folder / f"call60-{i}.wav"
        write_call_wav(p, speech * 5)
        files.append(p)
    for i in range(4):
        p = folder / f"call180-{i}.wav"
        write_call_wav(p, speech * 15)
        files.append(p)
    return files


def audio_minutes(files: list[Path]) -> float:
    return sum(inspect_wav(p).duration for p in files) / 60


def run_ffmpeg(src: Path, out: Path, bitrate: str) -> None:
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-threads",
            "1",
            "-i",
            str(src),
            "-c:a",
            "libmp3lame",
            "-b:a",
            bitrate,
            str(out),
        ],
        check=True,
    )


def _cpu() -> float:
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(executor: Executor, fn: object, jobs: list[tuple[object, ...]]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its ffmpeg children)."""
    c0, t0 = _cpu(), time.perf_counter()
    futures = [executor.submit(fn, *j) for j in jobs]  # type: ignore[arg-type]
    for f in futures:
        f.result()
    return time.perf_counter() - t0, _cpu() - c0


def throughput(work: Path, pool: int, rounds: int) -> dict[str, float]:
    files = make_corpus(work / "corpus")
    minutes = audio_minutes(files)
    out = work / "out"
    out.mkdir(exist_ok=True)
    opts = AudioOptions(format="mp3", bitrate="24k")
    ff: list[tuple[float, float]] = []
    ours: list[tuple[float, float]] = []
    with ThreadPoolExecutor(pool) as ex:
        for _ in range(rounds):
            ff.append(timed(ex, run_ffmpeg, [(p, out / f"{p.stem}.ff.mp3", "24k") for p in files]))
            ours.append(
                timed(ex, process_wav, [(str(p), str(out / f"{p.stem}.mp3"), opts) for p in files])
            )
            r = process_wav(str(files[0]), str(out / "check.mp3"), opts)
            assert r.kind == "audio", r.error
    # The machine is shared: the best round is the one least disturbed by other work, and
    # CPU seconds per audio minute do not depend on what else runs.
    rates = {}
    print(
        f"corpus: {len(files)} files, {minutes:.1f} audio minutes; pool size {pool}; {rounds} rounds"
    )
    for name, runs in (("ffmpeg CLI", ff), ("worker pool", ours)):
        best = minutes / min(w for w, _ in runs)
        median = minutes / statistics.median(w for w, _ in runs)
        per_cpu = minutes / statistics.median(c for _, c in runs)
        rates[name] = (best, median, per_cpu)
        walls = ", ".join(f"{w:.2f}s" for w, _ in runs)
        print(
            f"  {name:11s}: best {best:6.2f}, median {median:6.2f} audio min/s wall; "
            f"{per_cpu:6.2f} audio min per CPU-second  (runs {walls})"
        )
    f, o = rates["ffmpeg CLI"], rates["worker pool"]
    print(
        f"  ratio pool/ffmpeg: best {o[0] / f[0]:.2f}, median {o[1] / f[1]:.2f}, "
        f"per CPU-second {o[2] / f[2]:.2f}  (target >= 0.90)"
    )
    return {"ffmpeg": f[0], "pool": o[0]}


async def ingest_delay(work: Path, calls: int, rate: float, db_url: str | None) -> None:
    url = db_url or f"sqlite+aiosqlite:///{work / 'bench.db'}"
    await upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    monitor = work / "monitor"
    clock = SystemClock()
    settings = RecordingSettings()  # defaults: 3 stable checks 0.5 s apart, thread pool
    ingest = Ingest(
        sessions,
        LocalStore(work / "store"),
        clock,
        settings,
        monitor_dir=monitor,
        work_dir=work,
    )
    await ingest.start()
    sources = [*FIXTURES, work / "corpus" / "call60-0.wav", work / "corpus" / "call180-0.wav"]
    gap = 60.0 / rate
    t0 = time.perf_counter()
    try:
        for i in range(calls):
            due = t0 + i * gap
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            name = f"17958{i:05d}.{i}.wav"
            await asyncio.to_thread(shutil.copyfile, sources[i % len(sources)], monitor / name)
            await ingest.submit(
                RecordingJob(
                    attempt_id=f"bench-{i}",
                    lead_id=None,
                    specialist_id=None,
                    wav_path=f"/var/spool/asterisk/monitor/{name}",
                    outcome="answered",
                    ended_at=clock.now(),
                )
            )
        await ingest.drain()
    finally:
        await ingest.stop()
    async with sessions() as s:
        rows = (
            await s.execute(select(Recording.status, Recording.ended_at, Recording.stored_at))
        ).all()
    await engine.dispose()
    delays = sorted(
        (r.stored_at - r.ended_at).total_seconds() for r in rows if r.status == "stored"
    )
    bad = [r.status for r in rows if r.status != "stored"]
    q = statistics.quantiles(delays, n=100, method="inclusive")
    print(
        f"ingest delay, {len(delays)} calls at {rate:g}/min (stability wait "
        f"{settings.stable_checks} x {settings.stable_interval:g} s included):"
    )
    print(
        f"  p50 {statistics.median(delays):.2f} s   p99 {q[98]:.2f} s   max {delays[-1]:.2f} s"
        f"   not stored: {len(bad)}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pool", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--rate", type=float, default=50.0, help="calls ending per minute")
    ap.add_argument("--db-url", help="database for the delay test (default: a temporary SQLite)")
    ap.add_argument("--skip-delay", action="store_true")
    args = ap.parse_args()
    print(
        f"machine: {os.cpu_count()} CPUs; {subprocess.run(['ffmpeg', '-version'], capture_output=True, text=True).stdout.splitlines()[0]}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-rec-") as tmp:
        work = Path(tmp)
        throughput(work, args.pool, args.rounds)
        if not args.skip_delay:
            asyncio.run(ingest_delay(work, args.calls, args.rate, args.db_url))


if __name__ == "__main__":
    main()
