"""Opening the memory for an admin command: to read it without ever creating or changing it,
or to change it."""

from __future__ import annotations

from pathlib import Path

from ..config import Config, ConfigError
from ..storage import (
    IN_MEMORY,
    SchemaTooNewError,
    SchemaTooOldError,
    Store,
    open_store,
)


def existing_file(config: Config) -> str:
    """The configured SQLite file, which must exist (an admin command never creates one)."""
    if config.db_path == IN_MEMORY:
        raise ConfigError("BOT_DB_PATH is :memory:, so there is no stored memory to look at.")
    if not Path(config.db_path).is_file():
        raise ConfigError(f"No memory file at {config.db_path}: check BOT_DB_PATH.")
    return config.db_path


async def open_for_reading(location: str) -> Store:
    """A store to read from, never created, upgraded or changed: a SQLite file opened
    read-only, or PostgreSQL in read-only transactions.

    Raises:
        ConfigError: Its schema is missing, older or newer than this release's, in one line
            saying what to do.
    """
    try:
        return await open_store(location, pool_size=2, read_only=True)
    except SchemaTooOldError as exc:
        raise ConfigError(_too_old(exc)) from None
    except SchemaTooNewError as exc:
        raise ConfigError(str(exc)) from None


def _too_old(exc: SchemaTooOldError) -> str:
    if exc.version == 0:
        return (
            f"the memory at {exc.location} holds nothing of this bot yet (no schema): check "
            "that it is the right one, or start the bot once with it to create one"
        )
    return (
        f"the memory at {exc.location} is at schema version {exc.version}, older than this "
        f"bot's {exc.current}: start the bot once with it (it upgrades the schema as it "
        "starts), then run this again"
    )


async def open_configured(config: Config) -> Store:
    """The configured memory, to read from: PostgreSQL, or the SQLite file opened read-only
    (a missing file is a configuration error, never created)."""
    return await open_for_reading(config.database_url or existing_file(config))


async def open_for_writing(config: Config) -> Store:
    """The configured memory, to change: PostgreSQL, or the SQLite file, which must exist."""
    return await open_store(config.database_url or existing_file(config), pool_size=2)
