"""What a database error means for the caller: the server gone (cut, restarting,
unreachable), so the same work may succeed later, or anything else."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError


def is_disconnect(exc: BaseException) -> bool:
    """True when `exc` says the database could not be reached or the connection died:
    a refused or reset socket, or a driver error SQLAlchemy flags as a lost connection."""
    if isinstance(exc, OSError):  # ConnectionRefusedError, ConnectionResetError, timeouts
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    # asyncpg raises its own errors outside SQLAlchemy's wrapping on a few paths (connect).
    return type(exc).__name__ in {
        "ConnectionDoesNotExistError",
        "CannotConnectNowError",
        "ConnectionFailureError",
    }
