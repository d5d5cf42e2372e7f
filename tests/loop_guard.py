"""A test's event loop may not hang at its close (no tests here; installed by conftest.py).

When a test's loop closes, asyncio cancels the tasks still alive and waits for every one of
them, without a limit. A task that never ends once cancelled (it waits, in a `finally` or
after catching the cancellation, on a future nobody will resolve) held a whole run for
pytest-timeout's 300 s and left only the loop's `select` in the report: which task, waiting
where, was lost. Here the wait is bounded; a task still alive then is named with the chain
of awaits where it stands, the future it waits on is cancelled so that it can end, and the
test's teardown fails with that report.
"""

from __future__ import annotations

import asyncio
import asyncio.runners
from typing import Any

STUCK_AFTER = 10.0  # real seconds; cancelled tasks normally end within a few loop turns
ROUNDS = 3  # a task may wait on another future in its clean-up: unstick it that often

_installed = False


class TasksStuckAtClose(RuntimeError):
    pass


def await_chain(task: asyncio.Task[Any]) -> tuple[list[str], asyncio.Future[Any] | None]:
    """Where `task` waits (its own stack shows only its outermost frame): its coroutines,
    outermost first, as "name (file.py:line)", then the type of what the innermost awaits
    if that is not a coroutine; and that object if it is a future, else None."""
    where: list[str] = []
    obj: Any = task.get_coro()
    while obj is not None and len(where) < 20:
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None)
        if frame is None:
            where.append(type(obj).__name__)
            break
        code = frame.f_code
        where.append(f"{code.co_name} ({code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno})")
        obj = getattr(obj, "cr_await", None) or getattr(obj, "gi_yieldfrom", None)
    return where, obj if isinstance(obj, asyncio.Future) else None


def _describe(task: asyncio.Task[Any]) -> str:
    where, future = await_chain(task)
    lines = [f"task {task.get_name()!r}:", *(f"    in {w}" for w in where)]
    lines.append(f"    waiting on {future!r}"[:300])
    return "\n".join(lines)


def cancel_all_tasks(loop: asyncio.AbstractEventLoop, stuck_after: float = STUCK_AFTER) -> None:
    """`asyncio.runners._cancel_all_tasks` with a bound: raises `TasksStuckAtClose` naming
    the tasks that did not end within `stuck_after` seconds of their cancellation."""
    reports: list[str] = []
    ended: list[asyncio.Task[Any]] = []
    for _ in range(ROUNDS):
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        if not pending:
            break
        for t in pending:
            t.cancel()
        done, stuck = loop.run_until_complete(asyncio.wait(pending, timeout=stuck_after))
        ended += done
        for t in stuck:
            reports.append(_describe(t))
            _, future = await_chain(t)
            if future is not None:
                future.cancel()  # the task can end now, its clean-up included
    for t in ended:  # as asyncio's own: an error raised while ending is not lost
        if not t.cancelled() and t.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during the loop's shutdown",
                    "exception": t.exception(),
                    "task": t,
                }
            )
    if reports:
        raise TasksStuckAtClose(
            f"tasks did not end within {stuck_after:.0f} s of being cancelled when the "
            "test's event loop closed (each was unstuck by cancelling what it waited on):\n"
            + "\n".join(reports)
        )


def install() -> None:
    """Replace asyncio's own (a private function, which `asyncio.Runner.close` calls; the
    test suite pins its Python, and `test_loop_guard.py` fails if it is no longer called)."""
    global _installed
    if not _installed:
        asyncio.runners._cancel_all_tasks = cancel_all_tasks  # type: ignore[attr-defined]
        _installed = True
