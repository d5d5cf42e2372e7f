"""Errors of the reports that callers are expected to handle."""

from __future__ import annotations

from common.errors import DomainError


class SupervisorsOnly(DomainError):
    """A report only supervisors and the maintainer see."""

    status = 403
