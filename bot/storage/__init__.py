"""Conversation memory behind one contract (`Store`), on SQLite or PostgreSQL.

Both back ends keep the Agents SDK's own tables, so the SDK's `SQLiteSession` and
`SQLAlchemySession` read and write the bot's memory too.
"""

from .contract import Store, ThreadBusyError
from .failures import Failure, StoreUnavailableError, failure
from .opening import open_store, redact
from .postgres import PostgresStore
from .records import (
    Author,
    ClearResult,
    ForgetReport,
    Item,
    MemoryRead,
    PendingApproval,
    SessionInfo,
    StoredItem,
    Summary,
    ThreadDump,
    Usage,
    UsageGrouping,
    UsageLine,
    UsageTotals,
    WindowItem,
)
from .session import StoreSession
from .store import MEMORY, SQLiteStore, StoreClosedError, StoreReadOnlyError

__all__ = [
    "MEMORY",
    "Author",
    "ClearResult",
    "Failure",
    "ForgetReport",
    "Item",
    "MemoryRead",
    "PendingApproval",
    "PostgresStore",
    "SQLiteStore",
    "SessionInfo",
    "Store",
    "StoreClosedError",
    "StoreReadOnlyError",
    "StoreSession",
    "StoreUnavailableError",
    "StoredItem",
    "Summary",
    "ThreadBusyError",
    "ThreadDump",
    "Usage",
    "UsageGrouping",
    "UsageLine",
    "UsageTotals",
    "WindowItem",
    "failure",
    "open_store",
    "redact",
]
