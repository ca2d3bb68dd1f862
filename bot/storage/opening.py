"""Opening the back end a setting names."""

from __future__ import annotations

from .contract import Store
from .postgres import PostgresStore
from .postgres.schema import MIGRATIONS as POSTGRES_MIGRATIONS
from .sqlite import SQLiteStore
from .sqlite.schema import MIGRATIONS as SQLITE_MIGRATIONS
from .urls import asyncpg_url, is_postgres_url, sqlite_path


async def open_store(
    url: str, *, pool_size: int = 10, read_only: bool = False, lock_url: str | None = None
) -> Store:
    """Open the memory `url` names: a PostgreSQL URL, a `sqlite:///` URL or a file path.

    With `read_only`, it is never created, migrated or changed, and must be at this release's
    schema version (`SchemaTooOldError`, `SchemaTooNewError` otherwise). `lock_url` is where a
    PostgreSQL worker's thread-lock connection goes, when not to `url`.
    """
    if is_postgres_url(url):
        return await PostgresStore.open(
            asyncpg_url(url),
            pool_size=pool_size,
            read_only=read_only,
            lock_url=asyncpg_url(lock_url) if lock_url else None,
        )
    return await SQLiteStore.open(sqlite_path(url), read_only=read_only)


def schema_version(store: Store) -> int:
    """The schema version an opened store is at: its back end's newest, since opening brings
    the schema there (or, read-only, refuses any other)."""
    if isinstance(store, PostgresStore):
        return len(POSTGRES_MIGRATIONS)
    if isinstance(store, SQLiteStore):
        return len(SQLITE_MIGRATIONS)
    raise TypeError(f"not a store this package opens: {store!r}")
