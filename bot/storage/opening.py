"""Opening the back end a setting names."""

from __future__ import annotations

from .contract import Store
from .postgres import PostgresStore
from .sqlite import SQLiteStore
from .urls import asyncpg_url, is_postgres_url, sqlite_path


async def open_store(url: str, *, pool_size: int = 10, read_only: bool = False) -> Store:
    """Open the memory `url` names: a PostgreSQL URL, a `sqlite:///` URL or a file path.

    With `read_only`, it is never created, migrated or changed, and must be at this release's
    schema version (`SchemaTooOldError`, `SchemaTooNewError` otherwise).
    """
    if is_postgres_url(url):
        return await PostgresStore.open(asyncpg_url(url), pool_size=pool_size, read_only=read_only)
    return await SQLiteStore.open(sqlite_path(url), read_only=read_only)
