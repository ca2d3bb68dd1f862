"""The SQLite back end: one process, one file, one writer."""

from .store import IN_MEMORY, SQLiteStore, StoreReadOnlyError
from .writer import StoreClosedError

__all__ = ["IN_MEMORY", "SQLiteStore", "StoreClosedError", "StoreReadOnlyError"]
