"""The operator page on a big memory: how long its pages take, and what polling it costs turns.

    .venv/bin/python -m bench.web_bench [--backend sqlite postgres] [--threads 100000]
        [--messages 1000000] [--samples 40] [--turns 600] [--rounds 3]

Seeds `--threads` threads holding `--messages` messages in all through the store contract
(`load_thread`, so times and usage are spread over 60 days as a real bot's are): one thread of
100,000 items, the rest of about nine each (a tool call among them), five thousand people per
platform. Then, with the page served on that store as `BOT_WEB_PORT` serves it, asks each page
`--samples` times and prints p50/p95 of the server's own time (its `Server-Timing` header):
the threads list (first page, a platform's, and one 1,000 pages deep), a search for a common
and a rare word, the 100,000-item thread, and the overview. Target: p95 <= 150 ms each.

Last, on SQLite, the whole bot (core, store, the fake model in its own process) answers
`--turns` messages at concurrency 16 on that same memory, in rounds taking turns with and
without the overview polled once a second by another process (as an operator's open tab with a
refresh would): the ratio of the medians. Target: within 3%.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg

from bench.e2e_bench import Bot, drive, model_server
from bot.config import Config, config_from_mapping
from bot.storage import (
    Author,
    DumpedMessage,
    PostgresStore,
    SQLiteStore,
    Store,
    ThreadDump,
    Usage,
)
from bot.web import open_page
from tests.support.postgres import schema_on, server_url

PASSWORD = "bench password"
BIG = "slack:T1:CBIG:1.0"
BIG_ITEMS = 100_000
PLATFORMS = ("discord", "slack", "console")
WORDS = (
    "order",
    "refund",
    "parcel",
    "invoice",
    "shipping",
    "delay",
    "account",
    "password",
    "reset",
    "coupon",
    "warranty",
    "return",
    "label",
    "address",
    "payment",
    "card",
    "receipt",
    "tracking",
    "number",
    "weekend",
    "morning",
    "help",
    "please",
    "thanks",
    "question",
    "answer",
    "support",
    "ticket",
    "status",
    "update",
    "customer",
    "agent",
    "policy",
)
RARE = "zebracorn"
"""A word in one message of a thousand."""
PAGE_TARGET_MS = 150.0
NOW = datetime.now(UTC).replace(microsecond=0)


def text(rng: random.Random, n: int) -> str:
    words = rng.choices(WORDS, k=rng.randint(6, 18))
    if n % 1000 == 7:
        words.insert(rng.randrange(len(words)), RARE)
    return " ".join(words)


def thread_dump(number: int, rows: int, rng: random.Random) -> ThreadDump:
    """A thread of `rows` rows (exchanges, a tool call in the first; an odd count ends on a
    message whose answer failed), its last activity somewhere in the last 60 days."""
    platform = PLATFORMS[number % 3]
    session_id = BIG if number == 0 else f"{platform}:{number % 97}:{number}"
    people = [f"U{rng.randrange(5000)}" for _ in range(2)]
    end = NOW - timedelta(days=rng.random() * 60)
    start = end - timedelta(minutes=rows)
    messages: list[DumpedMessage] = []
    n = 0
    while len(messages) < rows:
        who = people[n % 2]
        when = start + timedelta(minutes=len(messages))
        author = Author(who, f"Person {who}")
        usage = Usage("gpt-a" if n % 3 else "gpt-b", 900 + n % 400, 512, 120, 3600)
        messages.append(
            DumpedMessage(
                len(messages) + 1,
                json.dumps({"role": "user", "content": f"[{author.name}] {text(rng, number + n)}"}),
                author,
                when,
                None,
            )
        )
        if n == 0:
            call = {
                "type": "function_call",
                "call_id": "c1",
                "name": "lookup_order",
                "arguments": '{"order": "A-17"}',
                "id": "fc_c1",
            }
            output = {"type": "function_call_output", "call_id": "c1", "output": "shipped"}
            for item in (call, output):
                messages.append(
                    DumpedMessage(len(messages) + 1, json.dumps(item), None, when, None)
                )
        messages.append(
            DumpedMessage(
                len(messages) + 1,
                json.dumps({"role": "assistant", "content": text(rng, number + n + 1)}),
                None,
                when,
                usage,
                asked_by=who,
            )
        )
        n += 1
    return ThreadDump(session_id, start, end, tuple(messages[:rows]), (), ())


async def seed(store: Store, threads: int, messages: int) -> int:
    """Load the threads, 32 at a time; returns the rows stored."""
    rng = random.Random(7)
    per_thread = max(4, (messages - BIG_ITEMS) // max(1, threads - 1))
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(threads):
        queue.put_nowait(number)
    stored = 0

    async def loader() -> None:
        nonlocal stored
        while not queue.empty():
            number = queue.get_nowait()
            rows = BIG_ITEMS if number == 0 else per_thread
            dump = thread_dump(number, rows, random.Random(rng.random() + number))
            await store.load_thread(dump)
            stored += len(dump.messages)

    await asyncio.gather(*(loader() for _ in range(32)))
    return stored


@contextlib.asynccontextmanager
async def signed_in(base: str) -> AsyncIterator[aiohttp.ClientSession]:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        form = await (await http.get(f"{base}/signin")).text()
        token = re.search(r'name="token" value="([^"]+)"', form)
        assert token is not None
        await http.post(
            f"{base}/signin",
            data={"token": token.group(1), "password": PASSWORD},
            allow_redirects=False,
        )
        yield http
    finally:
        await http.close()


async def server_ms(http: aiohttp.ClientSession, url: str) -> float:
    async with http.get(url) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
        return float(response.headers["Server-Timing"].split("dur=")[1])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def pages(store: Store, config: Config, samples: int) -> None:
    async with open_page(config, store, host="127.0.0.1", port=0) as server:
        base = f"http://127.0.0.1:{server.port}"
        async with signed_in(base) as http:
            # The thread list 1,000 pages deep: its cursor, read off the way an operator goes.
            deep = "/threads"
            started = time.perf_counter()
            for _ in range(1000 if samples else 0):
                html = await (await http.get(base + deep)).text()
                found = re.search(r'href="(/threads\?after=[^"]+)" rel="next"', html)
                if found is None:
                    break
                deep = found.group(1).replace("&amp;", "&")
            walk = time.perf_counter() - started
            print(f"  walking 1,000 pages of the thread list took {walk:.1f} s")
            cold = time.perf_counter()
            await server_ms(http, f"{base}/")
            print(
                f"  first overview (folds the day counters each turn added): "
                f"{time.perf_counter() - cold:.1f} s"
            )
            cold = time.perf_counter()
            await server_ms(http, f"{base}/search?q=order")
            print(
                f"  first search (brings the index up to date): {time.perf_counter() - cold:.1f} s"
            )
            cases = {
                "threads, first page": "/threads",
                "threads, one platform": "/threads?platform=slack",
                "threads, 1,000 pages deep": deep,
                "search, common word": "/search?q=refund",
                f"search, rare word ({RARE})": f"/search?q={RARE}",
                "thread of 100,000 items": "/thread?" + urllib.parse.urlencode({"id": BIG}),
                "overview": "/",
            }
            print(
                f"  {'page':36} {'p50 ms':>8} {'p95 ms':>8}   (target p95 <= {PAGE_TARGET_MS:.0f})"
            )
            for name, path in cases.items():
                times = [await server_ms(http, base + path) for _ in range(samples)]
                p95 = percentile(times, 0.95)
                mark = "ok" if p95 <= PAGE_TARGET_MS else "OVER"
                print(f"  {name:36} {statistics.median(times):8.1f} {p95:8.1f}   {mark}")


POLLER = """
import sys, time, urllib.request
base, cookie = sys.argv[1], sys.argv[2]
request = urllib.request.Request(base + "/", headers={"Cookie": cookie})
while True:
    started = time.monotonic()
    urllib.request.urlopen(request).read()
    time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
