"""Conversation memory on SQLite, compatible with the Agents SDK's `SQLiteSession` files."""

from .records import (
    Author,
    ClearResult,
    Item,
    MemoryRead,
    SessionInfo,
    StoredItem,
    Summary,
    Usage,
    WindowItem,
)
from .session import StoreSession
from .store import MEMORY, SQLiteStore, StoreClosedError, StoreReadOnlyError

__all__ = [
    "MEMORY",
    "Author",
    "ClearResult",
    "Item",
    "MemoryRead",
    "SQLiteStore",
    "SessionInfo",
    "StoreClosedError",
    "StoreReadOnlyError",
    "StoreSession",
    "StoredItem",
    "Summary",
    "Usage",
    "WindowItem",
]
