"""Read-only admin views of the memory file: list threads, print one thread's history.

Each view is a plain function that runs its own short event loop, so the CLI stays simple.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TextIO

from .config import Config, ConfigError
from .storage import MEMORY, SQLiteStore
from .transcript import render_history


def list_sessions(config: Config, out: TextIO) -> None:
    """Write one line per stored thread, most recently active first."""
    path = _existing_file(config)

    async def load() -> list[tuple[str, int, str]]:
        async with await SQLiteStore.open(path, read_only=True) as store:
            sessions = await store.list_sessions()
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
    path = _existing_file(config)

    async def load() -> str | None:
        async with await SQLiteStore.open(path, read_only=True) as store:
            total = await store.count_items(session_id)
            entries = await store.history(session_id, limit=limit)
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
