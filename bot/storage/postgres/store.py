"""The PostgreSQL store: the same memory as `SQLiteStore`, shared by any number of workers.

Driver: asyncpg. It speaks PostgreSQL's binary protocol natively on asyncio, prepares and
caches each statement once per connection, and is the fastest asyncio driver by a wide
margin in its own and third-party benchmarks; the SDK's `SQLAlchemySession` uses it under
SQLAlchemy on PostgreSQL too. One pool per process, sized from `BOT_DATABASE_POOL`.

Every mutation is one transaction; a turn's is one statement (one round trip), the rarer
ones (commands, approvals, summaries) run in an explicit transaction through the shared
operations. Turns are serialised per thread across workers with a session-level advisory
lock, held on one pooled connection for the turn, which the server drops with the connection
if the worker dies; the turn is stored on that same connection, so a turn whose lock was lost
stores nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs, urlsplit

import asyncpg

from ..codec import encode_rows
from ..contract import ThreadBusyError
from ..deliveries import RecentKeys
from ..dialect import POSTGRES
from ..failures import StoreUnavailableError
from ..layout import (
    MESSAGES,
    SEARCH,
    SESSIONS,
    STORED_COLUMNS,
    USAGE_LIST,
    check_readable,
    qualified,
)
from ..matching import best_matches, match_expressions
from ..operations import Operations
from ..primitives import Scope, Work
from ..records import Author, Item, StoredItem, Usage
from ..statements import Statements
from ..urls import redact
from .locks import lock_key, unlock
from .schema import DELIVERIES, MIGRATIONS, Connection, migrate, stored_version

logger = logging.getLogger(__name__)

T = TypeVar("T")

_DELIVERY_DAYS = 1
"""Platforms redeliver within minutes; a day of event keys is more than enough."""
_PRUNE_SECONDS = 3600.0

# Registering the thread and inserting its rows in one statement: one round trip, one
# implicit transaction. The rows arrive as parallel arrays, kept in order by ordinality.
_APPEND = f"""
WITH touched AS (
    INSERT INTO {SESSIONS} (session_id) VALUES ($1)
    ON CONFLICT (session_id) DO UPDATE SET updated_at = EXCLUDED.updated_at
)
INSERT INTO {MESSAGES} (session_id, message_data, author_id, author_name, {USAGE_LIST}, asked_by)
SELECT $1, r.data, r.author_id, r.author_name, r.model, r.input_tokens, r.cached_tokens,
    r.output_tokens, r.input_chars, r.asked_by
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[], $8::int[],
    $9::int[], $10::text[]) WITH ORDINALITY
    AS r(data, author_id, author_name, model, input_tokens, cached_tokens, output_tokens,
         input_chars, asked_by, n)
ORDER BY r.n
"""

# Indexing one thread's messages not yet in the search index (every row gets an entry, empty
# for tool items, so each is looked at once). An anti-join, not a high-water mark: rows of
# concurrent writers may commit out of ID order.
_INDEX_THREAD = f"""
INSERT INTO {SEARCH} (id, session_id, words)
SELECT m.id, m.session_id, bot_words(m.message_data) FROM {MESSAGES} AS m
WHERE m.session_id = $1
  AND NOT EXISTS (SELECT 1 FROM {SEARCH} AS s WHERE s.id = m.id)
