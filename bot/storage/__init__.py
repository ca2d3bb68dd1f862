"""Conversation memory on SQLite, compatible with the Agents SDK's `SQLiteSession` files."""

from .records import Author, ClearResult, Item, SessionSummary, StoredItem
from .session import StoreSession
from .store import MEMORY, SQLiteStore, StoreClosedError, StoreReadOnlyError

__all__ = [
    "MEMORY",
    "Author",
    "ClearResult",
    "Item",
    "SQLiteStore",
    "SessionSummary",
    "StoreClosedError",
    "StoreReadOnlyError",
    "StoreSession",
    "StoredItem",
]
