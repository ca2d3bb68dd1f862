"""Admin commands: list threads, print one thread's history (both read-only), and copy
memory from one database to another.

Each is a plain function that runs its own short event loop, so the CLI stays simple.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TextIO

from .config import Config, ConfigError
from .storage import MEMORY, SQLiteStore, Store, open_store
from .storage.opening import is_postgres_url, redact, sqlite_path
from .transcript import render_history
from .transfer import copy_memory


def list_sessions(config: Config, out: TextIO) -> None:
    """Write one line per stored thread, most recently active first."""

    async def load() -> list[tuple[str, int, str]]:
        store = await _open_for_reading(config.database_url or _existing_file(config))
        try:
            sessions = await store.list_sessions()
        finally:
            await store.close()
        return [
            (s.session_id, s.items, s.updated_at.strftime("%Y-%m-%d %H:%M:%S")) for s in sessions
        ]

    rows = asyncio.run(load())
    if not rows:
        out.write("No conversations stored yet.\n")
        return
    width = max(len(session_id) for session_id, _, _ in rows)
    out.write(f"{'SESSION':<{width}}  {'ITEMS':>6}  LAST ACTIVE (UTC)\n")
    for session_id, items, when in rows:
        out.write(f"{session_id:<{width}}  {items:>6}  {when}\n")


def print_history(config: Config, session_id: str, limit: int, out: TextIO) -> None:
    """Write a thread's newest `limit` items as a readable transcript."""

    async def load() -> str | None:
        store = await _open_for_reading(config.database_url or _existing_file(config))
        try:
            total = await store.count_items(session_id)
            entries = await store.history(session_id, limit=limit)
        finally:
            await store.close()
        if total == 0:
            return None
        shown = f"the newest {len(entries)} of {total}" if total > len(entries) else f"all {total}"
        return render_history(
            entries,
            bot_name=config.name,
            header=f"{session_id} ({shown} items, newest last):",
            footer="",
            max_chars=None,
        )

    text = asyncio.run(load())
    out.write(f"No memory stored for {session_id!r}.\n" if text is None else text + "\n")


def _existing_file(config: Config) -> str:
    if config.db_path == MEMORY:
        raise ConfigError("BOT_DB_PATH is :memory:, so there is no stored memory to look at.")
    if not Path(config.db_path).is_file():
        raise ConfigError(f"No memory file at {config.db_path}: check BOT_DB_PATH.")
    return config.db_path


def migrate(source: str, target: str, out: TextIO) -> None:
    """Copy every thread from the `source` database to the `target` one, and say what moved."""
    if not is_postgres_url(source):
        path = sqlite_path(source)
        if path == MEMORY or not Path(path).is_file():
            raise ConfigError(f"No memory file at {path}: check --from.")

    async def run() -> list[str]:
        origin = await _open_for_reading(source)
        try:
            destination = await open_store(target)
            try:
                report = await copy_memory(origin, destination)
            finally:
                await destination.close()
        finally:
            await origin.close()
        return report.lines()

    out.write(f"Copying memory from {redact(source)} to {redact(target)} ...\n")
    for line in asyncio.run(run()):
        out.write(line + "\n")


async def _open_for_reading(location: str) -> Store:
    """A store to read from: a SQLite file opened read-only (never created), or PostgreSQL."""
    if is_postgres_url(location):
        return await open_store(location, pool_size=2)
    return await SQLiteStore.open(sqlite_path(location), read_only=True)
