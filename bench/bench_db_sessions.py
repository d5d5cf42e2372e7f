"""What the seat-ready bench does to the database and the event loop, per Originate: prints
figures (not a test). It runs `bench_dialer.py`'s latency part unchanged and, over its steady
state only, counts connections opened, sessions (pool checkouts) by the unit that opened them,
transactions (BEGIN, COMMIT, ROLLBACK) and statements, and the CPU each task spends on the
loop's thread (`time.thread_time`, so the machine's load does not inflate it).

Run from a tree's root (it imports that tree's `bench/bench_dialer.py`), so the same command
compares two checkouts side by side:

    .venv/bin/python bench/bench_db_sessions.py --seats 200 --steady-seconds 30 --skip-throughput

Tasks run as pure-Python tasks here (to name the task a loop callback belongs to): the loop's
figures are for comparing trees, not absolute."""

from __future__ import annotations

import asyncio
import collections
import sys
import time
from asyncio import events, tasks
from pathlib import Path
from typing import Any

ROOT = Path.cwd()
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import bench_dialer  # noqa: E402
from sqlalchemy import event  # noqa: E402

counts: collections.Counter[str] = collections.Counter()
by_unit: collections.Counter[str] = collections.Counter()
loop_cpu: collections.defaultdict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
steady = False
engines: list[Any] = []
marks: list[int] = []


def unit_of_task() -> str:
    """The innermost project coroutine of the running task: the unit that asked."""
    task = asyncio.current_task()
    name = "?"
    coro: Any = task.get_coro() if task is not None else None
    while coro is not None:
        frame = getattr(coro, "cr_frame", None)
        if frame is not None and ".venv" not in frame.f_code.co_filename:
            if any(f"/{p}/" in frame.f_code.co_filename for p in ("dialer", "callcenter")):
                name = f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}"
        coro = getattr(coro, "cr_await", None)
    return name


def listen(engine: Any) -> Any:
    sync = engine.sync_engine

    def on(name: str, site: bool = False) -> None:
        def count(*_: Any) -> None:
            if steady:
                counts[name] += 1
                if site:
                    by_unit[unit_of_task()] += 1

        event.listen(sync, name, count)

    on("connect")
    on("checkout", site=True)
    for name in ("begin", "commit", "rollback"):
        on(name)

    @event.listens_for(sync, "before_cursor_execute")
    def statement(_c: Any, _cur: Any, stmt: str, *_: Any) -> None:
        if steady:
            counts["statement " + stmt.lstrip().split(None, 1)[0].upper()] += 1

    return engine


def run_handle(self: Any) -> None:
    if not steady:
        return original_run(self)
    t = time.thread_time()
    original_run(self)
    owner = getattr(self._callback, "__self__", None)
    name = owner.get_coro().__qualname__ if isinstance(owner, PY_TASK) else "callbacks"
    entry = loop_cpu[name]
    entry[0] += 1
    entry[1] += time.thread_time() - t


original_run = events.Handle._run
PY_TASK: Any = tasks.__dict__["_PyTask"]
original_create = bench_dialer.create_engine
original_lag = bench_dialer.loop_lag
original_engine_for = bench_dialer.engine_for


def engine_for(*args: Any) -> Any:
    engines.append(original_engine_for(*args))
    return engines[-1]


async def loop_lag(out: list[float], step: float = 0.005) -> None:
    """The bench starts this when the steady state starts and cancels it at its end."""
    global steady
    steady = True
    marks.append(len(engines[-1].latencies))
    try:
        await original_lag(out, step)
    finally:
        steady = False
        marks.append(len(engines[-1].latencies))


async def main() -> None:
    asyncio.get_running_loop().set_task_factory(
        lambda loop, coro, **kw: PY_TASK(coro, loop=loop, **kw)
    )
    await bench_dialer.main()


def report() -> None:
    originates = max(marks[1] - marks[0], 1)
    print(f"steady state, {originates} Originates:")
    for name, n in sorted(counts.items()):
        print(f"  {name:20s} {n:6d}  {n / originates:6.2f} per Originate")
    print("sessions by unit:")
    for unit, n in by_unit.most_common():
        print(f"  {n:6d}  {unit}")
    total = sum(cpu for _, cpu in loop_cpu.values())
    print(f"CPU on the loop's thread: {total:.2f} s; by task:")
    for name, (steps, cpu) in sorted(loop_cpu.items(), key=lambda kv: -kv[1][1])[:10]:
        print(f"  {cpu:6.3f} s  {int(steps):6d} steps  {name}")


if __name__ == "__main__":
    events.Handle._run = run_handle  # type: ignore[method-assign]
    bench_dialer.create_engine = lambda url, **kw: listen(original_create(url, **kw))
    bench_dialer.loop_lag = loop_lag
    bench_dialer.engine_for = engine_for  # type: ignore[assignment]
    asyncio.run(main())
    report()
