"""End-to-end benchmark: the whole bot against a bare `Runner` loop, in one run.

    .venv/bin/python -m bench.e2e_bench throughput [--messages 600] [--concurrency 1 16]
        [--rounds 3] [--rules 50]
    .venv/bin/python -m bench.e2e_bench concurrency [--conversations 1000] [--model-seconds 1]
    .venv/bin/python -m bench.e2e_bench tools [--messages 300] [--concurrency 1 16]

`throughput`: messages go through the core (guards, per-thread lock, the buffered turn, the
store, streaming to a sink) against a fake model at zero latency, compared with a bare loop of
`Runner.run` + the SDK's `SQLiteSession` (and `Runner.run_streamed`, which is what the bot does)
against the same fake model. The fake model runs in its own process, so this process's CPU is
the bot's and the openai client's only. It also compares the bot with its operations features on
(Prometheus metrics, and a daily token budget set too high to refuse, so every message is checked
against the usage recorded with each turn) and off: `--rounds` runs of each, taking turns, and the
ratio of their medians. A third bot in those rounds reads a profiles file of `--rules` rules
(`BOT_PROFILES`), the last of which matches every message, to a profile that changes nothing:
what choosing a profile per message costs.

`concurrency`: N conversations at once against a model that takes `--model-seconds` per answer:
no errors, every turn stored once and in order, wall time against model time plus the bare loop's
CPU time for the same number of turns, and peak RSS.

`tools`: every message makes the model call one tool on a local MCP server (stdio, the test
server in `tests/support/mcp_server.py`) before answering: the bot (its toolbox, timeouts and
supervision included) against a bare `Runner.run` whose agent has the same server in
`mcp_servers`, and the time from the model sending the tool call to the request carrying the
tool's result reaching the model (measured by the fake model itself).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import resource
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

from agents import Runner, SQLiteSession
from agents.mcp import MCPServerStdio

from bot.agent import build_agent, build_client, build_model, build_run_config
from bot.app import build_core
from bot.collector import collector_for_serving
from bot.config import Config
from bot.core import Core
from bot.messages import IncomingMessage, Place, ReplyKind, Surface
from bot.ops.metrics import Metrics
from bot.profiles.loading import read_profiles
from bot.storage import SQLiteStore
from bot.tools import open_toolbox
from tests.support.mcp_server import config_entry, stdio_params

Send = Callable[[str, int], Awaitable[None]]


@contextlib.asynccontextmanager
async def model_server(latency: float, tool: str | None = None) -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.openai_server",
        "--latency",
        str(latency),
        "--chunk-chars",
        "16",
        *(["--tool", tool] if tool else []),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        yield (await process.stdout.readline()).decode().strip()
    finally:
        process.terminate()
        await process.wait()


def bench_config(base_url: str, db_path: Path, concurrency: int) -> Config:
    return Config(
        openai_api_key="sk-bench",
        openai_base_url=base_url,
        model="fake-model",
        model_api="chat_completions",
        model_retries=0,
        db_path=str(db_path),
        max_concurrency=concurrency,
        rate_limit_per_minute=0,
    )


async def drive(
    send: Send, messages: int, threads: int, concurrency: int, prefix: str = "bench"
) -> float:
    """Send `messages` spread over `threads` (named `PREFIX:N`) with `concurrency` senders;
    return messages/s."""
    queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    for n in range(messages):
        queue.put_nowait((f"{prefix}:{n % threads}", n // threads))

    async def sender() -> None:
        while not queue.empty():
            thread, turn = queue.get_nowait()
            await send(thread, turn)

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return messages / (time.perf_counter() - started)


OPERATIONS_BUDGET = 10**12
"""Tokens per person per day with operations on: checked on every message, never reached."""


class Bot:
    """The whole core, as an adapter drives it (with the configured tools, if any).

    With `operations`, the core reports to Prometheus metrics and checks a daily token budget,
    as `BOT_METRICS_PORT` and `BOT_DAILY_TOKENS_PER_USER` make it (nothing is served: the
    metrics are counted, which is what a scrape would read).
    """

    def __init__(
        self,
        base_url: str,
        db_path: Path,
        concurrency: int,
        mcp_config: Path | None = None,
        *,
        operations: bool = False,
        profiles: Path | None = None,
    ) -> None:
        self.config = bench_config(base_url, db_path, concurrency)
        if profiles is not None:
            self.config = dataclasses.replace(self.config, profiles=str(profiles))
        if mcp_config is not None:
            self.config = dataclasses.replace(self.config, mcp_config=str(mcp_config))
        if operations:
            self.config = dataclasses.replace(
                self.config, metrics_port=0, daily_tokens_per_user=OPERATIONS_BUDGET
            )
        self.metrics = Metrics() if operations else None
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Send:
        self.client = build_client(self.config)
        self.store = await SQLiteStore.open(self.config.db_path)
        toolbox = await self._stack.enter_async_context(open_toolbox(self.config))
        self.core: Core = build_core(
            self.config,
            self.store,
            self.client,
            tools=toolbox.tools,
            metrics=self.metrics,
            profiles=read_profiles(self.config),
            tool_sources=toolbox.sources,
        )
        surface = Surface(max_chars=2000)
        # As `bot.app.serve` runs it; restored on exit, so the bare loops run with defaults.
        self._stack.enter_context(collector_for_serving())

        async def send(thread: str, turn: int) -> None:
            # As the console says them: a profiles file's rules name a known platform.
            message = IncomingMessage(
                "console", thread, "u1", "Ann", f"message {turn}", place=Place(channel=thread)
            )
            reply = await self.core.handle(message, surface, _Streamed())
            if reply.kind is not ReplyKind.ANSWER:
                raise RuntimeError(f"turn failed: {reply}")

        return send

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()
        await self.store.close()
        await self.client.close()


class _Streamed:
    """Takes the answer as it streams, as an adapter would."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    async def started(self) -> None:
        pass

    async def delta(self, text: str) -> None:
        self.parts.append(text)

    async def tool(self, name: str) -> None:
        pass


