"""Store benchmark: a bot-like memory workload on four back ends, in one run.

    .venv/bin/python -m bench.store_bench [--threads 200] [--turns 2000] [--concurrency 1 32]

Each turn is what the bot does per message: create a session object for the thread, load the
newest `--window` items, append one exchange (user + assistant) with a durable commit. For
our store that is the bot's own turn planning (summary, measured density and a token-budget
window sized to hold about `--window` items) and a commit that records the turn's usage. Threads
are interleaved; turns of one thread never overlap (the bot serializes them), but with
`--concurrency N` up to N threads have a turn in flight at once.

Back ends: our `SQLiteStore` (one writer + one reader connection for the process, group
commit), the SDK's `SQLiteSession` and `AsyncSQLiteSession` (a connection per session object),
and raw `sqlite3` running the same SQL on one connection with no event-loop hops (the floor).
Every back end runs WAL with `synchronous=FULL`, so every turn is on disk when it returns.

A second part loads the newest 40 items from a 100,000-item thread and from a 100-item thread.
Figures are ratios measured in the same run; absolute turns/s depend on the disk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agents import SQLiteSession
from agents.extensions.memory.async_sqlite_session import AsyncSQLiteSession

from bot.app import build_memory
from bot.config import Config
from bot.memory import SAFETY
from bot.storage import Author, SQLiteStore, Usage
from bot.turn import TurnSession

TurnFn = Callable[[str, int], Awaitable[None]]

AUTHOR = Author("u1", "Ann")
DENSITY = 0.25
"""Tokens per stored character the bench's turns report, as English text measures."""
COST = Usage("bench", input_tokens=2_500, cached_tokens=0, output_tokens=60, input_chars=10_000)


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


class OurStore:
    """What the bot runs per message: a `TurnSession` reads the window, commits the turn."""

    name = "memorybot SQLiteStore"

    def __init__(self, path: Path, window: int) -> None:
        self.path, self.window = path, window
        self.windows: list[int] = []

    async def __aenter__(self) -> TurnFn:
        self.store = await SQLiteStore.open(self.path)
        items = exchange("bench:0", 0)
        chars = sum(len(json.dumps(item)) for item in items) // len(items)
        # A budget whose window holds `window` items at the density the turns report (with
        # the planner's margin): what the request carries besides the window, plus them.
        density = DENSITY * SAFETY
        probe = Config()
        fixed = (
            probe.context_tokens - probe.output_reserve - probe.summary_tokens
        ) / density - build_memory(probe, self.store).history_chars(density)
        tokens = (self.window * chars + fixed + len(json.dumps({"role": "user"})) + 12) * density
        memory = build_memory(Config(context_tokens=int(tokens) + probe.output_reserve), self.store)

        async def turn(thread: str, n: int) -> None:
            plan = await memory.plan(thread, AUTHOR, "next")
            self.windows.append(len(plan.window))
            session = TurnSession(self.store, thread, author=AUTHOR, window=plan.window)
            await session.get_items()
            await session.add_items(exchange(thread, n))
            await session.commit(COST)

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


async def long_thread(args: argparse.Namespace, workdir: Path) -> None:
    store = await SQLiteStore.open(workdir / "long.sqlite3")
    try:
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
    finally:
        await store.close()
    print(
        f"\nnewest 40 of {args.long_items:,} items: {long_ * 1e6:6.0f} us; "
        f"of 100 items: {short * 1e6:6.0f} us; ratio {long_ / short:.2f}x (target <= 1.3x)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=200)
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--window", type=int, default=40)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--long-items", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        await throughput(args, Path(tmp))
        await long_thread(args, Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
