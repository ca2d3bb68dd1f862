"""Store benchmark: a bot-like memory workload on SQLite and PostgreSQL back ends, in one run.

    .venv/bin/python -m bench.store_bench [--backend sqlite|postgres|all] [--threads 200]
        [--turns 2000] [--concurrency 1 32]

Each turn is what the bot does per message: create a session object for the thread, load the
newest `--window` items, append one exchange (user + assistant) with a durable commit. For
our store that is the bot's own turn planning (summary, measured density and a token-budget
window sized to hold about `--window` items) and a commit that records the turn's usage. Threads
are interleaved; turns of one thread never overlap (the bot serializes them), but with
`--concurrency N` up to N threads have a turn in flight at once.

SQLite back ends: our `SQLiteStore` (one writer + one reader connection for the process, group
commit), the SDK's `SQLiteSession` and `AsyncSQLiteSession` (a connection per session object),
and raw `sqlite3` running the same SQL on one connection with no event-loop hops (the floor).
Every back end runs WAL with `synchronous=FULL`, so every turn is on disk when it returns.

PostgreSQL back ends, on the server `BOT_TEST_DATABASE_URL` names (by default
postgresql://postgres@127.0.0.1:5432/test; skipped with a note when none answers), each run in
a fresh schema that is dropped afterwards, all with the server's `synchronous_commit` (on by
default: every turn is durable when it returns) and the same number of pooled connections
(`--pg-pool`, by default the bot's own sizing, concurrency + 4): our `PostgresStore` running the
turn as above, and again inside `hold_thread` (the cross-worker advisory lock the core takes
around every turn on PostgreSQL); the SDK's `SQLAlchemySession` on one shared asyncpg engine,
its tables made once with `create_tables=True`, built per message and, the cheaper way, once
per thread; and raw asyncpg (the floor): one connection per turn, the window in one statement
and the exchange in another, no pool reset.

A second part loads the newest 40 items from a 100,000-item thread and from a 100-item thread.
Figures are ratios measured in the same run; absolute turns/s depend on the disk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from agents import SQLiteSession
from agents.extensions.memory.async_sqlite_session import AsyncSQLiteSession
from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.app import build_planner
from bot.config import Config
from bot.memory.planner import SAFETY, MemoryPlanner
from bot.memory.turn_session import TurnSession
from bot.storage import Author, PostgresStore, SQLiteStore, Store, Usage, redact
from bot.storage.urls import asyncpg_url
from tests.support.postgres import schema_on

TurnFn = Callable[[str, int], Awaitable[None]]
T = TypeVar("T")

AUTHOR = Author("u1", "Ann")
DENSITY = 0.25
"""Tokens per stored character the bench's turns report, as English text measures."""
COST = Usage("bench", input_tokens=2_500, cached_tokens=0, output_tokens=60, input_chars=10_000)
PG_DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
LOCK_WAIT = 60.0
"""Seconds a turn may wait for its thread's lock; turns of one thread never overlap here."""


def exchange(thread: str, turn: int) -> list[Any]:
    user = {"role": "user", "content": f"[Ann] message {turn} in {thread}: " + "lorem " * 20}
    answer = {
        "id": f"msg_{thread}_{turn}",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "ipsum " * 40, "annotations": []}],
    }
    return [user, answer]


async def drive(turn_fn: TurnFn, threads: int, turns: int, concurrency: int) -> float:
    """Run `turns` turns spread round-robin over `threads`; return turns per second."""
    per_worker = [list(range(w, threads, concurrency)) for w in range(min(concurrency, threads))]
    rounds = turns // threads

    async def worker(mine: list[int]) -> None:
        for r in range(rounds):
            for t in mine:
                await turn_fn(f"bench:{t}", r)

    started = time.perf_counter()
    await asyncio.gather(*(worker(m) for m in per_worker))
    return rounds * threads / (time.perf_counter() - started)


def bench_memory(store: Store, window: int) -> MemoryPlanner:
    """The bot's planner with a budget whose window holds about `window` bench items."""
    items = exchange("bench:0", 0)
    chars = sum(len(json.dumps(item)) for item in items) // len(items)
    # A budget whose window holds `window` items at the density the turns report (with the
    # planner's margin): what the request carries besides the window, plus them.
    density = DENSITY * SAFETY
    probe = Config()
    fixed = (
        probe.context_tokens - probe.output_reserve - probe.summary_tokens
    ) / density - build_planner(probe, store).history_chars(density)
    tokens = (window * chars + fixed + len(json.dumps({"role": "user"})) + 12) * density
    return build_planner(Config(context_tokens=int(tokens) + probe.output_reserve), store)


