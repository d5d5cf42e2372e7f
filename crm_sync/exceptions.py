"""Errors of the CRM package that callers are expected to handle."""

from __future__ import annotations

from common.errors import DomainError


class CrmError(DomainError):
    """Base class: a problem the user can act on; `str()` says what and how."""


class ImportInputError(CrmError):
    """The file cannot be imported at all (missing column, empty, unreadable): nothing written."""


class SpecialistError(CrmError):
    """A specialist command cannot be carried out (duplicate seat, unknown id, …)."""


class NotFound(CrmError):
    """The thing named does not exist."""

    status = 404
