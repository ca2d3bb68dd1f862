"""Worker scaling: the whole bot as 1, 2 and 4 processes sharing one PostgreSQL memory.

    .venv/bin/python -m bench.workers_bench [--conversations 2000] [--workers 1 2 4]
        [--model-seconds 1] [--max-concurrency 256] [--connections 60] [--logs DIR]

Each worker is `tests.worker_driver` (the real bot: Slack adapter in HTTP mode, core, a
`PostgresStore` on a fresh schema). This process plays Slack: it sends signed Events API
requests round-robin to the workers, as a load balancer would (so one thread's messages land
on different workers), and serves the Web API the workers answer through (the test fake).
The fake model runs in its own process and takes `--model-seconds` per answer.

Each conversation is a thread started by mentioning the bot, with one, two or three messages,
each sent once the previous one is answered; all conversations start at once. Reported per
worker count: turns/s and the ratio to one worker, the workers' CPU per turn, and whether every
turn was stored exactly once (rows per thread, counted in the database) and answered once.

Every running turn holds one pooled PostgreSQL connection for its thread's lock (and stores
through it), and a worker keeps one connection free of locks, so at most `BOT_DATABASE_POOL - 1`
turns run at once per worker, whatever `BOT_MAX_CONCURRENCY` says; and all workers' pools must
fit the server's `max_connections`, shared with everything else on it. `--connections` is what
the workers may hold in all, split evenly into their pools.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.e2e_bench import model_server
from tests.fakes.slack_server import BOT_USER, TEAM, FakeSlack, Posted
from tests.support.postgres import schema_on, server_url
from tests.support.slack import event_envelope, signed_headers
from tests.support.workers import Worker, Workers, worker_environment


class BenchSlack(FakeSlack):
    """The fake Slack, waking only the conversation whose channel changed (not every waiter)."""

    def __init__(self) -> None:
        super().__init__()
        self.touched: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

    def _add(self, posted: Posted) -> None:
        super()._add(posted)
        self.touched[posted.channel].set()

    def _chat_update(self, body: dict[str, Any]) -> dict[str, Any]:
        result = super()._chat_update(body)
        self.touched[body["channel"]].set()
        return result

    def _chat_stopStream(self, body: dict[str, Any]) -> dict[str, Any]:
        result = super()._chat_stopStream(body)
        self.touched[body["channel"]].set()
        return result

    def answered(self, channel: str, thread_ts: str, count: int) -> bool:
        found = self.bot_messages(channel, thread_ts)
        return len(found) >= count and not any(m.streaming or m.text.endswith(" …") for m in found)

    async def wait_answered(self, channel: str, thread_ts: str, count: int) -> None:
        touched = self.touched[channel]
        while True:
            touched.clear()
            if self.answered(channel, thread_ts, count):
                return
            await touched.wait()


class Balancer:
    """Slack's side: signed event deliveries, spread over the workers in turn."""

    def __init__(self, slack: BenchSlack, targets: list[Worker], http: aiohttp.ClientSession):
        self.slack = slack
        self.targets = targets
        self.http = http
        self.sent = 0

    async def mention(self, channel: str, text: str, thread_ts: str | None) -> str:
        ts = self.slack.new_ts()
        said = f"<@{BOT_USER}> {text}"
        self.slack.record_user_message(channel, said, "U0ANN", ts, thread_ts)
        event = {
            "type": "app_mention",
            "user": "U0ANN",
            "text": said,
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
            "team": TEAM,
            **({"thread_ts": thread_ts} if thread_ts else {}),
        }
        self.sent += 1
        body = json.dumps(event_envelope(event, f"Ev{self.sent:08d}"))
        target = self.targets[self.sent % len(self.targets)]
        headers = signed_headers(body)
        async with self.http.post(target.url, data=body, headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"a worker refused an event: HTTP {response.status}")
        return ts


def channel_of(n: int) -> str:
    return f"C{n:08d}"


def messages_in(n: int) -> int:
    return 1 + n % 3


async def converse(balancer: Balancer, n: int) -> str:
    """One conversation: a mention starts the thread, the rest follow in it; returns its ts."""
    channel = channel_of(n)
    root = await balancer.mention(channel, "message 0", None)
    await balancer.slack.wait_answered(channel, root, 1)
    for turn in range(1, messages_in(n)):
        await balancer.mention(channel, f"message {turn}", root)
        await balancer.slack.wait_answered(channel, root, turn + 1)
    return root


