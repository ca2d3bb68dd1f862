"""SIGTERM through `bot.app.run_until_stopped` with a reply under way, on each real platform."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from pathlib import Path

from bot.app import run_until_stopped
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_server import FakeSlack
from tests.support.discord import ANN, DM, discord_config
from tests.support.parts import BotParts
from tests.support.slack import CHANNEL, slack_settings, thread_key
from tests.support.slack import Harness as SlackHarness


async def sigterm_when_the_model_is_asked(fake_openai: FakeOpenAI) -> None:
    await asyncio.wait_for(fake_openai.request_seen.wait(), 10)
    os.kill(os.getpid(), signal.SIGTERM)


async def test_sigterm_lets_a_slack_answer_finish_then_stops(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    from adapters.slack import SlackAdapter
    from tests.support.parts import make_config

    fake_openai.latency = 0.5
    config = make_config(fake_openai, tmp_path / "memory.sqlite3")
    async with FakeSlack() as slack:
        parts = await BotParts(config).start()
        adapter = SlackAdapter(
            parts.core,
            slack_settings(),
            base_url=slack.api_url,
            update_interval=0.01,
        )
        serving = asyncio.create_task(run_until_stopped(parts.core, [adapter], parts.store, config))
        await asyncio.wait_for(slack.connected.wait(), 10)
        ts = await SlackHarness(slack, config).mention("a slow question")
        await sigterm_when_the_model_is_asked(fake_openai)
        async with asyncio.timeout(15):
            await serving
        try:
            replies = slack.bot_messages(CHANNEL, ts)
            assert [m.text for m in replies] == [
                "You said: [Ann] a slow question. Before that: nothing."
            ]
            assert await parts.store.count_items(thread_key(CHANNEL, ts)) == 2
            assert not slack.sockets  # disconnected
        finally:
            await parts.close()


async def test_sigterm_lets_a_discord_answer_finish_then_stops(
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
) -> None:
    from adapters.discord import DiscordAdapter
    from adapters.discord.settings import DiscordSettings

    fake_openai.latency = 0.5
    config = discord_config(fake_openai, tmp_path / "memory.sqlite3")
    parts = await BotParts(config).start()
    settings = DiscordSettings.from_config(config)
    adapter = DiscordAdapter(parts.core, settings, edit_interval=0.05, guild_ready_timeout=0.01)
    serving = asyncio.create_task(run_until_stopped(parts.core, [adapter], parts.store, config))
    try:
        await fake_discord.ready()
        for _ in range(500):  # ready once discord.py has processed READY
            if adapter.client.is_ready():
                break
            await asyncio.sleep(0.01)
        payload = fake_discord.user_message(DM, "a slow question", author=ANN)
        await fake_discord.dispatch("MESSAGE_CREATE", payload)
        await sigterm_when_the_model_is_asked(fake_openai)
        async with asyncio.timeout(15):
            await serving
        shown = [m["content"] for m in fake_discord.channel_messages(DM)]
        assert shown == ["You said: [Ann] a slow question. Before that: nothing."]
        assert await parts.store.count_items(f"discord:dm:{DM}") == 2
        assert adapter.client.is_closed()
    finally:
        await parts.close()


async def test_one_shutdown_deadline_covers_the_core_and_every_adapter(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    from adapters.discord import DiscordAdapter
    from adapters.discord.settings import DiscordSettings
    from adapters.slack import SlackAdapter

    fake_openai.latency = 60.0  # answers that would never finish in time
    grace = 2.0
    config = dataclasses.replace(
        discord_config(fake_openai, tmp_path / "memory.sqlite3"), shutdown_grace=grace
    )
    async with FakeSlack() as slack:
        parts = await BotParts(config).start()
        discord_adapter = DiscordAdapter(
            parts.core,
            DiscordSettings.from_config(config),
            edit_interval=0.05,
            guild_ready_timeout=0.01,
        )
        slack_adapter = SlackAdapter(
            parts.core, slack_settings(), base_url=slack.api_url, update_interval=0.01
        )
        serving = asyncio.create_task(
            run_until_stopped(parts.core, [discord_adapter, slack_adapter], parts.store, config)
        )
        try:
            await fake_discord.ready()
            await asyncio.wait_for(slack.connected.wait(), 10)
            for _ in range(500):
                if discord_adapter.client.is_ready():
                    break
                await asyncio.sleep(0.01)
            payload = fake_discord.user_message(DM, "a question", author=ANN)
            await fake_discord.dispatch("MESSAGE_CREATE", payload)
            await SlackHarness(slack, config).mention("another question")
            for _ in range(1000):
                if len(fake_openai.requests) == 2:
                    break
                await asyncio.sleep(0.01)
            assert len(fake_openai.requests) == 2
            loop = asyncio.get_running_loop()
            started = loop.time()
            os.kill(os.getpid(), signal.SIGTERM)
            async with asyncio.timeout(grace + 10):
                await serving
            took = loop.time() - started
            # Before, the core waited 30 s whatever the setting, then each adapter its own.
            assert took < grace + 1.0, f"shutdown took {took:.1f}s with a {grace}s grace"
            assert discord_adapter.client.is_closed()
            assert not slack.sockets
            assert await parts.store.count_items(f"discord:dm:{DM}") == 0  # nothing half-stored
        finally:
            if not serving.done():
                serving.cancel()
            await parts.close()
