"""The PostgreSQL store: the same memory as `SQLiteStore`, shared by any number of workers.

Driver: asyncpg. It speaks PostgreSQL's binary protocol natively on asyncio, prepares and
caches each statement once per connection, and is the fastest asyncio driver by a wide
margin in its own and third-party benchmarks; the SDK's `SQLAlchemySession` uses it under
SQLAlchemy on PostgreSQL too. One pool per process, sized from `BOT_DATABASE_POOL`.

Every mutation is one transaction; a turn's is one statement (one round trip), the rarer
ones (commands, approvals, summaries) run in an explicit transaction through the shared
operations. Turns are serialised per thread across workers with session-level advisory locks,
all of a worker's on one connection of its own (`locker.Locker`), so a turn in flight holds no
pooled connection: the pool serves short transactions only, and a worker needs its pool plus
one connection whatever the number of turns it runs. What a turn writes is fenced: stored only
while the thread's epoch is still the one its lock was taken with (`fence.py`), so a turn whose
lock was lost with its connection never commits after another worker took the thread.
"""

from __future__ import annotations

import asyncio
import logging
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
    SESSIONS,
    USAGE_LIST,
    check_readable,
)
from ..operations import Operations
from ..primitives import Scope, Work
from ..records import Author, Item, Usage
from ..statements import Statements
from ..urls import redact
from .claims import EventClaims
from .fence import Holds, fence_row, taken_over
from .locker import LOCK_SETTINGS, Locker
from .locks import lock_key
from .schema import MIGRATIONS, Connection, migrate, stored_version
from .search import PostgresSearch

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _append(fence: str) -> str:
    """Registering the thread and inserting its rows in one statement: one round trip, one
    implicit transaction. The rows arrive as parallel arrays, kept in order by ordinality.
    Nothing is written unless `fence` (a CTE's query) yields a row."""
    return f"""
WITH fence AS ({fence}), touched AS (
    INSERT INTO {SESSIONS} (session_id) SELECT $1 FROM fence
    ON CONFLICT (session_id) DO UPDATE SET updated_at = EXCLUDED.updated_at
)
INSERT INTO {MESSAGES} (session_id, message_data, author_id, author_name, {USAGE_LIST}, asked_by)
SELECT $1, r.data, r.author_id, r.author_name, r.model, r.input_tokens, r.cached_tokens,
    r.output_tokens, r.input_chars, r.profile, r.asked_by
FROM fence, unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[],
    $8::int[], $9::int[], $10::text[], $11::text[]) WITH ORDINALITY
    AS r(data, author_id, author_name, model, input_tokens, cached_tokens, output_tokens,
         input_chars, profile, asked_by, n)
ORDER BY r.n
"""


_APPEND = _append("SELECT 1")
# A turn's commit from the task holding its thread: stored only while the thread's epoch is
# still the one its lock was taken with (`fence.py`).
_APPEND_FENCED = _append(fence_row("$12", "$13"))

_DEAD = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InternalClientError,
    asyncpg.exceptions.AdminShutdownError,
)
"""What a pooled connection the server ended raises when next used, depending on timing."""


class _LostConnectionError(StoreUnavailableError):
    """A pooled connection was found ended when used."""


async def _keep_as_is(conn: Connection) -> None:
    """The pool's reset on release, replacing asyncpg's four-statement default.

    Pooled connections carry no session state from one use to the next: they take only
    transaction-scoped locks (thread locks live on the locker's own connection), nothing on
    them LISTENs or keeps cursors, and asyncpg itself still rolls back an unfinished
    transaction. Skipping the default saves a round trip per use, about a fifth
    of a turn's time on the store (bench.store_bench).
    """


