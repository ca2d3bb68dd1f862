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
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiosqlite

from ..codec import encode_rows
from ..deliveries import RecentKeys
from ..dialect import SQLITE
from ..layout import MESSAGES, SEARCH, STORED_COLUMNS, check_readable, qualified
from ..matching import best_matches, found_messages, match_expressions
from ..operations import Operations
from ..primitives import Scope, Work
from ..records import Author, ForgetReport, FoundMessage, Item, StoredItem, Usage
from ..statements import Statements
from .probe import FileIdentity, check_reopenable, identity_of
from .schema import MIGRATIONS, ensure_schema, index_new_messages
from .writer import StoreClosedError, Writer, insert_rows

logger = logging.getLogger(__name__)

T = TypeVar("T")

IN_MEMORY = ":memory:"

_SEARCH = SQLITE.adapt(
    f"SELECT {qualified(STORED_COLUMNS, 'm')} "
    f"FROM {SEARCH} JOIN {MESSAGES} AS m ON m.id = {SEARCH}.rowid "
    f"WHERE {SEARCH} MATCH $1 AND m.session_id = $2 ORDER BY {SEARCH}.rank LIMIT $3"
)

# Newest first, by row ID: FTS5 walks its index in rowid order itself, so a page costs what it
# shows however common the words are (ranking would score every match first).
_SEARCH_ALL = SQLITE.adapt(
    f"SELECT m.session_id, {qualified(STORED_COLUMNS, 'm')} "
    f"FROM {SEARCH} JOIN {MESSAGES} AS m ON m.id = {SEARCH}.rowid "
    f"WHERE {SEARCH} MATCH $1 AND {SEARCH}.rowid < $2 ORDER BY {SEARCH}.rowid DESC LIMIT $3"
)


class StoreReadOnlyError(RuntimeError):
    """A write was attempted on a store opened read-only."""


