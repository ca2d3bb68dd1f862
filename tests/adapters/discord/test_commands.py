"""Commands on Discord: slash commands (registered, deferred, private) and typed ones."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import FakeOpenAI
from tests.support.discord import (
    CHANNEL,
    DM,
    GUILD,
    MENTION,
    THREAD_A,
    THREAD_B,
    Harness,
    channel_payload,
    discord_config,
    thread,
)


async def test_slash_commands_act_on_their_own_thread_and_are_ephemeral(
    running: Harness,
) -> None:
    synced = running.fake.commands[str(GUILD)]
    assert {c["name"] for c in synced} == {
        "forget",
        "undo",
        "history",
        "memory",
        "usage",
        "profile",
        "help",
    }
    history_spec = next(c for c in synced if c["name"] == "history")
    assert history_spec["options"][0]["name"] == "page"
    assert history_spec["options"][0]["min_value"] == 1
    # A profile's name is a word: a string option (type 3), not a number.
    profile_spec = next(c for c in synced if c["name"] == "profile")
    assert profile_spec["options"][0]["name"] == "name"
    assert profile_spec["options"][0]["type"] == 3
    assert profile_spec["options"][0]["required"] is False
    await running.say(THREAD_A, "apples", mention=True)
    await running.say(THREAD_A, "pears")
    await running.say(THREAD_B, "bananas", mention=True)

    memory = await running.command("memory", thread(THREAD_A, 101))
    assert memory["data"]["flags"] == 64
    assert "word for word" in memory["data"]["content"]

    shown = await running.command("history", thread(THREAD_A, 101))
    assert shown["type"] == 4
    assert shown["data"]["flags"] == 64
    assert "apples" in shown["data"]["content"]
    assert "bananas" not in shown["data"]["content"]

    page = await running.command(
        "history", thread(THREAD_A, 101), options=[{"name": "page", "type": 4, "value": 1}]
    )
    assert page["data"]["content"] == shown["data"]["content"]

    undone = await running.command("undo", thread(THREAD_A, 101))
    assert undone["data"]["flags"] == 64
    assert "removed" in undone["data"]["content"]
    assert await running.parts.store.count_items(f"discord:{GUILD}:{THREAD_A}") == 2

    forgot = await running.command("forget", thread(THREAD_B, 102))
    assert forgot["data"]["content"].startswith("Done: I forgot 2 messages")
    assert await running.parts.store.count_items(f"discord:{GUILD}:{THREAD_B}") == 0
    assert await running.parts.store.count_items(f"discord:{GUILD}:{THREAD_A}") == 2

    helped = await running.command("help", channel_payload(CHANNEL))
    assert "/forget" in helped["data"]["content"]
    dm_channel = {"id": str(DM), "type": 1}
    in_dm = await running.command("history", dm_channel, guild=None)
    assert in_dm["data"]["content"] == "I have no memory of this thread yet."


async def test_a_slow_command_is_deferred_then_answered(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    config = discord_config(fake_openai, tmp_path / "m.sqlite3")
    harness = await Harness.start(fake_discord, config, defer_after=0.05)
    try:
        fake_openai.latency = 0.5
        turn = asyncio.create_task(harness.say(CHANNEL, "slow one", mention=True))
        await fake_openai.request_seen.wait()
        # The turn holds the thread, so /forget waits for it and must be deferred.
        deferred = await harness.command("forget", channel_payload(CHANNEL))
        await turn
        assert deferred == {"type": 5, "data": {"flags": 64}}
        edits = harness.fake.calls("PATCH", "/messages/@original")
        assert edits[-1].body["content"].startswith("Done: I forgot 2 messages")
    finally:
        await harness.stop()


async def test_typed_commands_work_as_messages(running: Harness) -> None:
    await running.say(THREAD_A, "apples", mention=True)
    await running.say(THREAD_B, "bananas", mention=True)
    await running.say(THREAD_A, f"{MENTION} /forget")
    assert running.last(THREAD_A).startswith("Done: I forgot 2 messages")
    await running.say(THREAD_B, "!history")
    assert "bananas" in running.last(THREAD_B)
    await running.say(DM, "/undo", guild=None)
    assert running.last(DM) == "There is nothing to undo: this thread has no messages in memory."
    assert await running.parts.store.count_items(f"discord:{GUILD}:{THREAD_B}") == 2


async def test_failing_to_register_commands_is_logged_and_typed_commands_still_work(
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_discord.fail("PUT", "/commands$", 403)
    with caplog.at_level(logging.ERROR, logger="adapters.discord"):
        harness = await Harness.start(fake_discord, discord_config(fake_openai, tmp_path / "m.db"))
    try:
        assert any("Registering slash commands failed" in r.getMessage() for r in caplog.records)
        await harness.say(CHANNEL, "/help", mention=True)
        assert "/forget" in harness.last(CHANNEL)
    finally:
        await harness.stop()