def _server_settings(url: str, *, read_only: bool, locks: bool = False) -> dict[str, str]:
    # Timestamps are stored without a zone (as the SDK's tables have them) and read as UTC,
    # so every connection of ours works in UTC. A name given in the URL is kept; the lock
    # connection's says so, for whoever reads pg_stat_activity.
    settings = {"timezone": "UTC"}
    name = parse_qs(urlsplit(url).query).get("application_name", ["memorybot"])[0]
    settings["application_name"] = f"{name}-locks" if locks else name
    if read_only:
        # The server itself refuses any write of a store opened to be read.
        settings["default_transaction_read_only"] = "on"
    return settings


class PostgresStore(Operations, PostgresSearch):
    """Conversation memory for every thread, in one PostgreSQL database.

    Use `await PostgresStore.open(url)`, then the same operations as `SQLiteStore`.
    """

    _sql = Statements(POSTGRES)

    def __init__(self, pool: asyncpg.Pool, location: str, locker: Locker | None) -> None:
        """Prefer `open()`; this only assembles an opened, migrated pool and its locker
        (None for a store opened to be read, which holds no thread)."""
        self._pool = pool
        self._locker = locker
        self._holds = Holds(locker)
        self._location = location
        self._recent = RecentKeys()
        self._claims = EventClaims(self._connection, locker, self._recent)
        self._indexing = asyncio.Lock()
        self._caught_up = None

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        pool_size: int = 10,
        connect_timeout: float = 10.0,
        read_only: bool = False,
        lock_url: str | None = None,
        lock_poll: float = 1.0,
    ) -> PostgresStore:
        """Connect a pool to `url` (`postgresql://user@host/db`), migrate the schema, and open
        the connection holding this worker's thread locks (to `lock_url` if given: it must
        reach the server itself or a session-mode pooler, where `url` may go through a
        transaction-mode one).

        With `read_only` (admin tools), nothing is created or migrated, every transaction
        is read-only and no thread can be held; a schema at another version than this
        release's is refused (`layout.check_readable`). `lock_poll` is the longest a turn
        waiting for a thread another worker holds goes without trying again, if no
        notification of its release came.
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
        if read_only:
            return cls(pool, redact(url), None)
        target = lock_url or url

        async def connect() -> asyncpg.Connection:
            return await asyncpg.connect(
                target,
                timeout=connect_timeout,
                server_settings=_server_settings(target, read_only=False, locks=True)
                | LOCK_SETTINGS,
            )

        locker = Locker(connect, poll=lock_poll)
        try:
            await locker.start()
        except BaseException:
            await locker.close()
            await pool.close()
            raise
        return cls(pool, redact(url), locker)

    @property
    def location(self) -> str:
        """The database's URL, without its password."""
        return self._location

    @property
    def claims_contended(self) -> bool:
        """Whether another worker claimed an event this one was sent too, lately."""
        return self._claims.contended

    async def close(self) -> None:
        """Close the lock connection and every pooled one."""
        if self._locker is not None:
            await self._locker.close()
        await self._pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """A pooled connection for one short use; failing to get one is the database being
        unavailable (refused, unreachable, or out of connections)."""
        try:
            conn = await self._pool.acquire()
        except (
            OSError,
            TimeoutError,
            asyncpg.PostgresConnectionError,
            asyncpg.exceptions.InsufficientResourcesError,
            asyncpg.exceptions.CannotConnectNowError,
        ) as exc:
            raise StoreUnavailableError(f"cannot connect to {self._location}: {exc}") from exc
        try:
            yield conn
        except _DEAD as exc:
            # Ended by the server (or its socket dropped), perhaps while idle in the pool, and
            # found only now: the pool opens another in its place.
            conn.terminate()
            raise _LostConnectionError(f"lost a connection to {self._location}: {exc}") from exc
        finally:
            await self._pool.release(conn)

    # ----- the primitives ------------------------------------------------------------------

    async def _read(
        self, statement: str, *args: Any, thread: str | None = None
    ) -> list[asyncpg.Record]:
        # Reads need no fence: what a turn planned from is stored only if its lock held.
        try:
            async with self._connection() as conn:
                return list(await conn.fetch(statement, *args))
        except _LostConnectionError:
            # A read is safe to run again, on a connection the pool opens anew.
            async with self._connection() as conn:
                return list(await conn.fetch(statement, *args))

    async def _transaction(self, work: Work[T], scope: Scope) -> T:
        isolation: Literal["repeatable_read"] | None = "repeatable_read" if scope.snapshot else None
        grant = None if scope.read_only else self._holds.of(scope.thread)
        async with (
            self._connection() as conn,
            conn.transaction(isolation=isolation, readonly=scope.read_only),
        ):
            if grant is not None and scope.thread is not None:
                await self._holds.check(conn, grant, scope.thread)
            elif scope.exclusive and scope.thread is not None:
                # Waits for a turn another worker runs in the thread (its lock is the same key).
                await conn.execute(f"SELECT pg_advisory_xact_lock({lock_key(scope.thread)})")
            return await work(_Transaction(conn))

    # ----- the hot path --------------------------------------------------------------------

    @asynccontextmanager
    async def hold_thread(self, session_id: str, *, wait: float) -> AsyncIterator[None]:
        """Hold the thread's advisory lock (on the worker's lock connection) for the block.

        A thread another worker holds is waited for up to `wait` seconds, without blocking any
        other thread (`Locker.take`). While the block runs, this task's writes for the thread
        are fenced: stored only while the lock it took is still the thread's newest.
        """
        locker = self._require_locker()
        try:
            grant = await locker.take(lock_key(session_id), within=wait)
        except ThreadBusyError:
            raise ThreadBusyError(f"{session_id} stayed busy for {wait:g}s") from None
        try:
            with self._holds.holding(session_id, grant):
                yield
        finally:
            locker.give_back(grant)

    @asynccontextmanager
    async def claim_summary(self, session_id: str) -> AsyncIterator[bool]:
        """Whether this worker may summarise the thread now: no other worker is doing it.

        The claim is a try-lock on the locker's connection, so it costs no pooled connection
        while the summary is written, and a worker that dies lets it go at once.
        """
        locker = self._require_locker()
        grant = await locker.try_take(lock_key(f"summary {session_id}"))
        if grant is None:
            yield False
            return
        try:
            yield True
        finally:
            locker.give_back(grant)

    def _require_locker(self) -> Locker:
        if self._locker is None:
            raise StoreUnavailableError(f"{self._location} was opened to be read only")
        return self._locker

    async def first_delivery(self, key: str) -> bool:
        """True the first time any worker claims `key` (`claims.EventClaims.first`)."""
        return await self._claims.first(key)

    async def ping(self) -> None:
        """One round trip on a pooled connection and one on the lock connection: what the
        next turn would need."""
        await self._read("SELECT 1")
        if self._locker is not None:
            await self._locker.ping()  # its failures name the thread-lock connection

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

        From the task holding the thread, the rows are fenced: a turn whose lock was lost is
        refused (`ThreadLostError`) once another worker may have taken the thread.
        """
        rows = encode_rows(session_id, items, author, usage)
        columns = [list(column) for column in zip(*rows, strict=True)][1:] if rows else []
        grant = self._holds.of(session_id)
        if grant is not None:
            self._holds.check_kept(grant, session_id)
        async with self._connection() as conn:
            if replace_from is None and settles is None:
                if not rows:
                    return
                if grant is None:
                    await conn.execute(_APPEND, session_id, *columns)
                    return
                status = await conn.execute(
                    _APPEND_FENCED, session_id, *columns, grant.key, grant.epoch
                )
                if status.endswith(" 0"):  # `INSERT 0 0`: the fence let nothing through
                    raise taken_over(session_id)
                return
            async with conn.transaction():
                if grant is not None:
                    await self._holds.check(conn, grant, session_id)
                if replace_from is not None:
                    await conn.execute(self._sql.delete_tail, session_id, replace_from)
                if settles is not None:
                    await conn.execute(self._sql.settle, settles)
                if rows:
                    await conn.execute(_APPEND, session_id, *columns)


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