class SQLiteStore(Operations):
    """Conversation memory for every thread, in one SQLite file (or in memory).

    Use `await SQLiteStore.open(path)` (or `async with`), then `session(session_id)` for an
    SDK `Session`, and the bot-level operations of `Store` for commands.
    """

    _sql = Statements(SQLITE)

    def __init__(
        self,
        path: str,
        reader: aiosqlite.Connection,
        writer: Writer | None,
        connections: Sequence[aiosqlite.Connection],
        identity: FileIdentity | None = None,
        *,
        tidy: bool = False,
    ) -> None:
        """Prefer `open()`; this only assembles already-opened parts (`identity`: the file's,
        as opened, for `ping`; `tidy`: remove the WAL files reading left, on `close`)."""
        self.path = path
        self._identity = identity
        self._tidy = tidy
        self._reader = reader
        self._writer = writer
        self._connections = tuple(connections)
        # One process owns the file, so the events it has taken are all there is to know.
        self._recent = RecentKeys()

    @classmethod
    async def open(
        cls, path: str | Path = IN_MEMORY, *, read_only: bool = False, busy_timeout: float = 5.0
    ) -> SQLiteStore:
        """Open (creating if needed) the database at `path`; `":memory:"` for a temporary one.

        Args:
            path: A file path, or `":memory:"`.
            read_only: Open an existing file without the ability to change it (admin tools);
                one at another schema version than this release's is refused
                (`layout.check_readable`).
            busy_timeout: Seconds to wait for another process's write lock before failing.
        """
        path = str(path)
        if path == IN_MEMORY:
            conn = await aiosqlite.connect(IN_MEMORY, timeout=busy_timeout, isolation_level=None)
            try:
                await ensure_schema(conn)
            except BaseException:
                await conn.close()
                raise
            return cls(path, conn, Writer(conn), [conn])
        if read_only:
            # Reading a file in WAL mode makes its -wal and -shm files; when nothing else had
            # them open (there were none), `close` removes them again, leaving no trace.
            tidy = not await asyncio.to_thread(_has_wal_files, path)
            uri = f"file:{quote(path)}?mode=ro"  # SQLite resolves relative URI paths itself
            reader = await aiosqlite.connect(uri, uri=True, timeout=busy_timeout)
            try:
                rows = list(await reader.execute_fetchall("PRAGMA user_version"))
                check_readable(path, int(rows[0][0]), len(MIGRATIONS))
            except BaseException:
                await reader.close()
                raise
            return cls(path, reader, None, [reader], tidy=tidy)

        folder = Path(path).parent
        if not await asyncio.to_thread(folder.is_dir):
            # A mistyped path should not quietly grow folders and a fresh, empty memory.
            raise FileNotFoundError(f"there is no folder {folder} to keep {Path(path).name} in")
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
            identity = await identity_of(path)
        except BaseException:
            for conn in opened:
                await conn.close()
            raise
        store = cls(path, reader, Writer(write_conn), opened, identity)
        try:
            # Messages written while the bot was away (or before the index existed) become
            # searchable now, not at the first search.
            await store.index_for_search()
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        """Finish queued writes, then close every connection."""
        try:
            if self._writer is not None:
                await self._writer.close()
        finally:
            for conn in reversed(self._connections):
                await conn.close()
            if self._tidy:
                await asyncio.to_thread(_remove_wal_files, self.path)

    @property
    def location(self) -> str:
        """The file's path (or `:memory:`)."""
        return self.path

    # ----- the primitives ------------------------------------------------------------------

    async def _read(self, statement: str, *args: Any, thread: str | None = None) -> list[Any]:
        return list(await self._reader.execute_fetchall(statement, args))

    async def _transaction(self, work: Work[T], scope: Scope) -> T:
        # The writer runs one transaction at a time, so every one is a snapshot and exclusive.
        if scope.read_only:
            return await work(_Transaction(self._reader))
        return await self._require_writer().run(lambda conn: work(_Transaction(conn)))

    def _require_writer(self) -> Writer:
        if self._writer is None:
            raise StoreReadOnlyError(f"{self.path} was opened read-only")
        return self._writer

    # ----- the hot path --------------------------------------------------------------------

    @property
    def claims_contended(self) -> bool:
        """One process serves a SQLite file: nobody else claims its events."""
        return False

    def claim_summary(self, session_id: str) -> AbstractAsyncContextManager[bool]:
        """Always granted: no other process shares the file, and the summaries of this one
        already run one per thread."""
        return nullcontext(True)

    def hold_thread(self, session_id: str, *, wait: float) -> AbstractAsyncContextManager[None]:
        """Nothing to hold: one process serves a SQLite file, and the core's own per-thread
        lock already serialises its turns."""
        return nullcontext()

    async def first_delivery(self, key: str) -> bool:
        """True the first time this process sees `key`: no other process shares the file."""
        return self._recent.first_time(key)

    async def ping(self) -> None:
        """Read the schema's first page through the reader, then look at the path as the next
        start would open it: a file made unreadable, removed or replaced since start-up fails
        it, though the open connections would go on using it (`probe`)."""
        await self._reader.execute_fetchall("SELECT 1 FROM sqlite_master LIMIT 1")
        if self._identity is not None:
            await check_reopenable(self.path, self._identity)

    async def append(
        self,
        session_id: str,
        items: Sequence[Item],
        *,
        author: Author | None = None,
        usage: Usage | None = None,
        replace_from: int | None = None,
        settles: str | None = None,
    ) -> None:
        """Add items to a thread in one durable transaction.

        A plain append joins the writer's group commit; one that replaces the thread's tail or
        settles an approval runs alone (see `Store.append` for the arguments).
        """
        rows = encode_rows(session_id, items, author, usage)
        writer = self._require_writer()
        if replace_from is None and settles is None:
            await writer.append(rows)
            return

        async def replace_tail(conn: aiosqlite.Connection) -> None:
            if replace_from is not None:
                await conn.execute(self._sql.delete_tail, (session_id, replace_from))
            if settles is not None:
                await conn.execute(self._sql.settle, (settles,))
            await insert_rows(conn, rows)

        await writer.run(replace_tail)

    async def search(self, session_id: str, query: str, *, limit: int) -> list[StoredItem]:
        """This thread's messages that best match the words of `query`, best first.

        Messages with every word (or word prefix) come first, then those with some of them.
        Only `session_id`'s messages can ever be returned.
        """
        expressions = match_expressions(
            query, lambda word: f'"{word}"*', all_of=" AND ", any_of=" OR "
        )
        if not expressions:
            return []
        await self.index_for_search()

        async def fetch(expression: str) -> Iterable[Any]:
            return await self._reader.execute_fetchall(_SEARCH, (expression, session_id, limit))

        return await best_matches(expressions, fetch, limit=limit, time_of=SQLITE.time_of)

    async def search_threads(
        self, query: str, *, before_id: int | None = None, limit: int
    ) -> list[FoundMessage]:
        """Messages of any thread holding every word of `query` (prefixes too), newest first."""
        expressions = match_expressions(
            query, lambda word: f'"{word}"*', all_of=" AND ", any_of=" OR "
        )
        if not expressions:
            return []
        await self.index_for_search()
        below = (1 << 62) if before_id is None else before_id
        rows = await self._reader.execute_fetchall(_SEARCH_ALL, (expressions[0], below, limit))
        return found_messages(rows, SQLITE.time_of)

    async def index_for_search(self) -> None:
        """Bring the search index up to date with every stored message.

        Runs in batches, each its own transaction queued between turns' writes, so a large
        backlog (a file from before the index existed) never holds a turn up for long.
        """
        writer = self._require_writer()
        while True:
            through, current = await writer.run(index_new_messages)
            if current:
                return
            logger.info("Indexed messages up to #%d for search; continuing", through)

    async def _erase(self, forget: Callable[[], Awaitable[ForgetReport]]) -> ForgetReport:
        # Deleted rows are overwritten, not just unlinked (builds default either way), for
        # this operation only: what someone asked to have deleted should not stay readable
        # in the file's free pages.
        writer = self._require_writer()
        was = await writer.run(lambda conn: _secure_delete(conn, on=True))
        try:
            report = await forget()
            if report.messages:
                # FTS5 hides a deleted row's words behind a tombstone and drops them only
                # when it merges its segments: merging now leaves no word of theirs in it.
                await writer.run(_merge_search_index)
        finally:
            await writer.run(lambda conn: _secure_delete(conn, on=was))
        return report