async def bot_turn(
    store: Store,
    memory: MemoryPlanner,
    thread: str,
    n: int,
    windows: list[int],
) -> None:
    """What the core runs per message, minus the model: plan, a `TurnSession`, one commit."""
    plan = await memory.plan(thread, AUTHOR, "next")
    windows.append(len(plan.window))
    session = TurnSession(store, thread, author=AUTHOR, window=plan.window)
    await session.get_items()
    await session.add_items(exchange(thread, n))
    await session.commit(COST)


class OurStore:
    """What the bot runs per message: a `TurnSession` reads the window, commits the turn."""

    name = "memorybot SQLiteStore"

    def __init__(self, path: Path, window: int) -> None:
        self.path, self.window = path, window
        self.windows: list[int] = []

    async def __aenter__(self) -> TurnFn:
        self.store = await SQLiteStore.open(self.path)
        memory = bench_memory(self.store, self.window)

        async def turn(thread: str, n: int) -> None:
            await bot_turn(self.store, memory, thread, n, self.windows)

        return turn

    async def __aexit__(self, *exc: object) -> None:
        await self.store.close()


class SdkSession:
    name = "SDK SQLiteSession"

    def __init__(self, path: Path, window: int) -> None:
        self.path, self.window = path, window

    async def __aenter__(self) -> TurnFn:
        async def turn(thread: str, n: int) -> None:
            session = SQLiteSession(thread, self.path)
            try:
                await session.get_items(self.window)
                await session.add_items(exchange(thread, n))
            finally:
                session.close()

        return turn

    async def __aexit__(self, *exc: object) -> None:
        return None


class SdkAsyncSession:
    name = "SDK AsyncSQLiteSession"

    def __init__(self, path: Path, window: int) -> None:
        self.path, self.window = path, window

    async def __aenter__(self) -> TurnFn:
        async def turn(thread: str, n: int) -> None:
            session = AsyncSQLiteSession(thread, self.path)
            try:
                await session.get_items(self.window)
                await session.add_items(exchange(thread, n))
            finally:
                await session.close()

        return turn

    async def __aexit__(self, *exc: object) -> None:
        return None


class RawFloor:
    name = "raw sqlite3, one connection (floor)"

    def __init__(self, path: Path, window: int) -> None:
        self.path, self.window = path, window

    async def __aenter__(self) -> TurnFn:
        # Same schema and SQL as the SDK, no thread hops: the least any store can do.
        SQLiteSession("init", self.path).close()
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        conn = self.conn

        async def turn(thread: str, n: int) -> None:
            rows = conn.execute(
                "SELECT message_data FROM agent_messages WHERE session_id = ? "
                "ORDER BY id DESC LIMIT ?",
                (thread, self.window),
            ).fetchall()
            [json.loads(r[0]) for r in reversed(rows)]
            conn.execute("BEGIN")
            conn.execute("INSERT OR IGNORE INTO agent_sessions (session_id) VALUES (?)", (thread,))
            conn.executemany(
                "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)",
                [(thread, json.dumps(i)) for i in exchange(thread, n)],
            )
            conn.execute(
                "UPDATE agent_sessions SET updated_at = CURRENT_TIMESTAMP WHERE session_id = ?",
                (thread,),
            )
            conn.execute("COMMIT")

        return turn

    async def __aexit__(self, *exc: object) -> None:
        self.conn.close()


# ----- PostgreSQL ---------------------------------------------------------------------------


def pg_server_url() -> str:
    """The server the PostgreSQL part runs on (the tests' setting, then their default)."""
    return asyncpg_url(os.environ.get("BOT_TEST_DATABASE_URL") or PG_DEFAULT_URL)


async def pg_unavailable(url: str) -> str | None:
    """Why the server at `url` cannot be used, or None when it answers."""
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except asyncpg.exceptions.TooManyConnectionsError:
        return None  # it answers; the runs wait for room (`pg_retrying`)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    await conn.close()
    return None


