"""Opening the back end a setting names."""

from __future__ import annotations

from .contract import Store
from .postgres import PostgresStore
from .sqlite import SQLiteStore
from .urls import asyncpg_url, is_postgres_url, sqlite_path


async def open_store(url: str, *, pool_size: int = 10) -> Store:
    """Open the memory `url` names: a PostgreSQL URL, a `sqlite:///` URL or a file path."""
    if is_postgres_url(url):
        return await PostgresStore.open(asyncpg_url(url), pool_size=pool_size)
    return await SQLiteStore.open(sqlite_path(url))
