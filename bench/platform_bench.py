"""Platform benchmark: messages through a real adapter and the core, against the test fakes.

    .venv/bin/python -m bench.platform_bench [slack|discord ...] [--messages 600] [--threads 300]

For each platform, in one run:

* **throughput**: messages delivered the way the platform delivers them (Slack: Socket Mode
  envelopes; Discord: gateway MESSAGE_CREATE) → adapter → core → store → the fake model (its
  own process, zero latency) → replies back on the fake platform; compared with a bare loop of
  `Runner.run` + the SDK's `SQLiteSession` against the same model at the same concurrency.
  The fake platform runs in this process, so its CPU counts against the bot.
* **streaming latency**: from the model's first token leaving the (in-process) fake model to the
  first visible update on the platform (a streamed or posted message), p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bench.e2e_bench import BareLoop, bench_config, drive, model_server
from bot.agent import build_client
from bot.app import build_core
from bot.config import Config
from bot.storage import SQLiteStore
from tests.fakes.openai_server import FakeOpenAI

Send = Callable[[str, int], Awaitable[None]]
Latencies = Callable[[], list[float]]


@asynccontextmanager
async def bot_parts(config: Config) -> AsyncIterator[Any]:
    client = build_client(config)
    store = await SQLiteStore.open(config.db_path)
    try:
        yield build_core(config, store, client)
    finally:
        await store.close()
        await client.close()


# ----- Slack ---------------------------------------------------------------------------------


@asynccontextmanager
async def slack_bot(config: Config) -> AsyncIterator[tuple[Send, Latencies]]:
    from adapters.slack import SlackAdapter
    from adapters.slack.settings import SlackSettings
    from tests.fakes.slack_server import BOT_USER, TEAM, FakeSlack

    async with FakeSlack() as slack, bot_parts(config) as core:
        adapter = SlackAdapter(
            core,
            SlackSettings(bot_token="xoxb-bench", app_token="xapp-bench"),
            base_url=slack.api_url,
            ping_interval=30.0,
        )
        runner = asyncio.create_task(adapter.run())
        await asyncio.wait_for(slack.connected.wait(), 10)
        counter = 0

        async def send(thread: str, turn: int) -> None:
            nonlocal counter
            counter += 1
            channel = "D" + thread.split(":")[-1].rjust(6, "0")  # one DM per thread
            ts = slack.new_ts()
            text = f"message {turn}"
            slack.record_user_message(channel, text, "U0ANN", ts, None)
            event = {
                "type": "message",
                "channel_type": "im",
                "user": "U0ANN",
                "text": text,
                "ts": ts,
                "channel": channel,
                "event_ts": ts,
                "team": TEAM,
            }
            body = {
                "team_id": TEAM,
                "api_app_id": "A0APP",
                "event": event,
                "type": "event_callback",
                "event_id": f"Ev{counter}",
                "event_time": int(time.time()),
                "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
            }
            await slack.deliver("events_api", body)
            await slack.wait_for_replies(channel, None, turn + 1, within=60)

        def latencies() -> list[float]:
            firsts = [
                c.at
                for c in slack.calls
                if c.method in {"chat.postMessage", "chat.startStream"}
                and c.body.get("channel", "").startswith("D")
            ]
            return firsts

        try:
            yield send, latencies
        finally:
            await adapter.close(grace=10.0)
            await runner


# ----- Discord -------------------------------------------------------------------------------


@asynccontextmanager
async def discord_bot(config: Config) -> AsyncIterator[tuple[Send, Latencies]]:
    import warnings

    import yarl

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
        import discord
        from discord.gateway import DiscordWebSocket

    from adapters.discord import DiscordAdapter
    from adapters.discord.settings import DiscordSettings
    from tests.fakes.discord_server import FakeDiscord, user

    class Probed(DiscordAdapter):
        """Notes when a message has been fully answered, so the driver can send the next."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.done: dict[int, asyncio.Event] = {}

        async def on_message(self, message: discord.Message) -> None:
            try:
                await super().on_message(message)
            finally:
                self.done.setdefault(message.id, asyncio.Event()).set()

    ann = user(101, "Ann")
    settings = DiscordSettings(token="fake-discord-token")
    async with FakeDiscord() as fake, bot_parts(config) as core:
        saved = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = fake.api_base
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
        adapter = Probed(core, settings, guild_ready_timeout=0.01)
        runner = asyncio.create_task(adapter.run())
        try:
            for _ in range(1000):  # wait_until_ready() may not be called before login
                if adapter.client.is_ready():
                    break
                await asyncio.sleep(0.01)

            async def send(thread: str, turn: int) -> None:
                channel = 100_000 + int(thread.split(":")[-1])  # one DM per thread
                payload = fake.user_message(channel, f"message {turn}", author=ann)
                done = adapter.done.setdefault(int(payload["id"]), asyncio.Event())
                await fake.dispatch("MESSAGE_CREATE", payload)
                await asyncio.wait_for(done.wait(), 60)

            def latencies() -> list[float]:
                return [r.at for r in fake.calls("POST", r"^/channels/1\d{5}/messages$")]

            yield send, latencies
        finally:
            await adapter.close(grace=10.0)
            await runner
            discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