@dataclass(frozen=True)
class PgTarget:
    """One back end's own schema on the server, and the pool size every back end gets."""

    url: str
    """An asyncpg URL whose connections use the schema (`?search_path=`)."""
    sqlalchemy_url: str
    schema: str
    pool: int


@asynccontextmanager
async def pg_schema(server: str, pool: int) -> AsyncIterator[PgTarget]:
    """A fresh, empty schema for a block, dropped with everything in it afterwards."""
    async with schema_on(server, prefix="store_bench", connect_timeout=10) as fresh:
        yield PgTarget(fresh.url, fresh.sqlalchemy_url, fresh.schema, pool)


class PgOurStore:
    """The bot's turn on `PostgresStore`, as on SQLite: plan, `TurnSession`, one `append`."""

    name = "memorybot PostgresStore"
    hold = False

    def __init__(self, target: PgTarget, window: int) -> None:
        self.target, self.window = target, window
        self.windows: list[int] = []

    async def __aenter__(self) -> TurnFn:
        self.store = await PostgresStore.open(self.target.url, pool_size=self.target.pool)
        store, memory = self.store, bench_memory(self.store, self.window)

        async def turn(thread: str, n: int) -> None:
            if not self.hold:
                await bot_turn(store, memory, thread, n, self.windows)
                return
            async with store.hold_thread(thread, wait=LOCK_WAIT):
                await bot_turn(store, memory, thread, n, self.windows)

        return turn

    async def __aexit__(self, *exc: object) -> None:
        await self.store.close()


class PgOurStoreHeld(PgOurStore):
    """The same inside `hold_thread`, the advisory lock the core holds around every turn."""

    name = "memorybot PostgresStore + hold_thread"
    hold = True


class PgSdkSession:
    """The SDK's `SQLAlchemySession` on one shared engine, a session object per message (as
    `SdkSession` uses `SQLiteSession`)."""

    name = "SDK SQLAlchemySession (session per message)"
    cached = False

    def __init__(self, target: PgTarget, window: int) -> None:
        self.target, self.window = target, window

    async def __aenter__(self) -> TurnFn:
        self.engine: AsyncEngine = create_async_engine(
            self.target.sqlalchemy_url,
            pool_size=self.target.pool,
            max_overflow=0,
            connect_args={"server_settings": {"search_path": self.target.schema}},
        )
        # Tables made once, up front: every session object built with create_tables=True runs
        # the existence checks of `create_all` again on its first call.
        await SQLAlchemySession("init", engine=self.engine, create_tables=True).get_items()
        sessions: dict[str, SQLAlchemySession] = {}

        async def turn(thread: str, n: int) -> None:
            if self.cached:
                session = sessions.get(thread)
                if session is None:
                    session = sessions[thread] = SQLAlchemySession(thread, engine=self.engine)
            else:
                session = SQLAlchemySession(thread, engine=self.engine)
            await session.get_items(self.window)
            await session.add_items(exchange(thread, n))

        return turn

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.dispose()


class PgSdkSessionCached(PgSdkSession):
    """The same with one session object per thread, kept: the SDK's cheapest use."""

    name = "SDK SQLAlchemySession (session per thread)"
    cached = True


async def _no_reset(conn: asyncpg.Connection) -> None:
    """The floor's pool hands connections back as they are (it changes no session state)."""


class PgFloor:
    """Raw asyncpg on the SDK's tables: the least a store can do per turn (two statements)."""

    name = "raw asyncpg, 2 statements (floor)"

    def __init__(self, target: PgTarget, window: int) -> None:
        self.target, self.window = target, window

    async def __aenter__(self) -> TurnFn:
        # The SDK's own tables and indexes, and its read (newest first by time, then ID).
        engine = create_async_engine(
            self.target.sqlalchemy_url,
            connect_args={"server_settings": {"search_path": self.target.schema}},
        )
        await SQLAlchemySession("init", engine=engine, create_tables=True).get_items()
        await engine.dispose()
        self.pool = await asyncpg.create_pool(
            self.target.url, min_size=1, max_size=self.target.pool, reset=_no_reset
        )
        read = (
            "SELECT message_data FROM agent_messages WHERE session_id = $1 "
            "ORDER BY created_at DESC, id DESC LIMIT $2"
        )
        write = (
            "WITH touched AS (INSERT INTO agent_sessions (session_id) VALUES ($1) "
            "ON CONFLICT (session_id) DO UPDATE SET updated_at = CURRENT_TIMESTAMP) "
            "INSERT INTO agent_messages (session_id, message_data) "
            "SELECT $1, r.data FROM unnest($2::text[]) WITH ORDINALITY AS r(data, n) ORDER BY r.n"
        )
        pool = self.pool

        async def turn(thread: str, n: int) -> None:
            async with pool.acquire() as conn:
                rows = await conn.fetch(read, thread, self.window)
                [json.loads(r[0]) for r in reversed(rows)]
                await conn.execute(write, thread, [json.dumps(i) for i in exchange(thread, n)])

        return turn

    async def __aexit__(self, *exc: object) -> None:
        await self.pool.close()


