"""Profiles on Discord: the real discord.py against the fake gateway and REST API, the real
core against two fake model servers. Each channel's profile answers it (a thread follows its
channel), and only people with Manage Server or an `[admins]` role switch it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.profiles.spec import Admins, ProfileBook, Rule
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import FakeOpenAI, message_text, user_texts
from tests.support.discord import (
    BOB,
    CHANNEL,
    DM,
    GUILD,
    MANAGER_ROLE,
    MODERATOR_ROLE,
    OTHER_CHANNEL,
    THREAD_A,
    Harness,
    channel_payload,
    discord_config,
)
from tests.support.parts import BotParts
from tests.support.profiles import GENERAL_TEXT, SUPPORT_TEXT, support_and_general


def book(support_url: str) -> ProfileBook:
    return support_and_general(
        support_url,
        (
            Rule(1, "support", platform="discord", workspace=str(GUILD), channel=str(CHANNEL)),
            Rule(2, "general", platform="discord", workspace=str(GUILD)),
        ),
        admins=Admins(discord_roles=frozenset({"Moderators"})),
    )


@pytest.fixture
async def support_model() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


async def start(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, support: FakeOpenAI, db: Path
) -> Harness:
    config = discord_config(fake_openai, db)
    parts = await BotParts(config, profiles=book(support.base_url)).start()
    harness = await Harness.start(fake_discord, config, parts=parts)
    harness.owns_parts = True
    return harness


async def test_each_channel_is_answered_by_its_profile(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, support_model: FakeOpenAI, tmp_path: Path
) -> None:
    bot = await start(fake_discord, fake_openai, support_model, tmp_path / "m.sqlite3")
    try:
        await bot.say(CHANNEL, "my parcel is late", mention=True)
        await bot.say(THREAD_A, "and my other parcel?", mention=True)
        await bot.say(OTHER_CHANNEL, "tell me a joke", mention=True)
        await bot.say(DM, "hello", guild=None)
    finally:
        await bot.stop()
    assert [r.body["model"] for r in support_model.requests] == ["support-model"] * 2
    assert all(message_text(r.messages[0]).startswith(SUPPORT_TEXT) for r in support_model.requests)
    general, direct = fake_openai.requests
    assert general.body["model"] == "general-model"
    assert message_text(general.messages[0]).startswith(GENERAL_TEXT)
    assert direct.body["model"] == "fake-model"  # a DM matches neither rule


async def test_only_managers_and_admin_roles_switch_and_the_switch_lasts(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, support_model: FakeOpenAI, tmp_path: Path
) -> None:
    db = tmp_path / "m.sqlite3"
    bot = await start(fake_discord, fake_openai, support_model, db)
    other = channel_payload(OTHER_CHANNEL)
    option = [{"name": "name", "type": 3, "value": "support"}]
    try:
        await bot.say(OTHER_CHANNEL, "my order is 4417", mention=True)
        refused = await bot.command("profile", other, author=BOB, options=option)
        assert refused["data"]["content"].startswith("Sorry, only admins can switch")
        assert refused["data"]["flags"] == 64
        # Typed, by a member whose role has Manage Server (discord.py works it out from the
        # guild's roles, as Discord sends them).
        await bot.say(OTHER_CHANNEL, "profile general", mention=True, roles=[MANAGER_ROLE])
        assert "Done: this channel now uses the profile general" in bot.last(OTHER_CHANNEL)
        # As a slash command, by a role the profiles file names.
        switched = await bot.command(
            "profile", other, author=BOB, options=option, roles=[MODERATOR_ROLE]
        )
        assert switched["data"]["content"].startswith(
            "Done: this channel now uses the profile support (support-model)"
        )
    finally:
        await bot.stop()
    bot = await start(fake_discord, fake_openai, support_model, db)
    try:
        shown = await bot.command("profile", other)
        assert shown["data"]["content"].startswith("Profile here: support (switched in the chat).")
        await bot.say(OTHER_CHANNEL, "what is my order?", mention=True)
        chosen = await bot.parts.store.profile_choices()
    finally:
        await bot.stop()
    assert chosen == {f"discord:{GUILD}:{OTHER_CHANNEL}": "support"}
    last = support_model.requests[-1]
    assert last.body["model"] == "support-model"
    # Switching kept the channel's conversations: this one is a new thread, so its memory is
    # its own, and the model was asked through the support profile's server.
    assert user_texts(last.messages)[-1] == "[Ann] what is my order?"
