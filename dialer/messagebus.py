"""A small in-process message bus: the dialer's units talk through it, not through each
other's internals (the pattern of "Architecture Patterns with Python", ch. 8-9).

Events (`dialer.domain`) are facts: any number of handlers, called in subscription order,
synchronously, on the event loop's thread. A handler that must do I/O queues the work for
its own unit's task (the seat store's writer, the result writer): publishing never awaits,
so the AMI reader that publishes a call's end is never held up by a database write. A
handler's exception is logged and does not stop the others (one unit's bug must not silence
the rest). Commands have exactly one handler and return its answer."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E")
EventHandler = Callable[[Any], None]


class MessageBus:
    def __init__(self) -> None:
        self._handlers: defaultdict[type, list[EventHandler]] = defaultdict(list)
        self._commands: dict[type, Callable[[Any], Any]] = {}
        self.published = 0

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> None:
        self._handlers[event_type].append(handler)

    def register(self, command_type: type[E], handler: Callable[[E], Any]) -> None:
        if command_type in self._commands:
            raise ValueError(f"{command_type.__name__} already has a handler")
        self._commands[command_type] = handler

    def publish(self, event: object) -> None:
        self.published += 1
        for handler in self._handlers.get(type(event), ()):
            try:
                handler(event)
            except Exception:
                log.exception("handler %r failed on %r", handler, event)

    def handle(self, command: object) -> Any:
        handler = self._commands.get(type(command))
        if handler is None:
            raise LookupError(f"no handler for {type(command).__name__}")
        return handler(command)


__all__ = ["EventHandler", "MessageBus"]
