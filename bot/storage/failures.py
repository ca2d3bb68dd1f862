"""What kind of database failure an exception is, whichever back end raised it.

The core explains a failed turn in one friendly line; it asks here instead of knowing the
drivers' exception classes.
"""

from __future__ import annotations

import sqlite3
from enum import Enum

import asyncpg


class StoreUnavailableError(RuntimeError):
    """The database could not be reached (refused, dropped, restarting)."""


class ThreadLostError(StoreUnavailableError):
    """The lock a turn held on its thread was lost with its connection: the turn is not
    stored, since another worker may have taken the thread meanwhile."""


class Failure(Enum):
    BUSY = "busy"
    """Another writer held the database for too long; trying again will work."""
    UNAVAILABLE = "unavailable"
    """The connection failed or was dropped; the pool reconnects by itself."""
    BROKEN = "broken"
    """The database refused the write (full disk, read-only file, permissions)."""


def failure(exc: BaseException) -> Failure | None:
    """The kind of database failure `exc` is, or None when it is not one."""
    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        return Failure.BUSY if "locked" in text or "busy" in text else Failure.BROKEN
    if isinstance(
        exc,
        StoreUnavailableError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        # What asyncpg raises when the server ends a connection in the middle of a query.
        | asyncpg.InternalClientError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.exceptions.InsufficientResourcesError,
    ):
        return Failure.UNAVAILABLE
    if isinstance(exc, asyncpg.exceptions.LockNotAvailableError):
        return Failure.BUSY
    if isinstance(exc, asyncpg.PostgresError):
        return Failure.BROKEN
    return None
