"""Worker scaling: the whole bot as 1, 2 and 4 processes sharing one PostgreSQL memory, and as
one process on SQLite under the same load.

    .venv/bin/python -m bench.workers_bench [--conversations 2000] [--workers 1 2 4]
        [--backend sqlite postgres] [--events both|mention] [--model-seconds 1]
        [--max-concurrency 256] [--pool 10] [--logs DIR]

Each worker is `tests.worker_driver` (the real bot: Slack adapter in HTTP mode, core, metrics
on `BOT_METRICS_PORT=0`). With `--backend postgres` (the default runs both) the workers share a
fresh schema, once per count in `--workers`; with `--backend sqlite` one worker runs on a temp
SQLite file (`BOT_DB_PATH`), since a SQLite memory serves one process. This process plays
Slack: it sends signed Events API requests, each to the next worker in turn, as a load balancer
would (strictly per HTTP request, so one thread's messages, and even the two events of one
message, land on different workers), and serves the Web API the workers answer through (the
test fake). The fake model runs in its own process and takes `--model-seconds` per answer.

An app subscribed to both `app_mention` and `message.channels` (as the manifest is) gets every
mention in a channel twice: an `app_mention` event and a `message` event (`channel_type`
"channel"), with the same ts, text, user, channel and thread but their own event IDs. That is
what `--events both` (the default) sends, both at once; the bot answers the first it takes and
skips the other (`bot_deliveries` across workers). `--events mention` sends the `app_mention`
alone, as earlier versions of this benchmark did.

Each conversation is a thread started by mentioning the bot, with one, two or three messages,
each sent once the previous one is answered; all conversations start at once. Reported per run:

* turns/s, against the first run of the same back end ("vs first") and against SQLite;
* turns at once (peak): the most requests the fake model held at once, as it counted them;
* the split: the turns each worker took, from its Prometheus `memorybot_turns_total`;
* the workers' CPU per turn, and this process's (the fake Slack and the load);
* whether every turn was stored exactly once (rows per thread, counted in the database) and
  answered once;
* CPU seconds during the run of each worker, this process, the fake model and the PostgreSQL
  server's processes (every process on this machine whose command line starts with
  "postgres:", whoever it serves; a backend that ends during the run takes its CPU with it),
  their sum ("all"), and the whole machine's busy time (/proc/stat: "machine" less "all" is
  what other work on the machine took), each also as a share of all cores for the run's wall
  time (with 2 cores, 50% is one whole core).

A worker holds every thread lock on one connection of its own and uses its pool only for short
transactions, so `BOT_MAX_CONCURRENCY` (`--max-concurrency`), not the pool, says how many turns
run at once. `--pool` is each worker's `BOT_DATABASE_POOL` (default 10, the bot's); a worker
holds that many connections plus one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.e2e_bench import model_server
from tests.fakes.slack_server import BOT_USER, TEAM, FakeSlack, Posted
from tests.support.postgres import schema_on, server_url
from tests.support.slack import event_envelope, signed_headers
from tests.support.workers import (
    CLOCK_TICKS,
    Worker,
    Workers,
    cpu_seconds,
    worker_environment,
)

BACKENDS = ("sqlite", "postgres")
USER = "U0ANN"
CORES = os.cpu_count() or 1


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
    """Slack's side: signed event deliveries, each HTTP request to the next worker in turn."""

    def __init__(
        self,
        slack: BenchSlack,
        targets: list[Worker],
        http: aiohttp.ClientSession,
        *,
        both: bool,
    ) -> None:
        self.slack = slack
        self.targets = targets
        self.http = http
        self.both = both
        self.sent = 0

    async def mention(self, channel: str, text: str, thread_ts: str | None) -> str:
        """A person mentions the bot; Slack sends the event(s) an app subscribed to them gets."""
        ts = self.slack.new_ts()
        said = f"<@{BOT_USER}> {text}"
        self.slack.record_user_message(channel, said, USER, ts, thread_ts)
        common = {
            "user": USER,
            "text": said,
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
            "team": TEAM,
            **({"thread_ts": thread_ts} if thread_ts else {}),
        }
        events = [{"type": "app_mention", **common}]
        if self.both:
            # `message.channels`: the same message, told as a message in a public channel
            # (a reply in a thread also names whose message the thread is under).
            reply = {"parent_user_id": USER} if thread_ts else {}
            events.append({"type": "message", **common, "channel_type": "channel", **reply})
        # Targets are taken here, in order, before any request is on its way: the balancer
        # goes round per request, whatever the requests carry.
        deliveries = []
        for event in events:
            self.sent += 1
            target = self.targets[self.sent % len(self.targets)]
            deliveries.append((target, json.dumps(event_envelope(event, f"Ev{self.sent:08d}"))))
        await asyncio.gather(*(self._post(target, body) for target, body in deliveries))
        return ts

    async def _post(self, target: Worker, body: str) -> None:
        headers = signed_headers(body)
        async with self.http.post(target.url, data=body, headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"a worker refused an event: HTTP {response.status}")


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


