"""The base of every package's domain exceptions.

A package raises its own subclasses (`dialer.exceptions`, `crm_sync.exceptions`, …) with a
`reason` the caller can act on and a `status` hint; the web layer's error middleware
(`callcenter.web`) is the one place that turns them into HTTP answers. Anything else that
escapes a handler (a `ValueError` or `KeyError` from a bug) is a 500, never a 400."""

from __future__ import annotations


class DomainError(Exception):
    """An error the caller caused or can fix: answered with `status` and `reason`."""

    status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadInput(DomainError):
    """The request's input is malformed (a handler's validation failed)."""


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


__all__ = ["BadInput", "Conflict", "DomainError", "NotFound"]
