"""Errors of the calendar's jobs that the person who asked can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.errors import DomainError

if TYPE_CHECKING:
    from schedules.services import DayWork


class DistributionDayRefused(DomainError):
    status = 409

    """A distribution for a day far from today, asked for without `force`.

    `preview` is what the run would do (a dry run), so the refusal can say which leads it
    would close or take back."""

    def __init__(self, reason: str, preview: DayWork) -> None:
        super().__init__(reason)
        self.preview = preview
