"""The PostgreSQL store: the same memory as `SQLiteStore`, shared by any number of workers.

Driver: asyncpg. It speaks PostgreSQL's binary protocol natively on asyncio, prepares and
caches each statement once per connection, and is the fastest asyncio driver by a wide
margin in its own and third-party benchmarks; the SDK's `SQLAlchemySession` uses it under
SQLAlchemy on PostgreSQL too. One pool per process, sized from `BOT_DATABASE_POOL`.

Every mutation is one transaction, most of them one statement (one round trip). Turns are
serialised per thread across workers with a session-level advisory lock, held on one pooled
connection for the turn, which the server drops with the connection if the worker dies;
the turn is stored on that same connection, so a turn whose lock was lost stores nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import asyncpg

from .. import usage_sql
from ..codec import (
    APPROVAL_COLUMNS,
    approval_of,
    decode,
    decode_stored,
    encode_rows,
    thread_dump,
    usage_values,
    window_items,
)
from ..contract import ThreadBusyError
from ..deliveries import RecentKeys
from ..erasure import COLUMNS as ERASURE_COLUMNS
from ..erasure import plan_erasure, platform_prefix
from ..failures import StoreUnavailableError
from ..layout import APPROVALS, MESSAGES, SEARCH, SESSIONS, SUMMARIES, USAGE, USAGE_COLUMNS
from ..reading import PAGE as _PAGE
from ..reading import PagedReads
from ..records import (
    Author,
    ClearResult,
    ForgetReport,
    Item,
    MemoryRead,
    PendingApproval,
    SessionInfo,
    StoredItem,
    Summary,
    ThreadDump,
    Usage,
    UsageGrouping,
    UsageLine,
    UsageTotals,
)
from ..urls import redact
from .schema import DELIVERIES, Connection, migrate

logger = logging.getLogger(__name__)

_KEPT_SUMMARIES = 4
_MEASURED_ROWS = 60
_DELIVERY_DAYS = 1
"""Platforms redeliver within minutes; a day of event keys is more than enough."""
_PRUNE_SECONDS = 3600.0
_WORD = re.compile(r"\w+")
_USAGE = ", ".join(USAGE_COLUMNS)
_COLUMNS = "id, message_data, author_id, author_name, created_at"

# Registering the thread and inserting its rows in one statement: one round trip, one
# implicit transaction. The rows arrive as parallel arrays, kept in order by ordinality.
_APPEND = f"""
WITH touched AS (
    INSERT INTO {SESSIONS} (session_id) VALUES ($1)
    ON CONFLICT (session_id) DO UPDATE SET updated_at = EXCLUDED.updated_at
)
INSERT INTO {MESSAGES} (session_id, message_data, author_id, author_name, {_USAGE}, asked_by)
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
SELECT m.id, m.message_data, m.author_id, m.author_name, m.created_at
FROM {SEARCH} AS s JOIN {MESSAGES} AS m ON m.id = s.id, to_tsquery('simple', $2) AS q
WHERE s.session_id = $1 AND s.words @@ q
ORDER BY ts_rank(s.words, q) DESC, m.id DESC LIMIT $3
"""

# The summary and usage figures (kind 0), then the newest page after the summary (kind 1).
_MEMORY_READ = f"""
WITH s AS (
    SELECT summary, covers_id, created_at FROM {SUMMARIES} WHERE session_id = $1
    ORDER BY covers_id DESC LIMIT 1
), u AS (
    SELECT sum(input_tokens) AS tokens, sum(input_chars) AS chars FROM (
        SELECT input_tokens, input_chars FROM {MESSAGES} WHERE session_id = $1
        ORDER BY id DESC LIMIT $2) AS recent
    WHERE input_tokens > 0 AND input_chars > 0
)
SELECT 0 AS kind, s.covers_id::bigint AS id, s.summary AS data, s.created_at,
    u.tokens::bigint AS tokens, u.chars::bigint AS chars
