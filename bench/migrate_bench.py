"""Migration benchmark: what `python -m bot migrate` takes to copy 100,000 messages, each way
between SQLite and PostgreSQL.

    .venv/bin/python -m bench.migrate_bench [--threads 1000] [--turns 25]
        [--directions sqlite-postgres postgres-sqlite sqlite-sqlite]

Each source is filled once (not measured): `--threads` threads of `--turns` turns, a turn being
what the bot stores per message (the person's message, a tool call, its output and the answer,
with the turn's usage), plus a summary and a summary's usage record per thread. Then
`copy_memory`, what `migrate` runs, copies it into a fresh target (a new file, or a new
PostgreSQL schema on the server `BOT_TEST_DATABASE_URL` names, dropped afterwards). It reports
seconds and messages per second for each direction.

Run it on two versions back to back to compare them: the same script, from the repository root
of each (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from bot.admin.transfer import copy_memory
from bot.storage import Author, PostgresStore, SQLiteStore, Store, Usage
from tests.support.postgres import schema_on

PG_DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
AUTHOR = Author("U1", "Ann")
COST = Usage("bench", input_tokens=2_500, cached_tokens=0, output_tokens=60, input_chars=10_000)
FILL_CONCURRENCY = 32
"""Threads filled at once: SQLite shares one commit among the appends that arrive together."""


def turn_items(thread: str, turn: int) -> list[dict[str, Any]]:
    call = f"call_{turn}"
    return [
        {"role": "user", "content": f"[Ann] message {turn} in {thread}: " + "lorem " * 20},
        {
            "type": "function_call",
            "call_id": call,
            "name": "lookup",
            "arguments": '{"ticket": "T-1"}',
        },
        {"type": "function_call_output", "call_id": call, "output": "open " * 10},
        {
            "id": f"msg_{turn}",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "ipsum " * 30, "annotations": []}],
        },
    ]


async def fill(store: Store, threads: int, turns: int) -> int:
    """Store the bench's threads; returns how many messages they hold."""
    slots = asyncio.Semaphore(FILL_CONCURRENCY)

    async def one(n: int) -> None:
        thread = f"discord:1:{n}"
        async with slots:
            for turn in range(turns):
                await store.append(thread, turn_items(thread, turn), author=AUTHOR, usage=COST)
            rows = await store.history(thread, limit=2)
            await store.save_summary(thread, "a summary", covers_id=rows[0].id, replaces=None)
            await store.record_usage(thread, COST, kind="summary")

    await asyncio.gather(*(one(n) for n in range(threads)))
    return threads * turns * 4


@asynccontextmanager
async def opened(kind: str, stack: AsyncExitStack, folder: Path, name: str) -> AsyncIterator[Store]:
    """A fresh store of `kind`: a new file in `folder`, or a new PostgreSQL schema."""
    if kind == "sqlite":
        async with await SQLiteStore.open(folder / f"{name}.sqlite3") as store:
            yield store
        return
    base = os.environ.get("BOT_TEST_DATABASE_URL") or PG_DEFAULT_URL
    schema = await stack.enter_async_context(schema_on(base, prefix="memorybot_bench"))
    async with await PostgresStore.open(schema.url, pool_size=4) as store:
        yield store


async def direction(source_kind: str, target_kind: str, threads: int, turns: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with AsyncExitStack() as stack:
            source = await stack.enter_async_context(
                opened(source_kind, stack, Path(folder), "source")
            )
            messages = await fill(source, threads, turns)
            target = await stack.enter_async_context(
                opened(target_kind, stack, Path(folder), "target")
            )
            started = time.perf_counter()
            report = await copy_memory(source, target)
            seconds = time.perf_counter() - started
    assert report.messages == messages, (report.messages, messages)
    print(
        f"{source_kind:>8} -> {target_kind:<8}  {messages:,} messages in {threads:,} threads: "
        f"{seconds:7.2f} s, {messages / seconds:9,.0f} messages/s",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1_000)
    parser.add_argument("--turns", type=int, default=25, help="per thread; 4 messages each")
    parser.add_argument(
        "--directions",
        nargs="+",
        default=["sqlite-postgres", "postgres-sqlite", "sqlite-sqlite"],
        choices=["sqlite-postgres", "postgres-sqlite", "sqlite-sqlite", "postgres-postgres"],
    )
    args = parser.parse_args()
    for pair in args.directions:
        source, target = pair.split("-")
        await direction(source, target, args.threads, args.turns)


if __name__ == "__main__":
    asyncio.run(main())