class _Transaction:
    """A connection inside the writer's transaction (or the reader), as `Transaction`."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def rows(self, statement: str, *args: Any) -> list[Any]:
        return list(await self._conn.execute_fetchall(statement, args))

    async def run(self, statement: str, *args: Any) -> int:
        cursor = await self._conn.execute(statement, args)
        return cursor.rowcount

    async def run_many(self, statement: str, args: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(statement, args)


async def _secure_delete(conn: aiosqlite.Connection, *, on: bool | int) -> int:
    """Set the connection's `secure_delete` (see `_erase`); returns what it was."""
    rows = list(await conn.execute_fetchall("PRAGMA secure_delete"))
    await conn.execute(f"PRAGMA secure_delete = {int(on)}")
    return int(rows[0][0])


async def _merge_search_index(conn: aiosqlite.Connection) -> None:
    await conn.execute(f"INSERT INTO {SEARCH} ({SEARCH}) VALUES ('optimize')")


def _has_wal_files(path: str) -> bool:
    return any(Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-shm"))


def _remove_wal_files(path: str) -> None:
    """Have SQLite remove the -wal and -shm files a read-only connection left behind.

    A read-only connection cannot: SQLite checkpoints and deletes them when the last
    connection to close can write. So one that can (`mode=rw`: it never creates the file)
    reads, which opens the log, and closes; if another process has the file open meanwhile,
    SQLite keeps the files for it, as it should.
    """
    if not _has_wal_files(path):
        return
    try:
        conn = sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True)
        try:
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        logger.debug("Could not remove the WAL files of %s: %s", path, exc)


__all__ = ["IN_MEMORY", "SQLiteStore", "StoreClosedError", "StoreReadOnlyError"]