FROM u LEFT JOIN s ON true
UNION ALL
(SELECT 1, id, message_data, NULL, NULL, NULL FROM {MESSAGES}
 WHERE session_id = $1 AND id > coalesce((SELECT covers_id FROM s), 0)
 ORDER BY id DESC LIMIT $3)
"""


async def _keep_as_is(conn: Connection) -> None:
    """The pool's reset on release, replacing asyncpg's four-statement default.

    Our connections carry no session state from one use to the next: `lock_timeout` is reset
    in the statement that set it, `hold_thread` unlocks what it locked (or ends the
    connection), and nothing LISTENs or keeps cursors; asyncpg itself still rolls back an
    unfinished transaction. Skipping the default saves a round trip per use, about a fifth
    of a turn's time on the store (bench.store_bench).
    """


def lock_key(session_id: str) -> int:
    """A thread's advisory-lock key: 64 bits of a stable hash (a collision only serialises
    two threads' turns, never mixes their memory)."""
    digest = hashlib.blake2b(session_id.encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


async def _unlock(conn: Connection, key: int) -> None:
    """Give a thread's lock back; a connection that cannot is ended, which frees it too."""
    try:
        await conn.execute(f"SELECT pg_advisory_unlock({key})")
    except asyncio.CancelledError:
        _end(conn)
        raise
    except Exception:
        _end(conn)


def _end(conn: Connection) -> None:
    # A connection the server already closed was handed back to the pool by asyncpg itself.
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()


def _server_settings(url: str) -> dict[str, str]:
    # Timestamps are stored without a zone (as the SDK's tables have them) and read as UTC,
    # so every connection of ours works in UTC. A name given in the URL is kept.
    settings = {"timezone": "UTC"}
    if "application_name" not in parse_qs(urlsplit(url).query):
        settings["application_name"] = "memorybot"
    return settings


class PostgresStore(PagedReads):
    """Conversation memory for every thread, in one PostgreSQL database.

    Use `await PostgresStore.open(url)`, then the same operations as `SQLiteStore`.
    """

    def __init__(self, pool: asyncpg.Pool, location: str, *, pool_size: int) -> None:
        """Prefer `open()`; this only assembles an opened, migrated pool."""
        self._pool = pool
        # A holder keeps its lock's connection and may need one more for a read, so at least
        # one connection must stay free of holders, or holders waiting for it would deadlock.
        self._holders = asyncio.Semaphore(max(1, pool_size - 1))
        # The lock connection of each (task, thread) holding one.
        self._holds: dict[tuple[asyncio.Task[Any] | None, str], Connection] = {}
        self._location = location
        self._mine = RecentKeys()
        self._pruned_at: float | None = None

    @classmethod
    async def open(
        cls, url: str, *, pool_size: int = 10, connect_timeout: float = 10.0
    ) -> PostgresStore:
        """Connect a pool to `url` (`postgresql://user@host/db`) and migrate the schema."""
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=pool_size,
                timeout=connect_timeout,
                # Timestamps are stored without a zone (as the SDK's tables have them) and read
                # as UTC, so every connection of ours works in UTC.
                reset=_keep_as_is,
                server_settings=_server_settings(url),
            )
        except (OSError, TimeoutError) as exc:
            raise StoreUnavailableError(f"cannot connect to {redact(url)}: {exc}") from exc
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, redact(url), pool_size=pool_size)

    @property
    def location(self) -> str:
        return self._location

    async def close(self) -> None:
        await self._pool.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

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

    async def _fetch(self, thread: str | None, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self._connection(thread) as conn:
            return list(await conn.fetch(query, *args))

    # ----- coordination ------------------------------------------------------------------

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
                    await _unlock(conn, key)
        finally:
            self._holders.release()

    async def first_delivery(self, key: str) -> bool:
        if key in self._mine:
            return False
        async with self._connection() as conn:
            await self._prune_deliveries(conn)
            taken = await conn.fetchval(
                f"INSERT INTO {DELIVERIES} (key) VALUES ($1) ON CONFLICT DO NOTHING RETURNING true",
                key,
            )
        self._mine.first_time(key)
        return bool(taken)

    def delivered(self, key: str) -> bool:
        return key in self._mine

    async def _prune_deliveries(self, conn: Connection) -> None:
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < _PRUNE_SECONDS:
            return
        self._pruned_at = now
        deleted = await conn.execute(
            f"DELETE FROM {DELIVERIES} WHERE taken_at < now() - make_interval(days => $1)",
            _DELIVERY_DAYS,
        )
        logger.debug("Pruned old delivery keys: %s", deleted)

    # ----- reads -------------------------------------------------------------------------

    async def read_memory(self, session_id: str, *, density: bool = True) -> MemoryRead:
        rows = await self._fetch(
            session_id, _MEMORY_READ, session_id, _MEASURED_ROWS if density else 0, _PAGE
        )
        state = next(row for row in rows if row["kind"] == 0)
        summary = (
            None
            if state["data"] is None
            else Summary(state["data"], int(state["id"]), _utc(state["created_at"]))
        )
        page = sorted((row["id"], row["data"]) for row in rows if row["kind"] == 1)
        tokens, chars = state["tokens"], state["chars"]
        measured = float(tokens) / float(chars) if tokens and chars else None
        below = int(page[0][0]) if len(page) == _PAGE else None
        return MemoryRead(summary, measured, list(window_items(page)), continue_below=below)

    async def _page(
        self,
        session_id: str,
        *,
        after_id: int,
        before_id: int | None,
        limit: int,
        newest_first: bool,
    ) -> list[asyncpg.Record]:
        return await self._fetch(
            session_id,
            f"SELECT id, message_data FROM {MESSAGES} WHERE session_id = $1 AND id > $2 "
            f"AND ($3::bigint IS NULL OR id < $3) ORDER BY id {'DESC' if newest_first else 'ASC'} "
            "LIMIT $4",
            session_id,
            after_id,
            before_id,
            limit,
        )

    async def count_messages(self, session_id: str, *, up_to: int) -> int:
        rows = await self._fetch(
            session_id,
            f"SELECT count(*) FROM {MESSAGES} WHERE session_id = $1 AND id <= $2 "
            "AND bot_role(message_data) IN ('user', 'assistant')",
            session_id,
            up_to,
        )
        return int(rows[0][0])

    async def history(self, session_id: str, *, limit: int, offset: int = 0) -> list[StoredItem]:
        rows = await self._fetch(
            session_id,
            f"SELECT {_COLUMNS} FROM {MESSAGES} WHERE session_id = $1 "
            "ORDER BY id DESC LIMIT $2 OFFSET $3",
            session_id,
            limit,
            offset,
        )
        return decode_stored(reversed(rows), _utc)

    async def count_items(self, session_id: str) -> int:
        rows = await self._fetch(
            session_id, f"SELECT count(*) FROM {MESSAGES} WHERE session_id = $1", session_id
        )
        return int(rows[0][0])

    async def has_items(self, session_id: str) -> bool:
        rows = await self._fetch(
            session_id,
            f"SELECT EXISTS (SELECT 1 FROM {MESSAGES} WHERE session_id = $1)",
            session_id,
        )
        return bool(rows[0][0])

    async def ping(self) -> None:
        """One round trip on a pooled connection: what the next turn would need."""
        await self._fetch(None, "SELECT 1")

    async def list_sessions(self) -> list[SessionInfo]:
        rows = await self._fetch(
            None,
            f"SELECT s.session_id, count(m.id), s.created_at, s.updated_at FROM {SESSIONS} s "
            f"LEFT JOIN {MESSAGES} m ON m.session_id = s.session_id "
            "GROUP BY s.session_id ORDER BY s.updated_at DESC, s.session_id",
        )
        return [
            SessionInfo(sid, int(count), _utc(created), _utc(updated))
            for sid, count, created, updated in rows
        ]

    async def search(self, session_id: str, query: str, *, limit: int) -> list[StoredItem]:
        """This thread's messages best matching the words of `query` (prefixes too), best
        first: those with every word, then those with some. Any text is a valid query.

        The thread's messages not yet in the index are added first, in the same transaction:
        indexing on every insert made each turn's write about twice as costly on the server
        (bench.store_bench), while searches are rare.
        """
        words = [f"'{word}':*" for word in _WORD.findall(query.lower())[:32]]
        if not words:
            return []
        found: list[StoredItem] = []
        async with self._connection(session_id) as conn, conn.transaction():
            await conn.execute(_INDEX_THREAD, session_id)
            for joiner in (" & ", " | ") if len(words) > 1 else (" ",):
                if len(found) >= limit:
                    break
                rows = await conn.fetch(_SEARCH, session_id, joiner.join(words), limit)
                seen = {stored.id for stored in found}
                found += [s for s in decode_stored(rows, _utc) if s.id not in seen]
        return found[:limit]

    # ----- writes ------------------------------------------------------------------------

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
        """Add items to a thread in one transaction (see `SQLiteStore.append`).

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
                    await conn.execute(
                        f"DELETE FROM {MESSAGES} WHERE session_id = $1 AND id >= $2",
                        session_id,
                        replace_from,
                    )
                if settles is not None:
                    await conn.execute(f"DELETE FROM {APPROVALS} WHERE approval_id = $1", settles)
                if rows:
                    await conn.execute(_APPEND, session_id, *columns)

    async def record_usage(
        self, session_id: str, usage: Usage, *, kind: str, author: Author | None = None
    ) -> None:
        async with self._connection(session_id) as conn:
            await conn.execute(
                f"INSERT INTO {USAGE} (session_id, author_id, kind, {_USAGE}) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                session_id,
                author.id if author else None,
                kind,
                usage.model,
                usage.input_tokens,
                usage.cached_tokens,
                usage.output_tokens,
                usage.input_chars,
            )

    async def thread_usage(self, session_id: str) -> UsageTotals:
        rows = await self._fetch(None, usage_sql.thread_totals(usage_sql.POSTGRES), session_id)
        return usage_sql.totals_of(rows[0] if rows else None)

    async def person_usage(self, platform: str, user_id: str, *, since: datetime) -> UsageTotals:
        rows = await self._fetch(
            None,
            usage_sql.person_totals(usage_sql.POSTGRES),
            user_id,
            _naive(since),
            f"{platform}:",
        )
        return usage_sql.totals_of(rows[0] if rows else None)

    async def usage_report(
        self, by: UsageGrouping, *, since: datetime | None = None
    ) -> list[UsageLine]:
        query = usage_sql.report(usage_sql.POSTGRES, by, since=since is not None)
        args = () if since is None else (_naive(since),)
        return usage_sql.lines_of(await self._fetch(None, query, *args))

    async def save_summary(
        self, session_id: str, text: str, *, covers_id: int, replaces: int | None
    ) -> bool:
        async with self._connection(session_id) as conn, conn.transaction():
            # Locking the thread's row orders this against other workers' summaries; locking
            # the covered message makes an /undo deleting it wait, then drop this summary.
            await conn.execute(
                f"SELECT 1 FROM {SESSIONS} WHERE session_id = $1 FOR UPDATE", session_id
            )
            newest = await conn.fetchval(
                f"SELECT max(covers_id) FROM {SUMMARIES} WHERE session_id = $1", session_id
            )
            exists = await conn.fetchval(
                f"SELECT true FROM {MESSAGES} WHERE session_id = $1 AND id = $2 FOR SHARE",
                session_id,
                covers_id,
            )
            if newest != replaces or not exists:
                return False
            await conn.execute(
                f"INSERT INTO {SUMMARIES} (session_id, covers_id, summary) VALUES ($1, $2, $3)",
                session_id,
                covers_id,
                text,
            )
            await conn.execute(
                f"DELETE FROM {SUMMARIES} WHERE session_id = $1 AND covers_id NOT IN ("
                f"SELECT covers_id FROM {SUMMARIES} WHERE session_id = $1 "
                "ORDER BY covers_id DESC LIMIT $2)",
                session_id,
                _KEPT_SUMMARIES,
            )
            return True

    async def pop_item(self, session_id: str) -> Item | None:
        async with self._connection(session_id) as conn:
            while True:
                data = await conn.fetchval(
                    f"DELETE FROM {MESSAGES} WHERE id = (SELECT id FROM {MESSAGES} "
                    "WHERE session_id = $1 ORDER BY id DESC LIMIT 1) RETURNING message_data",
                    session_id,
                )
                if data is None:
                    return None
                item = decode(data)
                if item is not None:
                    return item

    async def clear(self, session_id: str) -> ClearResult:
        async with self._connection(session_id) as conn, conn.transaction():
            counts = await conn.fetchrow(
                f"SELECT count(*), count(*) FILTER (WHERE bot_role(message_data) "
                f"IN ('user', 'assistant')) FROM {MESSAGES} WHERE session_id = $1",
                session_id,
            )
            await conn.execute(f"DELETE FROM {MESSAGES} WHERE session_id = $1", session_id)
            await conn.execute(f"DELETE FROM {SESSIONS} WHERE session_id = $1", session_id)
            await conn.execute(f"DELETE FROM {APPROVALS} WHERE session_id = $1", session_id)
        assert counts is not None
        return ClearResult(items=int(counts[0]), messages=int(counts[1]))

    # ----- turns paused for an approval ------------------------------------------------------

    async def save_approval(self, approval: PendingApproval) -> None:
        async with self._connection(approval.session_id) as conn, conn.transaction():
            # One pending approval per thread, whichever ID it had.
            await conn.execute(
                f"DELETE FROM {APPROVALS} WHERE session_id = $1", approval.session_id
            )
            await conn.execute(
                f"INSERT INTO {APPROVALS} ({APPROVAL_COLUMNS}) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                approval.approval_id,
                approval.session_id,
                approval.platform,
                approval.requester.id,
                approval.requester.name,
                approval.calls,
                approval.state,
                approval.items,
                approval.instructions,
                approval.expires_at,
                approval.address,
            )

    async def approval(self, approval_id: str) -> PendingApproval | None:
        rows = await self._fetch(
            None, f"SELECT {APPROVAL_COLUMNS} FROM {APPROVALS} WHERE approval_id = $1", approval_id
        )
        return approval_of(rows[0], _utc) if rows else None

    async def approval_in(self, session_id: str) -> PendingApproval | None:
        rows = await self._fetch(
            session_id,
            f"SELECT {APPROVAL_COLUMNS} FROM {APPROVALS} WHERE session_id = $1",
            session_id,
        )
        return approval_of(rows[0], _utc) if rows else None

    async def address_approval(self, approval_id: str, address: str) -> None:
        async with self._connection() as conn:
            await conn.execute(
                f"UPDATE {APPROVALS} SET address = $2 WHERE approval_id = $1", approval_id, address
            )

    async def due_approvals(self, now: datetime) -> list[PendingApproval]:
        rows = await self._fetch(
            None,
            f"SELECT {APPROVAL_COLUMNS} FROM {APPROVALS} WHERE expires_at <= $1 "
            "ORDER BY expires_at",
            now,
        )
        return [approval_of(row, _utc) for row in rows]

    async def undo_last_exchange(self, session_id: str) -> list[StoredItem]:
        rows = await self._fetch(
            session_id,
            f"DELETE FROM {MESSAGES} WHERE session_id = $1 AND id >= ("
            f"SELECT id FROM {MESSAGES} WHERE session_id = $1 "
            "AND bot_role(message_data) = 'user' "
            f"ORDER BY id DESC LIMIT 1) RETURNING {_COLUMNS}",
            session_id,
        )
        return sorted(decode_stored(rows, _utc), key=lambda stored: stored.id)

    async def delete_idle(self, idle_for: timedelta, *, now: datetime | None = None) -> int:
        cutoff = _naive((now or datetime.now(UTC)) - idle_for)
        async with self._connection() as conn, conn.transaction():
            await conn.execute(
                f"DELETE FROM {MESSAGES} WHERE session_id IN "
                f"(SELECT session_id FROM {SESSIONS} WHERE updated_at < $1)",
                cutoff,
            )
            status = await conn.execute(f"DELETE FROM {SESSIONS} WHERE updated_at < $1", cutoff)
        return int(status.split()[-1])

    # ----- moving memory ---------------------------------------------------------------

    async def dump_thread(self, session_id: str) -> ThreadDump:
        async with (
            self._connection(session_id) as conn,
            conn.transaction(isolation="repeatable_read"),
        ):
            times = await conn.fetchrow(
                f"SELECT created_at, updated_at FROM {SESSIONS} WHERE session_id = $1",
                session_id,
            )
            rows = await conn.fetch(
                f"SELECT {_COLUMNS}, {_USAGE}, asked_by FROM {MESSAGES} WHERE session_id = $1 "
                "ORDER BY id",
                session_id,
            )
            summaries = await conn.fetch(
                f"SELECT covers_id, summary, created_at FROM {SUMMARIES} WHERE session_id = $1 "
                "ORDER BY covers_id",
                session_id,
            )
            ledger = await conn.fetch(
                f"SELECT kind, author_id, {_USAGE}, created_at FROM {USAGE} "
                "WHERE session_id = $1 ORDER BY id",
                session_id,
            )
        return thread_dump(session_id, times, rows, summaries, ledger, _utc)

    async def load_thread(self, dump: ThreadDump) -> bool:
        async with self._connection(dump.session_id) as conn, conn.transaction():
            # Two copies of one thread racing would both see it absent; the lock orders them.
            await conn.execute(f"SELECT pg_advisory_xact_lock({lock_key(dump.session_id)})")
            present = await conn.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {SESSIONS} WHERE session_id = $1) "
                f"OR EXISTS (SELECT 1 FROM {USAGE} WHERE session_id = $1)",
                dump.session_id,
            )
            if present:
                return False
            await conn.execute(
                f"INSERT INTO {SESSIONS} (session_id, created_at, updated_at) VALUES ($1, $2, $3)",
                dump.session_id,
                _naive(dump.created_at),
                _naive(dump.updated_at),
            )
            new_ids: dict[int, int] = {}
            for message in dump.messages:
                new_ids[message.id] = await conn.fetchval(
                    f"INSERT INTO {MESSAGES} (session_id, message_data, author_id, author_name, "
                    f"created_at, {_USAGE}, asked_by) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                    dump.session_id,
                    message.data,
                    message.author.id if message.author else None,
                    message.author.name if message.author else None,
                    _naive(message.created_at),
                    *usage_values(message.usage),
                    message.asked_by,
                )
            await conn.executemany(
                f"INSERT INTO {SUMMARIES} (session_id, covers_id, summary, created_at) "
                "VALUES ($1, $2, $3, $4)",
                [
                    (dump.session_id, new_ids[s.covers_id], s.text, _naive(s.created_at))
                    for s in dump.summaries
                    if s.covers_id in new_ids
                ],
            )
            await conn.executemany(
                f"INSERT INTO {USAGE} (session_id, author_id, kind, {_USAGE}, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                [
                    (
                        dump.session_id,
                        entry.author_id,
                        entry.kind,
                        *usage_values(entry.usage),
                        _naive(entry.created_at),
                    )
                    for entry in dump.ledger
                ],
            )
            return True

    async def forget_user(self, platform: str, user_id: str, *, dry_run: bool) -> ForgetReport:
        """Delete one person's messages and the turns that answered them (see `Store`).

        Each thread is planned and changed in its own transaction, under the thread's lock, so
        a turn running in a worker finishes (and is seen whole) first. A dry run takes no lock
        and reads one snapshot per thread.
        """
        prefix = platform_prefix(platform)
        threads = await self._fetch(
            None,
            f"SELECT session_id FROM {MESSAGES} WHERE starts_with(session_id, $1) "
            "AND (author_id = $2 OR asked_by = $2) "
            f"UNION SELECT session_id FROM {USAGE} WHERE starts_with(session_id, $1) "
            "AND author_id = $2 "
            f"UNION SELECT session_id FROM {APPROVALS} WHERE platform = $3 AND requester_id = $2",
            prefix,
            user_id,
            platform,
        )
        # Whose pending approvals go: theirs, and every one in a thread losing rows.
        approvals_where = (
            f"FROM {APPROVALS} WHERE session_id = $1 "
            "AND ($2 OR (platform = $3 AND requester_id = $4))"
        )
        report = ForgetReport()
        for session_id in sorted(row[0] for row in threads):
            async with (
                self._connection(session_id) as conn,
                conn.transaction(isolation="repeatable_read", readonly=dry_run),
            ):
                if not dry_run:
                    await conn.execute(f"SELECT pg_advisory_xact_lock({lock_key(session_id)})")
                rows = await conn.fetch(
                    f"SELECT {ERASURE_COLUMNS.format(role='bot_role(message_data)')} "
                    f"FROM {MESSAGES} WHERE session_id = $1 ORDER BY id",
                    session_id,
                )
                plan = plan_erasure(rows, user_id)
                approval_args = (session_id, bool(plan.ids), platform, user_id)
                counts = await conn.fetchrow(
                    f"SELECT (SELECT count(*) FROM {SUMMARIES} WHERE session_id = $1 "
                    "AND covers_id >= $5), "
                    f"(SELECT count(*) {approvals_where}), "
                    f"(SELECT count(*) FROM {USAGE} WHERE session_id = $1 AND author_id = $4)",
                    *approval_args,
                    plan.first,
                )
                assert counts is not None
                summaries, approvals, named = (int(count) for count in counts)
                usage_records = named + plan.ledger_rows + plan.unlinked
                if not dry_run:
                    # The delete trigger drops the summaries covering these rows and copies
                    # each turn's cost into the ledger under whom it answered (the search
                    # index follows by cascade); so the ledger is anonymised after it.
                    await conn.execute(
                        f"DELETE FROM {MESSAGES} WHERE id = ANY($1::int[])", list(plan.ids)
                    )
                    if plan.ids:
                        # A thread left empty goes whole: its ID may be made of theirs
                        # (BOT_MEMORY_SCOPE=user).
                        await conn.execute(
                            f"DELETE FROM {SESSIONS} WHERE session_id = $1 "
                            f"AND NOT EXISTS (SELECT 1 FROM {MESSAGES} WHERE session_id = $1)",
                            session_id,
                        )
                    dropped = await conn.execute(f"DELETE {approvals_where}", *approval_args)
                    ledger = await conn.execute(
                        f"UPDATE {USAGE} SET author_id = NULL "
                        "WHERE session_id = $1 AND author_id = $2",
                        session_id,
                        user_id,
                    )
                    kept = await conn.execute(
                        f"UPDATE {MESSAGES} SET asked_by = NULL "
                        "WHERE session_id = $1 AND asked_by = $2",
                        session_id,
                        user_id,
                    )
                    approvals = _affected(dropped)
                    usage_records = _affected(ledger) + _affected(kept)
            report += plan.report(
                session_id, summaries=summaries, approvals=approvals, usage_records=usage_records
            )
        return report


def _affected(status: str) -> int:
    """The row count of a command's status (`DELETE 3`, `UPDATE 0`)."""
    return int(status.split()[-1])


def _utc(value: datetime | None) -> datetime:
    """A stored zone-less timestamp (UTC by convention) as an aware one."""
    if value is None:
        return datetime.fromtimestamp(0, UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _naive(value: datetime) -> datetime:
    """An aware time as the zone-less UTC value the SDK's columns hold."""
    return value.astimezone(UTC).replace(tzinfo=None)