class BareLoop:
    """`Runner.run` (or `run_streamed`) with a `SQLiteSession` per message: the SDK alone."""

    def __init__(
        self, base_url: str, db_path: Path, streamed: bool, mcp: MCPServerStdio | None = None
    ) -> None:
        self.config = bench_config(base_url, db_path, 1)
        self.streamed = streamed
        self.mcp = mcp

    async def __aenter__(self) -> Send:
        self.client = build_client(self.config)
        agent = build_agent(self.config, build_model(self.config, self.client), [])
        if self.mcp is not None:
            await self.mcp.connect()
            agent = agent.clone(mcp_servers=[self.mcp])
        run_config = build_run_config(self.config)
        path = self.config.db_path

        async def send(thread: str, turn: int) -> None:
            session = SQLiteSession(thread, path)
            try:
                if self.streamed:
                    result = Runner.run_streamed(
                        agent, f"[Ann] message {turn}", session=session, run_config=run_config
                    )
                    async for _ in result.stream_events():
                        pass
                else:
                    await Runner.run(
                        agent, f"[Ann] message {turn}", session=session, run_config=run_config
                    )
            finally:
                session.close()

        return send

    async def __aexit__(self, *exc: object) -> None:
        if self.mcp is not None:
            await self.mcp.cleanup()
        await self.client.close()


BOT = "the bot (core + store + streaming)"
BOT_OPS = "the bot with metrics + usage budget"
BOT_PROFILES = "the bot with a profiles file"


