"""Discord sharding: settings, the fake gateway's routing, and workers on real discord.py."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # discord.py imports the deprecated `audioop` for voice, which the bot never uses, and
    # the test settings turn warnings into errors.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord

import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.discord.settings import DiscordSettings
from bot.config import Config, ConfigError, config_from_mapping
from tests.fakes.discord_server import APP_ID, BOT_USER, FakeDiscord, Json, shard_of
from tests.fakes.openai_server import FakeOpenAI
from tests.support.discord import (
    ANN,
    CHANNEL,
    DM,
    GUILD,
    MENTION,
    SHARD_1_CHANNEL,
    SHARD_1_GUILD,
    Harness,
    discord_config,
    eventually,
)

# ----- settings ------------------------------------------------------------------------------


def settings(**env: str) -> DiscordSettings:
    return DiscordSettings.from_config(config_from_mapping({"DISCORD_TOKEN": "t", **env}))


def test_without_shard_settings_the_bot_connects_once_and_syncs_commands() -> None:
    plain = settings()
    assert (plain.sharded, plain.shard_count, plain.shard_ids) == (False, None, None)
    assert plain.syncs_commands


def test_shard_settings_are_read() -> None:
    worker = settings(DISCORD_SHARD_COUNT="4", DISCORD_SHARD_IDS=" 3, 1 ")
    assert (worker.sharded, worker.shard_count, worker.shard_ids) == (True, 4, (1, 3))
    every_shard = settings(DISCORD_SHARD_COUNT="2")
    assert (every_shard.shard_count, every_shard.shard_ids) == (2, None)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DISCORD_SHARD_COUNT": "0"}, "DISCORD_SHARD_COUNT must be a whole number of at least 1"),
        ({"DISCORD_SHARD_COUNT": "two"}, "DISCORD_SHARD_COUNT must be a whole number"),
        ({"DISCORD_SHARD_COUNT": "-2"}, "DISCORD_SHARD_COUNT must be a whole number"),
        (
            {"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "0,one"},
            "DISCORD_SHARD_IDS must be shard numbers from 0, separated by commas",
        ),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "-1"}, "DISCORD_SHARD_IDS must be"),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": ","}, "DISCORD_SHARD_IDS must be"),
        (
            {"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "1,1"},
            "DISCORD_SHARD_IDS names a shard twice",
        ),
        (
            {"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "0,2"},
            "DISCORD_SHARD_IDS has shard 2, but with DISCORD_SHARD_COUNT=2 shards are numbered "
            "0 to 1",
        ),
        ({"DISCORD_SHARD_IDS": "0"}, "DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT"),
        ({"DISCORD_REGISTER_COMMANDS": "maybe"}, "DISCORD_REGISTER_COMMANDS must be auto, on or"),
    ],
)
def test_bad_shard_settings_are_one_clear_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(**env)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("env", "syncs"),
    [
        ({}, True),
        ({"DISCORD_SHARD_COUNT": "2"}, True),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "0"}, True),
        ({"DISCORD_SHARD_COUNT": "3", "DISCORD_SHARD_IDS": "2,0"}, True),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "1"}, False),
        ({"DISCORD_REGISTER_COMMANDS": "off"}, False),
        ({"DISCORD_REGISTER_COMMANDS": "AUTO"}, True),
        (
            {
                "DISCORD_SHARD_COUNT": "2",
                "DISCORD_SHARD_IDS": "0",
                "DISCORD_REGISTER_COMMANDS": "no",
            },
            False,
        ),
        (
            {
                "DISCORD_SHARD_COUNT": "2",
                "DISCORD_SHARD_IDS": "1",
                "DISCORD_REGISTER_COMMANDS": "on",
            },
            True,
        ),
    ],
)
def test_one_worker_syncs_commands_the_one_serving_shard_0_unless_told(
    env: dict[str, str], syncs: bool
) -> None:
    assert settings(**env).syncs_commands is syncs


# ----- the fake gateway routes as Discord documents ------------------------------------------


async def identify(ws: aiohttp.ClientWebSocketResponse, shard: list[int] | None) -> None:
    hello = await ws.receive_json()
    assert hello["op"] == 10
    data: Json = {"token": "t", "intents": 0, "properties": {}}
    if shard is not None:
        data["shard"] = shard
    await ws.send_json({"op": 2, "d": data})


async def events(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[Json]:
    return [json.loads((await ws.receive()).data) for _ in range(count)]


async def test_the_fake_gateway_shards_guilds_and_dms_as_discord_documents(
    fake_discord: FakeDiscord,
) -> None:
    fake = fake_discord
    fake.add_guild(SHARD_1_GUILD, channels=[fake.text_channel(SHARD_1_CHANNEL, SHARD_1_GUILD)])
    assert (shard_of(GUILD, 2), shard_of(SHARD_1_GUILD, 2)) == (0, 1)
    async with aiohttp.ClientSession() as http:
        bot = await http.get(f"{fake.api_base}/gateway/bot")
        info = await bot.json()
        assert set(info) == {"url", "shards", "session_start_limit"}
        assert set(info["session_start_limit"]) == {
            "total",
            "remaining",
            "reset_after",
            "max_concurrency",
        }
        async with http.ws_connect(fake.gateway_url) as one:
            await identify(one, [1, 2])
            ready, guild = await events(one, 2)
            assert ready["t"] == "READY"
            assert ready["d"]["shard"] == [1, 2]
            assert [g["id"] for g in ready["d"]["guilds"]] == [str(SHARD_1_GUILD)]
            assert (guild["t"], guild["d"]["id"]) == ("GUILD_CREATE", str(SHARD_1_GUILD))
            # Only shard 1 is connected: nothing receives shard 0's guild, nor a DM.
            dm = fake.user_message(DM, "hi", author=ANN)
            in_guild_0 = fake.user_message(CHANNEL, "hi", author=ANN, guild_id=GUILD)
            with pytest.raises(AssertionError, match="no connected shard"):
                await fake.dispatch("MESSAGE_CREATE", dm)
            with pytest.raises(AssertionError, match="no connected shard"):
                await fake.dispatch("MESSAGE_CREATE", in_guild_0)
            async with http.ws_connect(fake.gateway_url) as zero:
                await identify(zero, [0, 2])
                ready, _ = await events(zero, 2)
                assert ready["d"]["shard"] == [0, 2]
                assert [g["id"] for g in ready["d"]["guilds"]] == [str(GUILD)]
                assert await fake.dispatch("MESSAGE_CREATE", dm) == [(0, 2)]
                in_guild_1 = fake.user_message(
                    SHARD_1_CHANNEL, "hi", author=ANN, guild_id=SHARD_1_GUILD
                )
                assert await fake.dispatch("MESSAGE_CREATE", in_guild_1) == [(1, 2)]
                assert (await events(zero, 1))[0]["d"]["id"] == dm["id"]
                assert (await events(one, 1))[0]["d"]["id"] == in_guild_1["id"]
                async with http.ws_connect(fake.gateway_url) as whole:
                    await identify(whole, None)  # unsharded: every guild, and DMs
                    ready, *_ = await events(whole, 3)
                    assert "shard" not in ready["d"]
                    assert len(ready["d"]["guilds"]) == 2
                    assert await fake.dispatch("MESSAGE_CREATE", dm) == [(0, 2), None]
        async with http.ws_connect(fake.gateway_url) as invalid:
            await identify(invalid, [2, 2])
            await invalid.receive()
            assert invalid.close_code == 4010  # Invalid shard


# ----- workers on real discord.py ------------------------------------------------------------


def shard_config(fake_openai: FakeOpenAI, db: Path, **env: str) -> Config:
    # Without DISCORD_DEV_GUILD commands are global, so every guild (and shard) has them.
    return discord_config(fake_openai, db, env={"DISCORD_DEV_GUILD": "", **env})


async def answer_once(
    fake: FakeDiscord, by: Harness, others: list[Harness], channel: int, guild: int | None
) -> tuple[Any, ...]:
    """Mention the bot in `channel`; `by` answers it, once, and no other worker sees it."""
    payload = fake.user_message(
        channel, f"{MENTION} which shard?", author=ANN, guild_id=guild, mentions=[BOT_USER]
    )
    shards = await fake.dispatch("MESSAGE_CREATE", payload)
    await eventually(lambda: int(payload["id"]) in by.adapter.handled, what=f"channel {channel}")
    assert not any(int(payload["id"]) in other.adapter.handled for other in others)
    assert by.shown(channel) == ["You said: [Ann] which shard?. Before that: nothing."]
    return tuple(shards)


async def test_two_workers_each_answer_their_own_shard_and_only_shard_0_syncs(
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = fake_discord
    fake.add_guild(SHARD_1_GUILD, channels=[fake.text_channel(SHARD_1_CHANNEL, SHARD_1_GUILD)])
    db = tmp_path / "memory.sqlite3"
    with caplog.at_level(logging.INFO, logger="adapters.discord"):
        zero = await Harness.start(
            fake, shard_config(fake_openai, db, DISCORD_SHARD_COUNT="2", DISCORD_SHARD_IDS="0")
        )
        one = await Harness.start(
            fake,
            shard_config(fake_openai, db, DISCORD_SHARD_COUNT="2", DISCORD_SHARD_IDS="1"),
            parts=zero.parts,
        )
    try:
        assert isinstance(zero.adapter.client, discord.AutoShardedClient)
        assert [i["shard"] for i in fake.gateway.identifies] == [[0, 2], [1, 2]]
        assert fake.shards_connected() == [(0, 2), (1, 2)]
        assert await answer_once(fake, one, [zero], SHARD_1_CHANNEL, SHARD_1_GUILD) == ((1, 2),)
        assert await answer_once(fake, zero, [one], CHANNEL, GUILD) == ((0, 2),)
        assert await answer_once(fake, zero, [one], DM, None) == ((0, 2),)
        assert len(fake_openai.requests) == 3

        synced = fake.calls("PUT", "/commands$")
        assert [call.path for call in synced] == [f"/applications/{APP_ID}/commands"]
        skipped = [r.getMessage() for r in caplog.records if "Not registering" in r.getMessage()]
        assert skipped == [
            "Not registering slash commands: this worker serves shards 1 of 2, and the worker "
            "serving shard 0 registers them"
        ]
        # The worker that did not sync still runs the commands used in its guilds.
        channel = fake.text_channel(SHARD_1_CHANNEL, SHARD_1_GUILD)
        shown = await one.command("history", channel, guild=SHARD_1_GUILD)
        assert "which shard?" in shown["data"]["content"]
    finally:
        await one.stop()
        await zero.stop()


async def test_one_worker_can_serve_every_shard(
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def identify_at_once(self: Any, shard_id: int | None, *, initial: bool = False) -> None:
        """The fake has no IDENTIFY rate limit to keep to (the library waits 5 s a shard)."""

    monkeypatch.setattr(discord.AutoShardedClient, "before_identify_hook", identify_at_once)
    fake = fake_discord
    fake.add_guild(SHARD_1_GUILD, channels=[fake.text_channel(SHARD_1_CHANNEL, SHARD_1_GUILD)])
    worker = await Harness.start(
        fake, shard_config(fake_openai, tmp_path / "m.sqlite3", DISCORD_SHARD_COUNT="2")
    )
    try:
        assert [i["shard"] for i in fake.gateway.identifies] == [[0, 2], [1, 2]]
        assert await answer_once(fake, worker, [], SHARD_1_CHANNEL, SHARD_1_GUILD) == ((1, 2),)
        assert await answer_once(fake, worker, [], CHANNEL, GUILD) == ((0, 2),)
        assert await answer_once(fake, worker, [], DM, None) == ((0, 2),)
        assert len(fake.calls("PUT", "/commands$")) == 1
    finally:
        await worker.stop()


async def test_a_worker_told_not_to_register_commands_skips_the_sync(
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = discord_config(
        fake_openai, tmp_path / "m.sqlite3", env={"DISCORD_REGISTER_COMMANDS": "off"}
    )
    with caplog.at_level(logging.INFO, logger="adapters.discord"):
        harness = await Harness.start(fake_discord, config)
    try:
        assert fake_discord.calls("PUT", "/commands$") == []
        assert "shard" not in fake_discord.gateway.identifies[0]  # unsharded, as before
        assert any(
            r.getMessage() == "Not registering slash commands: DISCORD_REGISTER_COMMANDS is off"
            for r in caplog.records
        )
        await harness.say(CHANNEL, "/help", mention=True)
        assert "/forget" in harness.last(CHANNEL)
    finally:
        await harness.stop()