ON CONFLICT (id) DO NOTHING
"""

_SEARCH = f"""
SELECT {qualified(STORED_COLUMNS, "m")}
FROM {SEARCH} AS s JOIN {MESSAGES} AS m ON m.id = s.id, to_tsquery('simple', $2) AS q
WHERE s.session_id = $1 AND s.words @@ q
ORDER BY ts_rank(s.words, q) DESC, m.id DESC LIMIT $3
"""

_CLAIM = f"INSERT INTO {DELIVERIES} (key) VALUES ($1) ON CONFLICT DO NOTHING RETURNING true"
_PRUNE = f"DELETE FROM {DELIVERIES} WHERE taken_at < now() - make_interval(days => $1)"


async def _keep_as_is(conn: Connection) -> None:
    """The pool's reset on release, replacing asyncpg's four-statement default.

    Our connections carry no session state from one use to the next: `lock_timeout` is reset
    in the statement that set it, `hold_thread` unlocks what it locked (or ends the
    connection), and nothing LISTENs or keeps cursors; asyncpg itself still rolls back an
    unfinished transaction. Skipping the default saves a round trip per use, about a fifth
    of a turn's time on the store (bench.store_bench).
    """


def _server_settings(url: str, *, read_only: bool) -> dict[str, str]:
    # Timestamps are stored without a zone (as the SDK's tables have them) and read as UTC,
    # so every connection of ours works in UTC. A name given in the URL is kept.
    settings = {"timezone": "UTC"}
    if "application_name" not in parse_qs(urlsplit(url).query):
        settings["application_name"] = "memorybot"
    if read_only:
        # The server itself refuses any write of a store opened to be read.
        settings["default_transaction_read_only"] = "on"
    return settings


class PostgresStore(Operations):
    """Conversation memory for every thread, in one PostgreSQL database.

    Use `await PostgresStore.open(url)`, then the same operations as `SQLiteStore`.
    """

    _sql = Statements(POSTGRES)

    def __init__(self, pool: asyncpg.Pool, location: str, *, pool_size: int) -> None:
        """Prefer `open()`; this only assembles an opened, migrated pool."""
        self._pool = pool
        # A holder keeps its lock's connection and may need one more for a read, so at least
        # one connection must stay free of holders, or holders waiting for it would deadlock.
        self._holders = asyncio.Semaphore(max(1, pool_size - 1))
        # The lock connection of each (task, thread) holding one.
        self._holds: dict[tuple[asyncio.Task[Any] | None, str], Connection] = {}
        self._location = location
        self._recent = RecentKeys()
        self._pruned_at: float | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        pool_size: int = 10,
        connect_timeout: float = 10.0,
        read_only: bool = False,
    ) -> PostgresStore:
        """Connect a pool to `url` (`postgresql://user@host/db`) and migrate the schema.

        With `read_only` (admin tools), nothing is created or migrated and every transaction
        is read-only; a schema at another version than this release's is refused
        (`layout.check_readable`).
        """
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=pool_size,
                timeout=connect_timeout,
                reset=_keep_as_is,
                server_settings=_server_settings(url, read_only=read_only),
            )
        except (OSError, TimeoutError) as exc:
            raise StoreUnavailableError(f"cannot connect to {redact(url)}: {exc}") from exc
        try:
            async with pool.acquire() as conn:
                if read_only:
                    check_readable(redact(url), await stored_version(conn), len(MIGRATIONS))
                else:
                    await migrate(conn)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, redact(url), pool_size=pool_size)

    @property
    def location(self) -> str:
        """The database's URL, without its password."""
        return self._location

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._pool.close()

    @asynccontextmanager
    async def _connection(self, thread: str | None = None) -> AsyncIterator[Connection]:
        """The connection for one call about `thread`.

        A task holding that thread's lock uses the lock's own connection: a turn costs one
        connection, not two, and what it writes is stored only while its lock is held (a lost
        connection takes the lock with it and fails the write). Anyone else gets a pooled one;
        failing to get one is the database being unavailable.
        """
        held = self._holds.get((asyncio.current_task(), thread)) if thread is not None else None
        if held is not None:
            try:
                yield held
            except (
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,
                asyncpg.PostgresConnectionError,
            ) as exc:
                # asyncpg hands a connection the server dropped back to the pool at once, and
                # the next call on it says only that; say what it means.
                raise StoreUnavailableError(
                    f"lost the connection holding {thread}'s lock: {exc}"
                ) from exc
            return
        try:
            conn = await self._pool.acquire()
        except (OSError, TimeoutError, asyncpg.PostgresConnectionError) as exc:
            raise StoreUnavailableError(f"cannot connect to {self._location}: {exc}") from exc
        try:
            yield conn
        finally:
            await self._pool.release(conn)

    # ----- the primitives ------------------------------------------------------------------

    async def _read(
        self, statement: str, *args: Any, thread: str | None = None
    ) -> list[asyncpg.Record]:
        async with self._connection(thread) as conn:
            return list(await conn.fetch(statement, *args))

    async def _transaction(self, work: Work[T], scope: Scope) -> T:
        isolation: Literal["repeatable_read"] | None = "repeatable_read" if scope.snapshot else None
        async with (
            self._connection(scope.thread) as conn,
            conn.transaction(isolation=isolation, readonly=scope.read_only),
        ):
            if scope.exclusive and scope.thread is not None:
                await conn.execute(f"SELECT pg_advisory_xact_lock({lock_key(scope.thread)})")
            return await work(_Transaction(conn))

    # ----- the hot path --------------------------------------------------------------------

    @asynccontextmanager
    async def hold_thread(self, session_id: str, *, wait: float) -> AsyncIterator[None]:
        """Hold the thread's advisory lock on a pooled connection for the block.

        The server gives up the wait itself after `wait` seconds (`lock_timeout`), and drops
        the lock with the connection if this worker dies (its socket closes). While the block
        runs, this task's calls for the thread go through that connection (`_connection`).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        # Waiting for a connection is not the thread being busy: it queues like a model slot.
        await self._holders.acquire()
        try:
            async with self._connection() as conn:
                key = lock_key(session_id)
                timeout_ms = max(1, int((deadline - loop.time()) * 1000))
                try:
                    # One round trip (simple protocol; the values are integers we made). The
                    # timeout is for this wait only: the turn's own writes must never time out.
                    await conn.execute(
                        f"SET lock_timeout = {timeout_ms}; SELECT pg_advisory_lock({key}); "
                        "RESET lock_timeout"
                    )
                except asyncpg.exceptions.LockNotAvailableError:
                    raise ThreadBusyError(f"{session_id} stayed busy for {wait:g}s") from None
                holder = (asyncio.current_task(), session_id)
                self._holds[holder] = conn
                try:
                    yield
                finally:
                    del self._holds[holder]
                    await unlock(conn, key)
        finally:
            self._holders.release()

    async def first_delivery(self, key: str) -> bool:
        """True the first time any worker claims `key` (the `bot_deliveries` table)."""
        if key in self._recent:
            return False
        async with self._connection() as conn:
            await self._prune_deliveries(conn)
            taken = await conn.fetchval(_CLAIM, key)
        self._recent.first_time(key)
        return bool(taken)

    async def _prune_deliveries(self, conn: Connection) -> None:
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < _PRUNE_SECONDS:
            return
        self._pruned_at = now
        deleted = await conn.execute(_PRUNE, _DELIVERY_DAYS)
        logger.debug("Pruned old delivery keys: %s", deleted)

    async def ping(self) -> None:
        """One round trip on a pooled connection: what the next turn would need."""
        await self._read("SELECT 1")

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
        """Add items to a thread in one transaction (see `Store.append`).

        From the task holding the thread, the rows go through the lock's connection: if that
        connection was lost, so was the lock, and the turn is refused, not stored.
        """
        rows = encode_rows(session_id, items, author, usage)
        columns = [list(column) for column in zip(*rows, strict=True)][1:] if rows else []
        async with self._connection(session_id) as conn:
            if replace_from is None and settles is None:
                if rows:
                    await conn.execute(_APPEND, session_id, *columns)
                return
            async with conn.transaction():
                if replace_from is not None:
                    await conn.execute(self._sql.delete_tail, session_id, replace_from)
                if settles is not None:
                    await conn.execute(self._sql.settle, settles)
                if rows:
                    await conn.execute(_APPEND, session_id, *columns)

    async def search(self, session_id: str, query: str, *, limit: int) -> list[StoredItem]:
        """This thread's messages best matching the words of `query` (prefixes too), best
        first: those with every word, then those with some. Any text is a valid query.

        The thread's messages not yet in the index are added first, in the same transaction:
        indexing on every insert made each turn's write about twice as costly on the server
        (bench.store_bench), while searches are rare.
        """
        expressions = match_expressions(
            query.lower(), lambda word: f"'{word}':*", all_of=" & ", any_of=" | "
        )
        if not expressions:
            return []
        async with self._connection(session_id) as conn, conn.transaction():
            await conn.execute(_INDEX_THREAD, session_id)

            async def fetch(expression: str) -> Iterable[Any]:
                return await conn.fetch(_SEARCH, session_id, expression, limit)

            return await best_matches(expressions, fetch, limit=limit, time_of=POSTGRES.time_of)


class _Transaction:
    """A connection inside a transaction, as `Transaction`."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def rows(self, statement: str, *args: Any) -> list[asyncpg.Record]:
        return list(await self._conn.fetch(statement, *args))

    async def run(self, statement: str, *args: Any) -> int:
        status = await self._conn.execute(statement, *args)
        return int(status.split()[-1])  # `DELETE 3`, `UPDATE 0`, `INSERT 0 1`

    async def run_many(self, statement: str, args: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(statement, args)