"""


async def polled_throughput(path: Path, args: argparse.Namespace) -> None:
    """Turns per second on the seeded file, with and without the overview polled."""
    config = config_from_mapping({"BOT_WEB_PASSWORD": PASSWORD})
    rates: dict[bool, list[float]] = {False: [], True: []}
    async with model_server(0.0) as base_url:
        for n in range(args.rounds):
            for polled in (n % 2 == 0, n % 2 == 1):
                async with Bot(base_url, path, 16) as send:
                    store = await SQLiteStore.open(path)
                    async with open_page(config, store, host="127.0.0.1", port=0) as server:
                        base = f"http://127.0.0.1:{server.port}"
                        async with signed_in(base) as http:
                            cookie = "; ".join(f"{c.key}={c.value}" for c in http.cookie_jar)
                        poller = None
                        if polled:
                            poller = await asyncio.create_subprocess_exec(
                                sys.executable, "-c", POLLER, base, cookie
                            )
                        try:
                            # Threads of their own each run, so no run meets longer threads
                            # (or their summaries) than another did.
                            prefix = f"bench-{n}-{polled}"
                            await drive(send, 64, 64, 16, prefix)  # warm up
                            rate = await drive(send, args.turns, 64, 16, prefix)
                        finally:
                            if poller is not None:
                                poller.terminate()
                                await poller.wait()
                    await store.close()
                rates[polled].append(rate)
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    for polled, label in ((False, "without the page polled"), (True, "with the overview polled")):
        each = ", ".join(f"{rate:.1f}" for rate in rates[polled])
        print(f"  turns/s {label}: {statistics.median(rates[polled]):.1f}  ({each})")
    print(f"  polled / not = {on / off:.3f}  (target >= 0.97)")


async def run(backend: str, args: argparse.Namespace, workdir: Path) -> None:
    config = config_from_mapping(
        {"BOT_WEB_PASSWORD": PASSWORD, "BOT_DAILY_TOKENS_PER_USER": "50000"}
    )
    async with contextlib.AsyncExitStack() as stack:
        if backend == "sqlite":
            path = workdir / "web.sqlite3"
            store: Store = await SQLiteStore.open(path)
        else:
            schema = await stack.enter_async_context(schema_on(server_url(), prefix="web_bench"))
            store = await PostgresStore.open(schema.url, pool_size=8)
        try:
            started = time.perf_counter()
            rows = await seed(store, args.threads, args.messages)
            print(
                f"\n{backend}: {args.threads:,} threads, {rows:,} messages seeded in "
                f"{time.perf_counter() - started:.0f} s"
            )
            if isinstance(store, PostgresStore):
                # What autovacuum does after a bulk load, here before the timings rather than
                # in the middle of them: the planner learns the tables, and counting a
                # thread's rows can use the index alone.
                conn = await asyncpg.connect(schema.url)
                await conn.execute("VACUUM ANALYZE")
                await conn.close()
            await pages(store, config, args.samples)
        finally:
            await store.close()
        if backend == "sqlite" and args.turns:
            await polled_throughput(workdir / "web.sqlite3", args)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--threads", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--turns", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        for backend in args.backend:
            await run(backend, args, Path(workdir))


if __name__ == "__main__":
    asyncio.run(main())