def profiles_file(path: Path, rules: int) -> Path:
    """`rules` rules, of which only the last matches the benchmark's messages, to a profile
    that changes nothing: the cost measured is choosing the profile, not running another."""
    lines = ["[profiles.same]", "", "[profiles.other]", 'model = "other-model"', ""]
    for n in range(rules - 1):
        lines += ["[[rules]]", 'platform = "discord"', f'channel = "{n}"', 'profile = "other"', ""]
    lines += ["[[rules]]", 'platform = "console"', 'profile = "same"', ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


async def throughput(args: argparse.Namespace, workdir: Path) -> None:
    async with model_server(0.0) as base_url:
        for concurrency in args.concurrency:
            print(
                f"\n{args.messages} messages over {args.threads} threads, "
                f"concurrency {concurrency}, model latency 0"
            )
            rates: dict[str, float] = {}
            backends: dict[str, Any] = {
                "bare Runner.run + SQLiteSession": lambda p: BareLoop(base_url, p, False),
                "bare Runner.run_streamed + SQLiteSession": lambda p: BareLoop(base_url, p, True),
            }
            for name, make in backends.items():
                backend: Any = make(workdir / f"{name.split()[1]}-{concurrency}.sqlite3")
                async with backend as send:
                    await drive(send, args.threads, args.threads, concurrency)  # warm up
                    rates[name] = await drive(send, args.messages, args.threads, concurrency)
            # The operations comparison wants a few percent, under run-to-run noise of
            # +-25% here: both take turns, each round on a fresh file, and medians are compared.
            rounds: dict[str, list[float]] = {BOT: [], BOT_OPS: [], BOT_PROFILES: []}
            cpu: dict[str, list[float]] = {BOT: [], BOT_OPS: [], BOT_PROFILES: []}
            rules = profiles_file(workdir / "profiles.toml", args.rules)
            variants = ((BOT, False, None), (BOT_OPS, True, None), (BOT_PROFILES, False, rules))
            for n in range(args.rounds):
                # Each round starts with the next variant, so none always runs last (after
                # the others' garbage) and a third of the rounds favour each.
                for name, operations, profiles in variants[n % 3 :] + variants[: n % 3]:
                    path = workdir / f"bot-{name.split()[-1]}-{concurrency}-{n}.sqlite3"
                    async with Bot(
                        base_url, path, concurrency, operations=operations, profiles=profiles
                    ) as send:
                        await drive(send, args.threads, args.threads, concurrency)  # warm up
                        cpu_started = time.process_time()
                        rate = await drive(send, args.messages, args.threads, concurrency)
                        cpu_ms = (time.process_time() - cpu_started) * 1000 / args.messages
                    rounds[name].append(rate)
                    cpu[name].append(cpu_ms)
            for name, rates_of_rounds in rounds.items():
                rates[name] = statistics.median(rates_of_rounds)
            for name, rate in rates.items():
                spread = ""
                if name in rounds:
                    low, high = min(rounds[name]), max(rounds[name])
                    spread = f"   ({len(rounds[name])} rounds, {low:.1f}-{high:.1f})"
                print(f"  {name:42} {rate:8.1f} msg/s{spread}")
            bot = rates[BOT]
            bare = rates["bare Runner.run + SQLiteSession"]
            print(f"  bot / bare Runner.run           = {bot / bare:.2f}  (target >= 0.90)")
            print(
                f"  bot / bare Runner.run_streamed  = "
                f"{bot / rates['bare Runner.run_streamed + SQLiteSession']:.2f}"
            )
            print(
                f"  operations on / off             = {rates[BOT_OPS] / bot:.3f}  "
                "(target >= 0.97: at most 3% slower)"
            )
            # CPU time is what the features add, and is steadier than wall time on a busy
            # machine (the model runs in its own process, so this is the bot's alone).
            off, on = statistics.median(cpu[BOT]), statistics.median(cpu[BOT_OPS])
            print(f"  CPU per message, on / off       = {on:.2f} / {off:.2f} ms = {on / off:.3f}")
            print(
                f"  {args.rules} profile rules / no file   = {rates[BOT_PROFILES] / bot:.3f}  "
                "(target >= 0.98: at most 2% slower)"
            )
            with_rules = statistics.median(cpu[BOT_PROFILES])
            print(
                f"  CPU per message, rules / none   = {with_rules:.2f} / {off:.2f} ms = "
                f"{with_rules / off:.3f}"
            )


async def concurrency(args: argparse.Namespace, workdir: Path) -> None:
    n, seconds = args.conversations, args.model_seconds
    # The bare loop's CPU time for the same number of turns, measured at zero latency.
    async with (
        model_server(0.0) as base_url,
        BareLoop(base_url, workdir / "cpu.sqlite3", False) as send,
    ):
        await drive(send, 20, 20, 1)
        cpu_started = time.process_time()
        wall_started = time.perf_counter()
        await drive(send, n, n, 1)
        bare_cpu = time.process_time() - cpu_started
        bare_wall = time.perf_counter() - wall_started
    async with model_server(seconds) as base_url:
        bot = Bot(base_url, workdir / "concurrency.sqlite3", n)
        async with bot as send:
            cpu_started = time.process_time()
            started = time.perf_counter()
            results = await asyncio.gather(
                *(send(f"c:{i}", 0) for i in range(n)), return_exceptions=True
            )
            wall = time.perf_counter() - started
            bot_cpu = time.process_time() - cpu_started
            errors = [r for r in results if isinstance(r, BaseException)]
            counts = [await bot.store.count_items(f"c:{i}") for i in range(n)]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    bound = seconds + bare_cpu
    print(f"\n{n} conversations at once, model {seconds:.1f}s per answer")
    print(f"  errors: {len(errors)}; turns stored once: {counts.count(2)}/{n}")
    print(f"  bare loop for {n} turns: {bare_cpu:.2f}s CPU ({bare_wall:.2f}s wall, sequential)")
    print(
        f"  wall time {wall:.2f}s vs model + bare CPU {bound:.2f}s = {wall / bound:.2f}x "
        "(target <= 1.3x)"
    )
    print(f"  the bot's own CPU for them: {bot_cpu:.2f}s ({bot_cpu / bare_cpu:.2f}x the bare loop)")
    print(f"  peak RSS {rss_mb:.0f} MB")
    if errors:
        print(f"  first error: {errors[0]!r}")


def _tool_gaps(base_url: str) -> list[float]:
    with urllib.request.urlopen(f"{base_url}/_fake/tool_gaps") as response:  # loopback only
        return [float(gap) for gap in json.load(response)]


async def tools(args: argparse.Namespace, workdir: Path) -> None:
    mcp_config = workdir / "mcp.json"
    entry = config_entry(allowed_tools=["lookup_ticket"])
    mcp_config.write_text(json.dumps({"mcpServers": {"tickets": entry}}))
    async with model_server(0.0, tool="lookup_ticket") as base_url:
        for concurrency in args.concurrency:
            print(
                f"\n{args.messages} tool-using messages over {args.threads} threads, "
                f"concurrency {concurrency}, one MCP call (stdio) each, model latency 0"
            )
            rates: dict[str, float] = {}
            gaps: dict[str, list[float]] = {}
            backends: dict[str, Any] = {
                "bare Runner.run + SQLiteSession + MCP": lambda p: BareLoop(
                    base_url,
                    p,
                    False,
                    MCPServerStdio(cast(Any, stdio_params()), cache_tools_list=True),
                ),
                "the bot (core + store + toolbox)": lambda p, c=concurrency: Bot(
                    base_url, p, c, mcp_config
                ),
            }
            for name, make in backends.items():
                backend: Any = make(workdir / f"tools-{name.split()[1]}-{concurrency}.sqlite3")
                async with backend as send:
                    await drive(send, args.threads, args.threads, concurrency)  # warm up
                    await asyncio.to_thread(_tool_gaps, base_url)
                    rates[name] = await drive(send, args.messages, args.threads, concurrency)
                    gaps[name] = await asyncio.to_thread(_tool_gaps, base_url)
            for name, rate in rates.items():
                ms = sorted(gap * 1000 for gap in gaps[name])
                p95 = ms[int(len(ms) * 0.95)] if ms else float("nan")
                print(
                    f"  {name:40} {rate:7.1f} msg/s   tool call -> result at the model: "
                    f"median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms"
                )
            bot = rates["the bot (core + store + toolbox)"]
            bare = rates["bare Runner.run + SQLiteSession + MCP"]
            print(f"  bot / bare Runner.run           = {bot / bare:.2f}  (target >= 0.90)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    tp = sub.add_parser("throughput")
    tp.add_argument("--messages", type=int, default=600)
    tp.add_argument("--threads", type=int, default=30)
    tp.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    tp.add_argument("--rounds", type=int, default=3, help="runs of the bot with and without")
    tp.add_argument("--rules", type=int, default=50, help="rules in the profiles file")
    cc = sub.add_parser("concurrency")
    cc.add_argument("--conversations", type=int, default=1000)
    cc.add_argument("--model-seconds", type=float, default=1.0)
    tl = sub.add_parser("tools")
    tl.add_argument("--messages", type=int, default=300)
    tl.add_argument("--threads", type=int, default=30)
    tl.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="e2e-bench-") as tmp:
        if args.what == "throughput":
            await throughput(args, Path(tmp))
        elif args.what == "tools":
            await tools(args, Path(tmp))
        else:
            await concurrency(args, Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
