"""Errors of the web pages' services. Each carries a reason in English (logs, scripts), and a
code with its figures that the page words in the person's language."""

from __future__ import annotations

from typing import Any


class PagesError(Exception):
    status = 400

    def __init__(self, reason: str, code: str = "invalid", **params: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.params = params


class SignInRefused(PagesError):
    """Wrong name or password, a locked or disabled login."""

    status = 401


class TooManyTries(SignInRefused):
    status = 429


class UnknownUser(PagesError):
    status = 404


class AppointmentRefused(PagesError):
    """A callback time outside the calling windows or working days (says which and why)."""

    status = 422
