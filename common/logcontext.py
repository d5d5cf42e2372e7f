"""The call a log line is about: a context variable that the log formatter reads
(`callcenter.ops.logs`), so that every line written while a call is handled carries its
attempt id without each call site passing it."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Concatenate, ParamSpec, Protocol, TypeVar

ATTEMPT_ID: ContextVar[str | None] = ContextVar("attempt_id", default=None)

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


class HasAttemptId(Protocol):
    @property
    def attempt_id(self) -> str: ...


L = TypeVar("L", bound=HasAttemptId)


@contextmanager
def attempt_context(attempt_id: str | None) -> Iterator[None]:
    token = ATTEMPT_ID.set(attempt_id)
    try:
        yield
    finally:
        ATTEMPT_ID.reset(token)


def about_the_call(
    method: Callable[Concatenate[S, L, P], Awaitable[R]],
) -> Callable[Concatenate[S, L, P], Awaitable[R]]:
    """A method whose first argument is a call: its log lines carry that call's attempt id
    (set for the method's run, reset after, so the caller's lines are not tagged)."""

    @functools.wraps(method)
    async def wrapper(self: S, call: L, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with attempt_context(call.attempt_id):
            return await method(self, call, *args, **kwargs)

    return wrapper
