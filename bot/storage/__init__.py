"""Conversation memory behind one contract (`Store`), on SQLite or PostgreSQL.

Both back ends keep the Agents SDK's own tables, so the SDK's `SQLiteSession` and
`SQLAlchemySession` read and write the bot's memory too.
"""

from .contract import Store, ThreadBusyError
from .failures import Failure, StoreUnavailableError, failure
from .layout import SchemaTooNewError, SchemaTooOldError
from .opening import open_store, schema_version
from .postgres import PostgresStore
from .records import (
    Author,
    ClearResult,
    DailyUsage,
    DumpedMessage,
    DumpedSummary,
    ForgetReport,
    FoundMessage,
    Item,
    LedgerEntry,
    MemoryRead,
    PendingApproval,
    SessionInfo,
    StoredItem,
    Summary,
    ThreadCursor,
    ThreadDump,
    ThreadFilter,
    ThreadPage,
    ThreadRow,
    Usage,
    UsageGrouping,
    UsageLine,
    UsageTotals,
    WindowItem,
)
from .session import StoreSession
from .sqlite import IN_MEMORY, SQLiteStore, StoreClosedError, StoreReadOnlyError
from .urls import is_postgres_url, redact, sqlite_path

__all__ = [
    "IN_MEMORY",
    "Author",
    "ClearResult",
    "DailyUsage",
    "DumpedMessage",
    "DumpedSummary",
    "Failure",
    "ForgetReport",
    "FoundMessage",
    "Item",
    "LedgerEntry",
    "MemoryRead",
    "PendingApproval",
    "PostgresStore",
    "SQLiteStore",
    "SchemaTooNewError",
    "SchemaTooOldError",
    "SessionInfo",
    "Store",
    "StoreClosedError",
    "StoreReadOnlyError",
    "StoreSession",
    "StoreUnavailableError",
    "StoredItem",
    "Summary",
    "ThreadBusyError",
    "ThreadCursor",
    "ThreadDump",
    "ThreadFilter",
    "ThreadPage",
    "ThreadRow",
    "Usage",
    "UsageGrouping",
    "UsageLine",
    "UsageTotals",
    "WindowItem",
    "failure",
    "is_postgres_url",
    "open_store",
    "redact",
    "schema_version",
    "sqlite_path",
]