async def check_store(url: str, roots: list[str]) -> tuple[dict[str, int], list[str]]:
    """Threads whose stored rows are exactly their turns, once each, in order; and the rest
    (with a few of them shown)."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT session_id, message_data FROM agent_messages ORDER BY id")
        deliveries = await conn.fetchval("SELECT count(*) FROM bot_deliveries")
    finally:
        await conn.close()
    threads: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    for session, data in rows:
        item = json.loads(data)
        threads[session].append((item.get("role"), item.get("content")))
    verdict = {"exact": 0, "lost": 0, "duplicated": 0, "out of order": 0}
    examples: list[str] = []
    for n, root in enumerate(roots):
        session = f"slack:{TEAM}:{channel_of(n)}:{root}"
        stored = threads.pop(session, [])
        expected = messages_in(n)
        asked = [content for role, content in stored if role == "user"]
        if len(stored) < 2 * expected:
            kind = "lost"
        elif len(stored) > 2 * expected:
            kind = "duplicated"
        elif [role for role, _ in stored] != ["user", "assistant"] * expected or asked != [
            f"[Ann] message {turn}" for turn in range(expected)
        ]:
            kind = "out of order"
        else:
            kind = "exact"
        verdict[kind] += 1
        if kind != "exact" and len(examples) < 3:
            examples.append(f"{kind} {session}: {expected} message(s), stored {stored}")
    verdict["stray threads"] = len(threads)
    verdict["delivery keys"] = int(deliveries)
    return verdict, examples


def check_replies(slack: BenchSlack, roots: list[str]) -> tuple[int, list[str]]:
    """Threads with exactly one answer per message, none of them an error (and a few others)."""
    good = 0
    examples: list[str] = []
    for n, root in enumerate(roots):
        posted = [m.text for m in slack.bot_messages(channel_of(n), root)]
        if len(posted) == messages_in(n) and all(text.startswith("You said") for text in posted):
            good += 1
        elif len(examples) < 3:
            examples.append(f"{channel_of(n)} {root}: {messages_in(n)} message(s), got {posted}")
    return good, examples


@dataclass
class Result:
    workers: int
    concurrency: int
    pool: int
    turns: int
    seconds: float
    cpu: float
    store: dict[str, int]
    answered: int
    here: float
    """CPU seconds this process (the fake Slack and the load) spent."""
    examples: list[str]

    @property
    def rate(self) -> float:
        return self.turns / self.seconds


async def run(count: int, args: argparse.Namespace, model_url: str, logs: Path) -> Result:
    pool = max(2, args.connections // count)
    concurrency = args.max_concurrency
    slack = BenchSlack()
    await slack.start()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(slack.close)
        schema = await stack.enter_async_context(
            schema_on(args.database_url, prefix="bench_workers")
        )
        environment = worker_environment(
            schema.url,
            model_url,
            slack.api_url,
            BOT_DATABASE_POOL=pool,
            BOT_MAX_CONCURRENCY=concurrency,
            BOT_THREAD_WAIT=600,
            BOT_MODEL_TIMEOUT=600,
            BOT_SHUTDOWN_GRACE=10,
            BOT_LOG_LEVEL="WARNING",
        )
        group = Workers(environment, logs, name=f"worker-{count}", start_within=60, stop_within=15)
        async with (
            group,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as http,
        ):
            started = await group.start(count)
            balancer = Balancer(slack, started, http)
            cpu_before = sum(w.cpu_seconds() for w in started)
            here_before = time.process_time()
            began = time.perf_counter()
            roots = list(
                await asyncio.gather(*(converse(balancer, n) for n in range(args.conversations)))
            )
            seconds = time.perf_counter() - began
            cpu = sum(w.cpu_seconds() for w in started) - cpu_before
            here = time.process_time() - here_before
            await asyncio.sleep(1.0)  # anything answered twice would be posted by now
            answered, unanswered = check_replies(slack, roots)
            store, badly_stored = await check_store(schema.url, roots)
    turns = sum(messages_in(n) for n in range(args.conversations))
    examples = badly_stored + unanswered
    return Result(count, concurrency, pool, turns, seconds, cpu, store, answered, here, examples)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--model-seconds", type=float, default=1.0)
    parser.add_argument(
        "--max-concurrency", type=int, default=256, help="BOT_MAX_CONCURRENCY per worker"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=60,
        help="PostgreSQL connections all workers may hold at once (the server allows "
        "max_connections, shared with everything else using it)",
    )
    parser.add_argument("--database-url", default=server_url())
    parser.add_argument("--logs", type=Path, help="keep the workers' logs in this directory")
    args = parser.parse_args()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="workers-bench-") as tmp:
        logs = args.logs or Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        async with model_server(args.model_seconds) as model_url:
            for count in args.workers:
                result = await run(count, args, model_url, logs)
                results.append(result)
                print(
                    f"{count} worker(s): {result.turns} turns in {result.seconds:.1f}s = "
                    f"{result.rate:.1f} turns/s (BOT_MAX_CONCURRENCY={result.concurrency}, "
                    f"BOT_DATABASE_POOL={result.pool} each)",
                    flush=True,
                )
    base = results[0].rate
    print(
        f"\n{args.conversations} conversations ({results[0].turns} turns), model "
        f"{args.model_seconds:g}s per answer, {os.cpu_count()} CPU(s)"
    )
    print(
        f"  {'workers':>7} {'turns at once':>13} {'turns/s':>8} {'vs first':>8} "
        f"{'CPU ms/turn: workers':>20} {'Slack+load':>10} {'stored once':>11} {'answered once':>13}"
    )
    for r in results:
        print(
            f"  {r.workers:>7} {r.workers * min(r.concurrency, r.pool - 1):>13} {r.rate:>8.1f} "
            f"{r.rate / base:>7.2f}x {r.cpu / r.turns * 1000:>20.1f} "
            f"{r.here / r.turns * 1000:>10.1f} "
            f"{r.store['exact']:>5}/{args.conversations:<5} {r.answered:>7}/{args.conversations}"
        )
    for r in results:
        problems = {k: v for k, v in r.store.items() if v and k not in {"exact", "delivery keys"}}
        if problems or r.store["delivery keys"] != r.turns or r.examples:
            print(f"  {r.workers} worker(s): {problems}, delivery keys {r.store['delivery keys']}")
            for example in r.examples:
                print(f"    {example[:300]}")


if __name__ == "__main__":
    asyncio.run(main())
