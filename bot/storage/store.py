"""The SQLite store: one object owns the database for the whole process.

Two `aiosqlite` connections serve a file database: a writer (behind `Writer`, which queues and
group-commits every mutation) and a reader, so a window load never waits behind another
thread's fsync. WAL mode lets the reader see every committed turn without blocking the writer.
An in-memory database has no second connection to share it with, so it uses one for both.

Per-thread sessions (`session()`) are views holding only an ID and this store: making one per
message costs no connection and no thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aiosqlite

from .records import (
    Author,
    ClearResult,
    Item,
    SessionSummary,
    StoredItem,
    format_timestamp,
    parse_timestamp,
)
from .schema import MESSAGES, SESSIONS, ensure_schema
from .session import StoreSession
from .writer import Row, StoreClosedError, Writer, insert_rows

logger = logging.getLogger(__name__)

MEMORY = ":memory:"

# json_extract raises on malformed JSON, and SQLite does not promise to short-circuit AND, so a
# CASE guards it: a corrupt row never breaks a query, it just is not a user message.
_ROLE = "CASE WHEN json_valid(message_data) THEN json_extract(message_data, '$.role') END"

_COLUMNS = "id, message_data, author_id, author_name, created_at"


class StoreReadOnlyError(RuntimeError):
    """A write was attempted on a store opened read-only."""


class SQLiteStore:
    """Conversation memory for every thread, in one SQLite file (or in memory).

    Use `await SQLiteStore.open(path)` (or `async with`), then `session(session_id)` for an
    SDK `Session`, and the bot-level operations below for commands.
    """

    def __init__(
        self,
        path: str,
        reader: aiosqlite.Connection,
        writer: Writer | None,
        connections: Sequence[aiosqlite.Connection],
    ) -> None:
        """Prefer `open()`; this only assembles already-opened parts."""
        self.path = path
        self._reader = reader
        self._writer = writer
        self._connections = tuple(connections)

    @classmethod
    async def open(
        cls, path: str | Path = MEMORY, *, read_only: bool = False, busy_timeout: float = 5.0
    ) -> SQLiteStore:
        """Open (creating if needed) the database at `path`; `":memory:"` for a temporary one.

        Args:
            path: A file path, or `":memory:"`.
            read_only: Open an existing file without the ability to change it (admin tools).
            busy_timeout: Seconds to wait for another process's write lock before failing.
        """
        path = str(path)
        if path == MEMORY:
            conn = await aiosqlite.connect(MEMORY, timeout=busy_timeout, isolation_level=None)
            try:
                await ensure_schema(conn)
            except BaseException:
                await conn.close()
                raise
            return cls(path, conn, Writer(conn), [conn])
        if read_only:
            uri = f"file:{quote(path)}?mode=ro"  # SQLite resolves relative URI paths itself
            reader = await aiosqlite.connect(uri, uri=True, timeout=busy_timeout)
            return cls(path, reader, None, [reader])

        await asyncio.to_thread(Path(path).parent.mkdir, parents=True, exist_ok=True)
        # Autocommit mode: the writer opens its transactions itself (see writer.py).
        write_conn = await aiosqlite.connect(path, timeout=busy_timeout, isolation_level=None)
        opened = [write_conn]
        try:
            await write_conn.execute("PRAGMA journal_mode=WAL")
            # FULL makes each commit durable across power loss, not just process crashes.
            await write_conn.execute("PRAGMA synchronous=FULL")
            await ensure_schema(write_conn)
            reader = await aiosqlite.connect(path, timeout=busy_timeout)
            opened.append(reader)
        except BaseException:
            for conn in opened:
                await conn.close()
            raise
        return cls(path, reader, Writer(write_conn), opened)

    async def close(self) -> None:
        """Finish queued writes, then close every connection."""
        try:
            if self._writer is not None:
                await self._writer.close()
        finally:
            for conn in reversed(self._connections):
                await conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def session(self, session_id: str, *, limit: int | None = None) -> StoreSession:
        """An SDK `Session` for one thread. Cheap: no I/O, no connection, no thread."""
        return StoreSession(self, session_id, limit=limit)

    # ----- reads -------------------------------------------------------------------------

    async def read_items(self, session_id: str, limit: int | None = None) -> list[Item]:
        """A thread's items, oldest first; with `limit`, only the newest `limit` of them.

        Mirrors `SQLiteSession.get_items`: `limit=0` gives nothing, a negative limit gives all.
        """
        if limit is None or limit < 0:
            rows = await self._reader.execute_fetchall(
                f"SELECT message_data FROM {MESSAGES} WHERE session_id = ? ORDER BY id",
                (session_id,),
            )
            return _decode_items(rows)
        if limit == 0:
            return []
        rows = await self._reader.execute_fetchall(
            f"SELECT message_data FROM {MESSAGES} WHERE session_id = ? ORDER BY id DESC LIMIT ?",
            (session_id, limit),
        )
        return _decode_items(reversed(list(rows)))

    async def history(self, session_id: str, *, limit: int, offset: int = 0) -> list[StoredItem]:
        """Up to `limit` stored items, skipping the newest `offset`; oldest first."""
        rows = await self._reader.execute_fetchall(
            f"SELECT {_COLUMNS} FROM {MESSAGES} WHERE session_id = ? "
            "ORDER BY id DESC LIMIT ? OFFSET ?",
            (session_id, limit, offset),
        )
        return _decode_stored(reversed(list(rows)))

    async def count_items(self, session_id: str) -> int:
        """How many items a thread holds."""
        rows = await self._reader.execute_fetchall(
            f"SELECT count(*) FROM {MESSAGES} WHERE session_id = ?", (session_id,)
        )
        return int(next(iter(rows))[0])

    async def has_items(self, session_id: str) -> bool:
        """Whether a thread holds anything, at the cost of one index probe."""
        rows = await self._reader.execute_fetchall(
            f"SELECT EXISTS (SELECT 1 FROM {MESSAGES} WHERE session_id = ?)", (session_id,)
        )
        return bool(next(iter(rows))[0])

    async def list_sessions(self) -> list[SessionSummary]:
        """Every thread with stored memory, most recently active first."""
        rows = await self._reader.execute_fetchall(
            f"SELECT s.session_id, count(m.id), s.created_at, s.updated_at FROM {SESSIONS} s "
            f"LEFT JOIN {MESSAGES} m ON m.session_id = s.session_id "
            "GROUP BY s.session_id ORDER BY s.updated_at DESC, s.session_id"
        )
        return [
            SessionSummary(sid, int(count), parse_timestamp(created), parse_timestamp(updated))
            for sid, count, created, updated in rows
        ]

    # ----- writes ------------------------------------------------------------------------

    async def append(
        self,
        session_id: str,
        items: Sequence[Item],
        *,
        author: Author | None = None,
        drop_tail: int = 0,
    ) -> None:
        """Add items to a thread in one durable transaction.

        Args:
            session_id: The thread.
            items: SDK input items, in order.
            author: Recorded beside each user message, for `/history`.
            drop_tail: Remove this many of the thread's newest items first, in the same
                transaction (a turn that popped stored items before it committed).
        """
        rows = _rows(session_id, items, author)
        writer = self._require_writer()
        if drop_tail <= 0:
            await writer.append(rows)
            return

        async def replace_tail(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                f"DELETE FROM {MESSAGES} WHERE id IN (SELECT id FROM {MESSAGES} "
                "WHERE session_id = ? ORDER BY id DESC LIMIT ?)",
                (session_id, drop_tail),
            )
            await insert_rows(conn, rows)

        await writer.run(replace_tail)

    async def pop_item(self, session_id: str) -> Item | None:
        """Remove and return a thread's newest item (skipping unreadable rows, as the SDK does)."""

        async def pop(conn: aiosqlite.Connection) -> Item | None:
            while True:
                rows = list(
                    await conn.execute_fetchall(
                        f"DELETE FROM {MESSAGES} WHERE id = (SELECT id FROM {MESSAGES} "
                        "WHERE session_id = ? ORDER BY id DESC LIMIT 1) RETURNING message_data",
                        (session_id,),
                    )
                )
                if not rows:
                    return None
                decoded = _decode_items(rows)
                if decoded:
                    return decoded[0]

        return await self._require_writer().run(pop)

    async def clear(self, session_id: str) -> ClearResult:
        """Forget a thread entirely; says how many items and messages went."""

        async def clear(conn: aiosqlite.Connection) -> ClearResult:
            rows = list(
                await conn.execute_fetchall(
                    f"SELECT count(*), count(CASE WHEN {_ROLE} IN ('user', 'assistant') "
                    f"THEN 1 END) FROM {MESSAGES} WHERE session_id = ?",
                    (session_id,),
                )
            )
            await conn.execute(f"DELETE FROM {MESSAGES} WHERE session_id = ?", (session_id,))
            await conn.execute(f"DELETE FROM {SESSIONS} WHERE session_id = ?", (session_id,))
            items, messages = rows[0]
            return ClearResult(items=int(items), messages=int(messages))

        return await self._require_writer().run(clear)

    async def undo_last_exchange(self, session_id: str) -> list[StoredItem]:
        """Remove the last user message and everything after it, atomically.

        Returns the removed items, oldest first; empty when there is no user message to undo.
        The statement walks back from the newest row only as far as that user message.
        """

        async def undo(conn: aiosqlite.Connection) -> list[StoredItem]:
            rows = await conn.execute_fetchall(
                f"DELETE FROM {MESSAGES} WHERE session_id = ?1 AND id >= ("
                f"SELECT id FROM {MESSAGES} WHERE session_id = ?1 AND {_ROLE} = 'user' "
                f"ORDER BY id DESC LIMIT 1) RETURNING {_COLUMNS}",
                (session_id,),
            )
            return sorted(_decode_stored(rows), key=lambda stored: stored.id)

        return await self._require_writer().run(undo)

    async def delete_idle(self, idle_for: timedelta, *, now: datetime | None = None) -> int:
        """Delete threads untouched for longer than `idle_for`; returns how many went."""
        cutoff = format_timestamp((now or datetime.now(UTC)) - idle_for)

        async def sweep(conn: aiosqlite.Connection) -> int:
            await conn.execute(
                f"DELETE FROM {MESSAGES} WHERE session_id IN "
                f"(SELECT session_id FROM {SESSIONS} WHERE updated_at < ?)",
                (cutoff,),
            )
            cursor = await conn.execute(f"DELETE FROM {SESSIONS} WHERE updated_at < ?", (cutoff,))
            return cursor.rowcount

        return await self._require_writer().run(sweep)

    def _require_writer(self) -> Writer:
        if self._writer is None:
            raise StoreReadOnlyError(f"{self.path} was opened read-only")
        return self._writer


def _rows(session_id: str, items: Iterable[Item], author: Author | None) -> list[Row]:
    rows: list[Row] = []
    for item in items:
        # ensure_ascii keeps lone surrogates as escapes instead of failing to encode as UTF-8.
        data = json.dumps(item)
        if author is not None and item.get("role") == "user":
            rows.append((session_id, data, author.id, author.name))
        else:
            rows.append((session_id, data, None, None))
    return rows


def _decode_items(rows: Iterable[Any]) -> list[Item]:
    items: list[Item] = []
    for row in rows:
        try:
            items.append(json.loads(row[0]))
        except (json.JSONDecodeError, TypeError):
            logger.warning("Skipping an unreadable stored item")
    return items


def _decode_stored(rows: Iterable[Any]) -> list[StoredItem]:
    decoded: list[StoredItem] = []
    for row_id, data, author_id, author_name, created_at in rows:
        try:
            item = json.loads(data)
        except (json.JSONDecodeError, TypeError):
            continue
        author = Author(author_id, author_name or author_id) if author_id else None
        decoded.append(StoredItem(int(row_id), item, author, parse_timestamp(created_at)))
    return decoded


__all__ = ["MEMORY", "SQLiteStore", "StoreClosedError", "StoreReadOnlyError"]