PLATFORMS: dict[str, Callable[[Config], Any]] = {"discord": discord_bot, "slack": slack_bot}


# ----- measurements --------------------------------------------------------------------------


async def throughput(platform: str, args: argparse.Namespace, workdir: Path) -> None:
    async with model_server(0.0) as base_url:
        for concurrency in args.concurrency:
            threads = max(args.threads, concurrency)
            bare = BareLoop(base_url, workdir / f"bare-{platform}-{concurrency}.sqlite3", False)
            async with bare as send:
                await drive(send, threads, threads, concurrency)
                bare_rate = await drive(send, args.messages, threads, concurrency)
            config = bench_config(
                base_url, workdir / f"{platform}-{concurrency}.sqlite3", concurrency
            )
            async with PLATFORMS[platform](config) as (send, _):
                await drive(send, threads, threads, concurrency)
                bot_rate = await drive(send, args.messages, threads, concurrency)
            print(
                f"{platform:8} throughput, {args.messages} messages over {threads} threads, "
                f"concurrency {concurrency}: bot {bot_rate:.1f} msg/s, bare Runner.run + "
                f"SQLiteSession {bare_rate:.1f} msg/s, ratio {bot_rate / bare_rate:.2f} "
                "(target >= 0.90)"
            )


async def latency(platform: str, args: argparse.Namespace, workdir: Path) -> None:
    # Many small chunks spaced out, so the first update is clearly separate from the end.
    async with FakeOpenAI(chunk_chars=4, chunk_delay=0.002) as fake:
        config = bench_config(fake.base_url, workdir / f"latency-{platform}.sqlite3", 4)
        async with PLATFORMS[platform](config) as (send, first_updates):
            for n in range(args.latency_turns):
                await send(f"bench:{n}", 0)  # a fresh thread each time: one first update each
            updates = first_updates()
    firsts = sorted(r.first_chunk for r in fake.requests if r.first_chunk is not None)
    gaps: list[float] = []
    for token_at in firsts:
        later = [u for u in updates if u >= token_at]
        if later:
            gaps.append((min(later) - token_at) * 1000)
    gaps.sort()
    p50 = statistics.median(gaps)
    p99 = gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))]
    print(
        f"{platform:8} first token -> first visible update over {len(gaps)} answers: "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("platforms", nargs="*", default=sorted(PLATFORMS))
    parser.add_argument("--messages", type=int, default=600)
    # Discord allows about one write a second per channel, and the adapter keeps to that; with
    # enough threads (one DM each) the benchmark measures the bot rather than that limit.
    parser.add_argument("--threads", type=int, default=300)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--latency-turns", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="platform-bench-") as tmp:
        for platform in args.platforms:
            if platform not in PLATFORMS:
                sys.exit(f"unknown platform {platform!r}; choose from {sorted(PLATFORMS)}")
            await throughput(platform, args, Path(tmp))
            await latency(platform, args, Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