Rows = list[tuple[str, str]]


async def postgres_rows(url: str) -> tuple[Rows, int | None]:
    """Every stored message (session, JSON) in order, and the delivery keys taken."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT session_id, message_data FROM agent_messages ORDER BY id")
        deliveries = await conn.fetchval("SELECT count(*) FROM bot_deliveries")
    finally:
        await conn.close()
    return [(session, data) for session, data in rows], int(deliveries)


def sqlite_rows(path: Path) -> tuple[Rows, int | None]:
    """Every stored message (session, JSON) in order; SQLite keeps delivery keys in memory."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT session_id, message_data FROM agent_messages ORDER BY id")
        return [(str(session), str(data)) for session, data in rows], None


def check_store(rows: Rows, roots: list[str]) -> tuple[dict[str, int], list[str]]:
    """Threads whose stored rows are exactly their turns, once each, in order; and the rest
    (with a few of them shown)."""
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


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of every process on this machine whose command line starts with
    "postgres:" (the server's backends and helpers; the postmaster is not one), by pid."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        # A process may end between listing and reading: it simply is not counted.
        with contextlib.suppress(OSError):
            if (entry / "cmdline").read_bytes().startswith(b"postgres:"):
                found[int(entry.name)] = cpu_seconds(int(entry.name))
    return found


def machine_busy() -> float:
    """CPU seconds every core of this machine has spent busy since boot, whoever for."""
    fields = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def turns_counted(exposition: str) -> int:
    """The turns a worker's `/metrics` counted, whatever their outcome."""
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith("memorybot_turns_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return round(total)


async def fetch_text(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as response:
        response.raise_for_status()
        return await response.text()


async def model_stats(http: aiohttp.ClientSession, model_url: str) -> dict[str, Any]:
    """The fake model's peak of requests at once since the last call, and its CPU seconds."""
    stats: dict[str, Any] = json.loads(await fetch_text(http, f"{model_url}/_fake/stats"))
    return stats


@dataclass(frozen=True)
class Setup:
    backend: str
    workers: int

    @property
    def name(self) -> str:
        return f"{self.workers} {self.backend} worker(s)"


@dataclass
class Result:
    setup: Setup
    concurrency: int
    pool: int | None
    """BOT_DATABASE_POOL of each worker (PostgreSQL only)."""
    turns: int
    seconds: float
    cpu: list[float]
    """CPU seconds each worker spent during the run."""
    here: float
    """CPU seconds this process (the fake Slack and the load) spent."""
    model: float
    """CPU seconds the fake model's process spent."""
    postgres: float
    """CPU seconds the PostgreSQL server's processes spent (whoever they served)."""
    machine: float
    """CPU seconds the whole machine spent busy: these processes and everyone else's."""
    peak: int
    """The most requests the fake model held at once."""
    split: list[int]
    """Turns each worker took, as its metrics counted them."""
    store: dict[str, int]
    deliveries: int | None
    """Delivery keys in `bot_deliveries` (PostgreSQL only: SQLite keeps them in memory)."""
    answered: int
    examples: list[str]

    @property
    def rate(self) -> float:
        return self.turns / self.seconds


@contextlib.asynccontextmanager
async def memory_for(
    setup: Setup, args: argparse.Namespace, scratch: Path
) -> AsyncIterator[tuple[str, dict[str, int]]]:
    """Where the workers keep memory (a fresh schema, or a fresh file) and its settings."""
    if setup.backend == "sqlite":
        yield str(scratch / f"memory-{time.monotonic_ns()}.sqlite3"), {}
        return
    pool = args.pool
    async with schema_on(args.database_url, prefix="bench_workers") as schema:
        yield schema.url, {"BOT_DATABASE_POOL": pool}


async def run(
    setup: Setup, args: argparse.Namespace, model_url: str, logs: Path, scratch: Path
) -> Result:
    concurrency = args.max_concurrency
    slack = BenchSlack()
    await slack.start()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(slack.close)
        memory, pool = await stack.enter_async_context(memory_for(setup, args, scratch))
        environment = worker_environment(
            memory,
            model_url,
            slack.api_url,
            BOT_MAX_CONCURRENCY=concurrency,
            BOT_THREAD_WAIT=600,
            BOT_MODEL_TIMEOUT=600,
            BOT_SHUTDOWN_GRACE=10,
            BOT_LOG_LEVEL="WARNING",
            BOT_METRICS_PORT=0,
            **pool,
        )
        name = f"worker-{setup.backend}-{setup.workers}"
        group = Workers(environment, logs, name=name, start_within=60, stop_within=15)
        async with (
            group,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as http,
        ):
            started = await group.start(setup.workers)
            balancer = Balancer(slack, started, http, both=args.events == "both")
            model_before = await model_stats(http, model_url)
            postgres_before = postgres_cpu()
            machine_before = machine_busy()
            cpu_before = [w.cpu_seconds() for w in started]
            here_before = time.process_time()
            began = time.perf_counter()
            roots = list(
                await asyncio.gather(*(converse(balancer, n) for n in range(args.conversations)))
            )
            seconds = time.perf_counter() - began
            here = time.process_time() - here_before
            cpu = [w.cpu_seconds() - before for w, before in zip(started, cpu_before, strict=True)]
            machine = machine_busy() - machine_before
            postgres_after = postgres_cpu()
            model_after = await model_stats(http, model_url)
            postgres = sum(
                spent - postgres_before.get(pid, 0.0) for pid, spent in postgres_after.items()
            )
            await asyncio.sleep(1.0)  # anything answered twice would be posted by now
            split = [turns_counted(await fetch_text(http, w.metrics_url)) for w in started]
            answered, unanswered = check_replies(slack, roots)
            if setup.backend == "sqlite":
                rows, deliveries = await asyncio.to_thread(sqlite_rows, Path(memory))
            else:
                rows, deliveries = await postgres_rows(memory)
            store, badly_stored = check_store(rows, roots)
    return Result(
        setup,
        concurrency,
        pool.get("BOT_DATABASE_POOL"),
        sum(messages_in(n) for n in range(args.conversations)),
        seconds,
        cpu,
        here,
        model_after["cpu_seconds"] - model_before["cpu_seconds"],
        postgres,
        machine,
        int(model_after["max_in_flight"]),
        split,
        store,
        deliveries,
        answered,
        badly_stored + unanswered,
    )


def share(seconds: float, wall: float) -> str:
    """CPU seconds, and their share of every core for `wall` seconds."""
    return f"{seconds:.1f} ({seconds / (CORES * wall):.0%})"


def report(results: list[Result], args: argparse.Namespace) -> None:
    first: dict[str, float] = {}
    for r in results:
        first.setdefault(r.setup.backend, r.rate)
    sqlite = first.get("sqlite")
    print(
        f"\n{args.conversations} conversations ({results[0].turns} turns), events: "
        f"{'app_mention + message' if args.events == 'both' else 'app_mention'}, model "
        f"{args.model_seconds:g}s per answer, {CORES} CPU(s)"
    )
    print(
        f"  {'backend':<8} {'workers':>7} {'turns at once (peak)':>20} {'turns/s':>8} "
        f"{'vs first':>8} {'vs SQLite':>9} {'split':<19} {'CPU ms/turn: workers':>20} "
        f"{'Slack+load':>10} {'stored once':>11} {'answered once':>13}"
    )
    for r in results:
        versus = "-" if sqlite is None else f"{r.rate / sqlite:.2f}x"
        split = "/".join(str(n) for n in r.split)
        print(
            f"  {r.setup.backend:<8} {r.setup.workers:>7} {r.peak:>20} {r.rate:>8.1f} "
            f"{r.rate / first[r.setup.backend]:>7.2f}x {versus:>9} {split:<19} "
            f"{sum(r.cpu) / r.turns * 1000:>20.1f} {r.here / r.turns * 1000:>10.1f} "
            f"{r.store['exact']:>5}/{args.conversations:<5} {r.answered:>7}/{args.conversations}"
        )
    print(f"\n  CPU seconds during the run (share of {CORES} cores x wall time)")
    print(
        f"  {'backend':<8} {'workers':>7} {'wall s':>6}  {'each worker':<44} {'Slack+load':>10} "
        f"{'model':>10} {'PostgreSQL':>10} {'all':>10} {'machine':>10}"
    )
    for r in results:
        wall = r.seconds
        each = " / ".join(share(spent, wall) for spent in r.cpu)
        everything = sum(r.cpu) + r.here + r.model + r.postgres
        print(
            f"  {r.setup.backend:<8} {r.setup.workers:>7} {wall:>6.1f}  {each:<44} "
            f"{share(r.here, wall):>10} {share(r.model, wall):>10} "
            f"{share(r.postgres, wall):>10} {share(everything, wall):>10} "
            f"{share(r.machine, wall):>10}"
        )
    for r in results:
        problems = {k: v for k, v in r.store.items() if v and k != "exact"}
        wrong_keys = r.deliveries is not None and r.deliveries != r.turns
        if problems or wrong_keys or r.examples or sum(r.split) != r.turns:
            print(
                f"  {r.setup.name}: {problems}, delivery keys {r.deliveries}, "
                f"turns counted {sum(r.split)} of {r.turns}"
            )
            for example in r.examples:
                print(f"    {example[:300]}")


def setups(args: argparse.Namespace) -> list[Setup]:
    """The runs, in the order asked: SQLite as one worker, PostgreSQL at each worker count."""
    found: list[Setup] = []
    for backend in dict.fromkeys(args.backend or BACKENDS):
        if backend == "sqlite":
            found.append(Setup("sqlite", 1))
        else:
            found.extend(Setup("postgres", count) for count in args.workers)
    return found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2, 4], help="worker counts on PostgreSQL"
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        nargs="+",
        action="extend",
        help="memory back ends to run, in this order (default: both); SQLite runs one worker",
    )
    parser.add_argument(
        "--events",
        choices=("both", "mention"),
        default="both",
        help="per message, `app_mention` and `message` as Slack sends an app subscribed to "
        "both (default), or the `app_mention` alone",
    )
    parser.add_argument("--model-seconds", type=float, default=1.0)
    parser.add_argument(
        "--max-concurrency", type=int, default=256, help="BOT_MAX_CONCURRENCY per worker"
    )
    parser.add_argument(
        "--pool",
        type=int,
        default=10,
        help="BOT_DATABASE_POOL per worker (each worker holds one connection more, for its "
        "thread locks)",
    )
    parser.add_argument("--database-url", default=server_url())
    parser.add_argument("--logs", type=Path, help="keep the workers' logs in this directory")
    args = parser.parse_args()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="workers-bench-") as tmp:
        scratch = Path(tmp)
        logs = args.logs or scratch
        logs.mkdir(parents=True, exist_ok=True)
        async with model_server(args.model_seconds) as model_url:
            for setup in setups(args):
                result = await run(setup, args, model_url, logs, scratch)
                results.append(result)
                pool = "" if result.pool is None else f", BOT_DATABASE_POOL={result.pool} each"
                print(
                    f"{setup.name}: {result.turns} turns in {result.seconds:.1f}s = "
                    f"{result.rate:.1f} turns/s (BOT_MAX_CONCURRENCY={result.concurrency}"
                    f"{pool})",
                    flush=True,
                )
    report(results, args)


if __name__ == "__main__":
    asyncio.run(main())
