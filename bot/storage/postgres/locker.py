"""Every thread lock of a worker on one connection of its own: the worker's locker.

A PostgreSQL session can hold any number of advisory locks, so a worker needs one connection
for the locks of all its threads, not one per turn in flight: a turn waiting on the model holds
no pooled connection, the pool serves only short transactions (planning reads, the commit),
and a worker's connections are its pool plus this one however many turns it runs. The design
follows the locker of the Ruby job queue Que (`lib/que/locker.rb`): one connection per process
holds the locks of everything the process works on, taken with `pg_try_advisory_lock`, released
in batches, and it LISTENs for work freed elsewhere, polling as the fallback.

- Never the blocking `pg_advisory_lock`: on a shared connection one busy thread would stall
  every other thread of the worker. A thread another worker holds is waited for here, woken by
  the NOTIFY its release sends (`CHANNEL`), or after `poll` seconds at the latest (a
  notification is lost while the connection is re-opened).
- Requests that arrive while a round trip is under way go together in the next one, releases
  too: under load one round trip carries many threads.
- Fencing. Taking a thread also advances its epoch (`FENCES`) in the same statement, and a turn
  commits only while the epoch is still its own, checked under the row's lock in the commit's
  transaction (`fence.py`). If this connection is lost, every lock on it is gone at once and
  another worker may take those threads; a turn planned under a lost lock then cannot commit
  after the other worker's has begun. A loss noticed here (the connection's termination
  callback) refuses those commits at once, and the connection is re-opened in the background.
- A killed worker's connection dies with it, and the server frees its threads at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from ..contract import ThreadBusyError
from ..failures import StoreUnavailableError
from .schema import FENCES

logger = logging.getLogger(__name__)

T = TypeVar("T")

CHANNEL = "bot_threads_freed"
"""Where releases are announced: the payload is the freed keys, comma-separated."""

_PAYLOAD_CHARS = 7900
"""A NOTIFY payload must stay under 8000 bytes; longer releases are announced in parts."""
_FIRST_RETRY = 0.2
_LAST_RETRY = 5.0

# One statement: the try-locks, and the epoch of each thread taken. Session-level locks outlive
# a failed statement, so a failure here ends the connection (`_lose`), which frees them. The
# epoch is at least the server's clock in microseconds, so it moves on even if the server lost
# its last advance in a crash (the lock connection commits asynchronously: `LOCK_SETTINGS`).
_TAKE = f"""
WITH taken AS MATERIALIZED (
    SELECT k FROM unnest($1::bigint[]) AS k WHERE pg_try_advisory_lock(k)
), now AS (
    SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS micros
)
INSERT INTO {FENCES} AS f (lock_key, epoch) SELECT k, micros FROM taken, now
ON CONFLICT (lock_key) DO UPDATE SET epoch = greatest(f.epoch + 1, EXCLUDED.epoch)
RETURNING lock_key, epoch
"""

LOCK_SETTINGS = {"synchronous_commit": "off"}
"""The lock connection's own server settings. Its only writes are epochs, which need not wait
for the disk: a crash that loses one also ends every connection, so every lock with it (and
the clock-based epoch moves on past it all the same); waiting would add a disk flush to every
turn."""

# Claims that need no fence (a summary under way): the try-locks alone.
_TRY = "SELECT k FROM unnest($1::bigint[]) AS k WHERE pg_try_advisory_lock(k)"

Connect = Callable[[], Awaitable[asyncpg.Connection]]


@dataclass(frozen=True)
class Grant:
    """A lock this worker holds: its key, its fencing epoch, and which connection holds it."""

    key: int
    epoch: int
    generation: int


class Locker:
    """One worker's advisory locks, on one connection (see the module's notes)."""

    def __init__(self, connect: Connect, *, poll: float = 1.0) -> None:
        """
        Args:
            connect: Opens the lock connection (and, after a loss, opens it again).
            poll: The longest a waiter goes without trying again, notified or not.
        """
        self._connect = connect
        self._poll = poll
        self._conn: asyncpg.Connection | None = None
        self._pid: int | None = None
        self._generation = 0
        """Bumped when the connection is lost: grants of an older generation hold nothing."""
        self._opening: asyncio.Task[asyncpg.Connection] | None = None
        self._reopening: asyncio.Task[None] | None = None
        self._use = asyncio.Lock()
        """One statement at a time on the connection, as the protocol requires."""
        self._held: set[int] = set()
        self._asking: set[int] = set()
        """Keys asked for and not yet answered (in a queue below or in a round trip)."""
        self._takes: dict[int, asyncio.Future[Grant | None]] = {}
        self._tries: dict[int, asyncio.Future[Grant | None]] = {}
        self._frees: set[int] = set()
        self._kick = asyncio.Event()
        self._waiters: dict[int, set[asyncio.Event]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        """Open the connection (raising `StoreUnavailableError` if it cannot be) and serve."""
        await self._connection()
        self._flusher = asyncio.create_task(self._flush(), name="thread-locker")

    async def close(self) -> None:
        """Stop, and close the connection: the server frees whatever it still held."""
        self._closed = True
        for task in (self._flusher, self._reopening, self._opening):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        for future in [*self._takes.values(), *self._tries.values()]:
            if not future.done():
                future.set_exception(StoreUnavailableError("the thread locks were closed"))
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), timeout=2.0)
            except Exception:
                conn.terminate()

    # ----- taking and giving back -----------------------------------------------------------

    async def take(self, key: int, *, within: float) -> Grant:
        """Hold `key`, waiting up to `within` seconds for another holder to let it go.

        Raises:
            ThreadBusyError: It stayed held (here or by another worker) all that time.
            StoreUnavailableError: The lock connection cannot be had.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        with self._watching(key) as freed:
            while True:
                freed.clear()
                # A key held here already is another thread's whose key is the same hash.
                if key not in self._held and key not in self._asking:
                    grant = await self._ask(self._takes, key)
                    if grant is not None:
                        return grant
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise ThreadBusyError(f"lock {key} stayed taken for {within:g}s")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(self._poll, remaining)):
                        await freed.wait()

    async def try_take(self, key: int) -> Grant | None:
        """Hold `key` if nobody does, without a fence; None when it is taken."""
        if key in self._held or key in self._asking:
            return None
        return await self._ask(self._tries, key)

    def give_back(self, grant: Grant) -> None:
        """Let `grant`'s key go (in the next round trip); nothing if its connection was lost."""
        if grant.generation == self._generation and grant.key in self._held:
            self._held.discard(grant.key)
            self._frees.add(grant.key)
            self._kick.set()
        self._wake([grant.key])

    def lost(self, grant: Grant) -> bool:
        """Whether the connection `grant` was taken on is known to be gone (and the lock)."""
        return grant.generation != self._generation

    # ----- other uses of the connection -----------------------------------------------------

    async def run(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run `work` on the lock connection, between two batches (a fallback when the pool
        cannot get a connection: this one is open already)."""
        conn = await self._connection()
        try:
            async with self._use:
                return await work(conn)
        except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError) as exc:
            self._lose(conn, f"it failed: {exc}")
            raise StoreUnavailableError(f"lost the thread-lock connection: {exc}") from exc

    async def ping(self) -> None:
        """One round trip on the lock connection (readiness); raises when it cannot be had."""
        await self.run(lambda conn: conn.fetchval("SELECT 1"))

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    # ----- the batches ---------------------------------------------------------------------

    async def _ask(self, queue: dict[int, asyncio.Future[Grant | None]], key: int) -> Grant | None:
        if self._closed:
            raise StoreUnavailableError("the thread locks are closed")
        future: asyncio.Future[Grant | None] = asyncio.get_running_loop().create_future()
        queue[key] = future
        self._asking.add(key)
        self._kick.set()
        return await future

    async def _flush(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            frees, self._frees = self._frees, set()
            takes, self._takes = self._takes, {}
            tries, self._tries = self._tries, {}
            freed_on = self._generation
            conn: asyncpg.Connection | None = None
            try:
                conn = await self._connection()
                async with self._use:
                    # Takes first: turns wait on them, nobody waits on a release. A key given
                    # back and taken again in one batch is briefly held twice (a session's
                    # advisory locks count), then once, as it should be.
                    if takes:
                        taken = {k: e for k, e in await conn.fetch(_TAKE, list(takes))}
                        self._settle(takes, taken, self._generation)
                        takes = {}
                    if tries:
                        tried = {row[0] for row in await conn.fetch(_TRY, list(tries))}
                        self._settle(tries, dict.fromkeys(tried, 0), self._generation)
                        tries = {}
                    if frees and freed_on == self._generation:
                        await conn.execute(_release(frees))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if conn is not None:
                    self._lose(conn, f"it failed: {exc}")
                failed = exc if isinstance(exc, StoreUnavailableError) else None
                self._asking.difference_update(takes, tries)
                for future in [*takes.values(), *tries.values()]:
                    if not future.done():
                        future.set_exception(
                            failed or StoreUnavailableError(f"the thread locks failed: {exc}")
                        )

    def _settle(
        self,
        asked: dict[int, asyncio.Future[Grant | None]],
        epochs: dict[int, int],
        generation: int,
    ) -> None:
        for key, future in asked.items():
            self._asking.discard(key)
            epoch = epochs.get(key)
            grant = None if epoch is None else Grant(key, epoch, generation)
            if grant is not None:
                self._held.add(key)
            if future.done():  # its taker was cancelled meanwhile: let the lock go again
                if grant is not None:
                    self.give_back(grant)
            else:
                future.set_result(grant)

    # ----- waiting for keys freed elsewhere -------------------------------------------------

    @contextlib.contextmanager
    def _watching(self, key: int) -> Iterator[asyncio.Event]:
        freed = asyncio.Event()
        watchers = self._waiters.setdefault(key, set())
        watchers.add(freed)
        try:
            yield freed
        finally:
            watchers.discard(freed)
            if not watchers:
                del self._waiters[key]

    def _wake(self, keys: Iterable[int]) -> None:
        for key in keys:
            for freed in self._waiters.get(key, ()):
                freed.set()

    def _on_notify(self, _conn: Any, pid: int, _channel: str, payload: object) -> None:
        if pid == self._pid:
            return  # our own release: its waiters here were woken as it was given back
        keys = []
        for part in str(payload).split(","):
            with contextlib.suppress(ValueError):
                keys.append(int(part))
        self._wake(keys)

    # ----- the connection ------------------------------------------------------------------

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        if self._closed:
            raise StoreUnavailableError("the thread locks are closed")
        if self._opening is None:
            # Shared by everyone asking meanwhile, and not cancelled with any one of them.
            self._opening = asyncio.create_task(self._open(), name="thread-locker-connect")
        return await asyncio.shield(self._opening)

    async def _open(self) -> asyncpg.Connection:
        try:
            try:
                conn = await self._connect()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise StoreUnavailableError(
                    f"cannot open the thread-lock connection: {exc}"
                ) from exc
            try:
                await conn.add_listener(CHANNEL, self._on_notify)
            except BaseException:
                conn.terminate()
                raise
            conn.add_termination_listener(self._on_terminated)
            self._conn, self._pid = conn, conn.get_server_pid()
            # Releases announced while there was no connection went unheard: look again.
            self._wake(list(self._waiters))
            return conn
        finally:
            self._opening = None

    def _on_terminated(self, conn: Any) -> None:
        if self._conn is not None and conn is self._conn:
            self._lose(self._conn, "the server ended it")

    def _lose(self, conn: asyncpg.Connection, why: str) -> None:
        """The connection is gone, or of no more use: so is every lock it held."""
        if conn is not self._conn:
            return
        held = len(self._held)
        self._conn = None
        self._generation += 1
        self._held.clear()
        self._frees.clear()
        with contextlib.suppress(Exception):
            conn.terminate()
        logger.warning(
            "Lost the thread-lock connection (%s): %d thread(s) it held will not store their "
            "turns; opening it again",
            why,
            held,
        )
        if not self._closed and (self._reopening is None or self._reopening.done()):
            self._reopening = asyncio.create_task(self._reopen(), name="thread-locker-reopen")

    async def _reopen(self) -> None:
        pause = _FIRST_RETRY
        while not self._closed:
            try:
                await self._connection()
            except StoreUnavailableError as exc:
                logger.warning("%s; trying again in %.1fs", exc, pause)
                await asyncio.sleep(pause)
                pause = min(_LAST_RETRY, pause * 2)
            else:
                logger.info("The thread-lock connection is open again")
                return


def _release(keys: Iterable[int]) -> str:
    """Unlock `keys` and announce them, in one round trip (the simple protocol, so several
    statements; the values are integers we made). NOTIFY is sent when the unlock commits."""
    listed = [str(key) for key in sorted(keys)]
    statements = [
        f"SELECT pg_advisory_unlock(k) FROM unnest('{{{','.join(listed)}}}'::bigint[]) AS k"
    ]
    statements += [f"NOTIFY {CHANNEL}, '{part}'" for part in _payloads(listed)]
    return "; ".join(statements)


def _payloads(keys: list[str]) -> Iterator[str]:
    part: list[str] = []
    size = 0
    for key in keys:
        if part and size + len(key) + 1 > _PAYLOAD_CHARS:
            yield ",".join(part)
            part, size = [], 0
        part.append(key)
        size += len(key) + 1
    if part:
        yield ",".join(part)
