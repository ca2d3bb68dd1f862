"""Opening the memory for an admin command: to read it without ever creating or changing it,
or to change it."""

from __future__ import annotations

from pathlib import Path

from ..config import Config, ConfigError
from ..storage import IN_MEMORY, SQLiteStore, Store, is_postgres_url, open_store, sqlite_path


def existing_file(config: Config) -> str:
    """The configured SQLite file, which must exist (an admin command never creates one)."""
    if config.db_path == IN_MEMORY:
        raise ConfigError("BOT_DB_PATH is :memory:, so there is no stored memory to look at.")
    if not Path(config.db_path).is_file():
        raise ConfigError(f"No memory file at {config.db_path}: check BOT_DB_PATH.")
    return config.db_path


async def open_for_reading(location: str) -> Store:
    """A store to read from: a SQLite file opened read-only (never created), or PostgreSQL."""
    if is_postgres_url(location):
        return await open_store(location, pool_size=2)
    return await SQLiteStore.open(sqlite_path(location), read_only=True)


async def open_configured(config: Config) -> Store:
    """The configured memory, to read from: PostgreSQL, or the SQLite file opened read-only
    (a missing file is a configuration error, never created)."""
    return await open_for_reading(config.database_url or existing_file(config))


async def open_for_writing(config: Config) -> Store:
    """The configured memory, to change: PostgreSQL, or the SQLite file, which must exist."""
    return await open_store(config.database_url or existing_file(config), pool_size=2)
