"""The guard on a test's event loop closing (tests/loop_guard.py)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests import loop_guard


def test_a_task_that_will_not_end_is_named_instead_of_hanging_the_loops_close() -> None:
    """A task that catches its cancellation and waits on a future nobody resolves: asyncio's
    own close would wait for it forever."""
    never: asyncio.Future[None] | None = None

    async def stubborn() -> None:
        nonlocal never
        never = asyncio.get_running_loop().create_future()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await never  # a clean-up that waits for what will never come

    async def main() -> None:
        asyncio.get_running_loop().create_task(stubborn(), name="stubborn")
        await asyncio.sleep(0)

    runner = asyncio.Runner()
    runner.run(main())
    loop = runner.get_loop()
    with pytest.raises(loop_guard.TasksStuckAtClose, match="stubborn") as info:
        loop_guard.cancel_all_tasks(loop, stuck_after=0.05)
    assert "in stubborn" in str(info.value)
    assert never is not None and never.cancelled()  # unstuck: the task could end
    assert not asyncio.all_tasks(loop)
    runner.close()


def test_tasks_that_end_when_cancelled_pass_quietly() -> None:
    async def main() -> None:
        asyncio.get_running_loop().create_task(asyncio.Event().wait())
        await asyncio.sleep(0)

    runner = asyncio.Runner()
    runner.run(main())
    loop_guard.cancel_all_tasks(runner.get_loop(), stuck_after=5)
    assert not asyncio.all_tasks(runner.get_loop())
    runner.close()


def test_the_guard_is_what_closing_a_runner_calls() -> None:
    """It replaces a private function of asyncio; if Python stops calling it, this fails."""
    called: list[asyncio.AbstractEventLoop] = []
    original = asyncio.runners._cancel_all_tasks  # type: ignore[attr-defined]
    assert original is loop_guard.cancel_all_tasks
    try:
        asyncio.runners._cancel_all_tasks = called.append  # type: ignore[attr-defined]
        runner = asyncio.Runner()
        runner.run(asyncio.sleep(0))
        with contextlib.suppress(Exception):
            runner.close()
    finally:
        asyncio.runners._cancel_all_tasks = original  # type: ignore[attr-defined]
    assert len(called) == 1