PgBackend = type[PgOurStore | PgSdkSession | PgFloor]
_DROPPED = (
    ConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
)
_TRIES = 5


def _dropped(exc: BaseException | None) -> bool:
    """Whether the server dropped or refused a connection under `exc` (SQLAlchemy and the
    store wrap asyncpg's errors)."""
    while exc is not None:
        if isinstance(exc, _DROPPED):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


async def pg_retrying(label: str, run: Callable[[], Awaitable[T]]) -> T:
    """`run()`, again a few seconds later when the server dropped or refused connections: on
    a shared server, other clients' `pg_terminate_backend` or their connections filling
    `max_connections` can take a run down. Nothing else is retried."""
    for attempt in range(1, _TRIES + 1):
        try:
            return await run()
        except Exception as exc:
            if attempt == _TRIES or not _dropped(exc):
                raise
            reason = str(exc).splitlines()[0] if str(exc) else ""
            print(f"  ({label}: {type(exc).__name__}: {reason}; running it again)")
            await asyncio.sleep(5 * attempt)
    raise AssertionError("unreachable")


async def pg_sample(
    args: argparse.Namespace, server: str, backend_cls: PgBackend, concurrency: int, pool: int
) -> tuple[float, float]:
    """One run of a back end in a schema of its own, after a warm-up: turns per second, and
    this process's CPU seconds per turn (the server's CPU is not in it)."""
    async with pg_schema(server, pool) as target, backend_cls(target, args.window) as turn_fn:
        await drive(turn_fn, args.threads, args.threads, concurrency)
        cpu = time.process_time()
        rate = await drive(turn_fn, args.threads, args.turns, concurrency)
        return rate, (time.process_time() - cpu) / (args.turns // args.threads * args.threads)


async def pg_throughput(args: argparse.Namespace, server: str) -> None:
    backends: list[PgBackend] = [
        PgOurStore,
        PgOurStoreHeld,
        PgSdkSession,
        PgSdkSessionCached,
        PgFloor,
    ]
    for concurrency in args.concurrency:
        pool = args.pg_pool or concurrency + 4
        print(
            f"\nPostgreSQL: {args.threads} threads, {args.turns} turns, window {args.window}, "
            f"concurrency {concurrency}, {pool} pooled connections per back end"
        )
        samples: dict[PgBackend, list[tuple[float, float]]] = {cls: [] for cls in backends}
        # Back ends take turns, run after run: a slow spell of the shared disk or server then
        # slows one run of each, not every run of one.
        for _ in range(args.repeat):
            for backend_cls in backends:
                run = partial(pg_sample, args, server, backend_cls, concurrency, pool)
                samples[backend_cls].append(await pg_retrying(backend_cls.name, run))
        rates: dict[str, float] = {}
        for backend_cls, runs in samples.items():
            rates[backend_cls.name] = rate = statistics.median(r for r, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            print(f"  {backend_cls.name:44} {rate:9.0f} turns/s  {cpu * 1e6:6.0f} us CPU/turn")
        sdk = rates[PgSdkSession.name]
        sdk_cached = rates[PgSdkSessionCached.name]
        for ours_cls in (PgOurStore, PgOurStoreHeld):
            ours = rates[ours_cls.name]
            label = "ours" if ours_cls is PgOurStore else "ours + hold_thread"
            print(
                f"  {label:19}/ SQLAlchemySession = {ours / sdk:5.1f}x per message, "
                f"{ours / sdk_cached:5.1f}x per thread  (target >= 5x)"
            )
        floor = rates[PgFloor.name]
        print(f"  floor / ours                = {floor / rates[PgOurStore.name]:6.2f}x")


async def throughput(args: argparse.Namespace, workdir: Path) -> None:
    backends: list[type[OurStore | SdkSession | SdkAsyncSession | RawFloor]] = [
        OurStore,
        SdkSession,
        SdkAsyncSession,
        RawFloor,
    ]
    for concurrency in args.concurrency:
        print(
            f"\n{args.threads} threads, {args.turns} turns, window {args.window}, "
            f"concurrency {concurrency}"
        )
        rates: dict[str, float] = {}
        for backend_cls in backends:
            samples: list[float] = []
            try:
                for attempt in range(args.repeat):
                    path = workdir / f"{backend_cls.__name__}-{concurrency}-{attempt}.sqlite3"
                    async with backend_cls(path, args.window) as turn_fn:
                        # Warm the file and each thread's first rows: every run starts alike.
                        await drive(turn_fn, args.threads, args.threads, concurrency)
                        samples.append(await drive(turn_fn, args.threads, args.turns, concurrency))
            except sqlite3.OperationalError as exc:
                print(f"  {backend_cls.name:38} failed: {exc}")
                continue
            # The median of several runs, because fsync times on a shared disk wander.
            rates[backend_cls.name] = statistics.median(samples)
        for name, rate in rates.items():
            print(f"  {name:38} {rate:9.0f} turns/s")
        ours = rates[OurStore.name]
        for name, label, target in (
            (SdkSession.name, "ours / SQLiteSession     ", "  (target >= 10x)"),
            (SdkAsyncSession.name, "ours / AsyncSQLiteSession", ""),
        ):
            if name in rates:
                print(f"  {label}   = {ours / rates[name]:6.1f}x{target}")
        floor = rates[RawFloor.name]
        print(f"  floor / ours                = {floor / ours:6.2f}x  (target <= 3x)")


async def long_thread(args: argparse.Namespace, store: SQLiteStore | PostgresStore) -> None:
    item = exchange("x", 0)[1]
    for thread, size in (("long", args.long_items), ("short", 100)):
        for start in range(0, size, 10_000):
            await store.append(thread, [item] * min(10_000, size - start))

    async def load(thread: str) -> float:
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(200):
                await store.read_items(thread, 40)
            samples.append((time.perf_counter() - started) / 200)
        return statistics.median(samples)

    await load("long")  # warm the page cache for both
    short, long_ = await load("short"), await load("long")
    print(
        f"\n{type(store).__name__}: newest 40 of {args.long_items:,} items: {long_ * 1e6:6.0f} us; "
        f"of 100 items: {short * 1e6:6.0f} us; ratio {long_ / short:.2f}x (target <= 1.3x)"
    )


async def run_sqlite(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        await throughput(args, Path(tmp))
        async with await SQLiteStore.open(Path(tmp) / "long.sqlite3") as store:
            await long_thread(args, store)


async def run_postgres(args: argparse.Namespace) -> None:
    server = pg_server_url()
    problem = await pg_unavailable(server)
    if problem is not None:
        print(f"\nPostgreSQL: skipped, no server at {redact(server)} ({problem})")
        return
    await pg_throughput(args, server)

    async def long_run() -> None:
        async with (
            pg_schema(server, 4) as target,
            await PostgresStore.open(target.url, pool_size=target.pool) as store,
        ):
            await long_thread(args, store)

    await pg_retrying("long thread", long_run)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgres", "all"),
        default="all",
        help="which comparison to run; postgres uses BOT_TEST_DATABASE_URL or "
        f"{PG_DEFAULT_URL} and is skipped when no server answers",
    )
    parser.add_argument("--threads", type=int, default=200)
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--window", type=int, default=40)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--long-items", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument(
        "--pg-pool",
        type=int,
        default=None,
        help="connections per PostgreSQL back end (default: concurrency + 4, as the bot sizes it)",
    )
    args = parser.parse_args()
    if args.backend in ("sqlite", "all"):
        await run_sqlite(args)
    if args.backend in ("postgres", "all"):
        await run_postgres(args)


if __name__ == "__main__":
    asyncio.run(main())
